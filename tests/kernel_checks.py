"""Helpers shared by the Triton kernel tests (test_triton_topk.py, test_triton_losses.py)."""
import torch


def topk_sizes(T: int) -> list[int]:
    """The k values under test for a length T: 1, T and T // 7 (at least 1), deduplicated."""
    return sorted({1, T, max(1, T // 7)})


def assert_grads_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4,
                       exact: torch.Tensor | None = None) -> None:
    """Elementwise closeness with an absolute floor relative to the gradient's scale.

    exact: the same gradient in float64. Where given, each element may also differ from
    ``exact`` by twice the error of ``expected`` itself: ill-conditioned elements (log(1 - b)
    with b near the 1 - EPS clamp of Eq. 9-10) carry float32 rounding that two correct float32
    implementations (PyTorch's CUDA kernels, Triton's) round differently.
    """
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    atol = rtol * max(scale, 1e-12)
    if exact is None:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)
        return
    exact = exact.to(actual.device, torch.float64)
    own_error = (expected.double() - exact).abs()
    allowed = atol + rtol * exact.abs() + 2.0 * own_error
    error = (actual.double() - exact).abs()
    worst = int(torch.argmax(error - allowed))
    assert bool((error <= allowed).all()), (
        f"{int((error > allowed).sum())} / {error.numel()} elements off; worst at flat index {worst}: "
        f"actual {actual.flatten()[worst]:.6g}, float64 {exact.flatten()[worst]:.6g}, "
        f"float32 reference {expected.flatten()[worst]:.6g} (allowed |error| {allowed.flatten()[worst]:.3g})")
