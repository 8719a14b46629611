"""Triton top-k mean pooling (kernels/topk_mean.py) against the reference ``torch.topk`` mean.

On a machine without a GPU the kernels run through the Triton interpreter (tests/conftest.py
sets TRITON_INTERPRET=1 before any kernel module is imported); with a GPU the same tests run
on CUDA. Inputs are fresh random floats (no ties) unless a test is about ties.
"""

import pytest
import torch

from himnet_fast import ops
from himnet_fast.reference import losses as R

from kernel_checks import assert_grads_close, topk_sizes


# (B, T, K): a varied sample of B in 1..12, T in {1, 7, 60, 137, 560}, K in {2, 21, 201}.
SHAPES = [(1, 1, 2), (3, 7, 21), (12, 7, 2), (2, 60, 201), (5, 60, 21), (1, 137, 2), (4, 137, 21), (2, 560, 21),
          (1, 560, 201)]
CASES = [(B, T, K, k) for B, T, K in SHAPES for k in topk_sizes(T)]


def _compare(S: torch.Tensor, k: int, rtol: float = 1e-5, backend: str = "triton",
             grad_rtol: float | None = None) -> None:
    """Values and dS of a backend against the reference on the same S, upcast to float32 when
    S is half (the ops compute half inputs in float32: float32 result, gradient in S's dtype)."""
    S_ref = S.detach().clone().to(torch.promote_types(S.dtype, torch.float32)).requires_grad_()
    S_fast = S.detach().clone().requires_grad_()
    expected = R.topk_mean(S_ref, k)
    actual = ops.topk_mean(S_fast, k, backend=backend)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol)
    upstream = torch.randn_like(expected)
    (expected * upstream).sum().backward()
    (actual * upstream).sum().backward()
    assert S_fast.grad.dtype == S.dtype
    assert_grads_close(S_fast.grad.to(S_ref.dtype), S_ref.grad, grad_rtol or rtol)


@pytest.mark.parametrize("B,T,K,k", CASES)
def test_topk_mean_matches_reference(device, B, T, K, k):
    torch.manual_seed(1000 * B + 10 * T + K + k)
    _compare(torch.randn(B, T, K, device=device) * 3.0, k)


def test_topk_mean_mixed_scales_and_signs(device):
    """Keys cover negative, tiny, huge and zero values (the order-preserving bit map)."""
    torch.manual_seed(7)
    S = torch.randn(3, 137, 5, device=device) * torch.logspace(-30, 30, 137, device=device)[None, :, None]
    S[:, 5, 1] = 0.0  # an exact zero (no tie)
    S[:, :, 3] = -S[:, :, 3].abs()  # an all-negative column
    for k in (1, 19, 60, 137):
        _compare(S, k)


def test_topk_mean_long_sequence(device):
    """T = 4096 (one register tile), 8192 and 9000 (chunked over T)."""
    torch.manual_seed(8)
    for T in (4096, 8192, 9000):
        _compare(torch.randn(1, T, 2, device=device), T // 7)


def test_topk_mean_chunked_path(device, monkeypatch):
    """Force the multi-chunk select (columns longer than one tile) on small shapes."""
    from himnet_fast.kernels import topk_mean as kernel

    monkeypatch.setattr(kernel, "SELECT_TILE_ELEMS", 64)
    assert kernel.select_config(137, 21)[2] is False
    torch.manual_seed(9)
    for B, T, K, k in [(2, 137, 21, 19), (1, 560, 2, 80), (3, 65, 3, 65)]:
        _compare(torch.randn(B, T, K, device=device), k)


def test_topk_mean_strided_input(device):
    """S as the transpose of a (B, K, T) conv output (time contiguous)."""
    torch.manual_seed(10)
    S = torch.randn(4, 21, 60, device=device).transpose(1, 2)
    assert not S.is_contiguous()
    _compare(S, 8)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_topk_mean_half_inputs(device, dtype, backend):
    """Half inputs with distinct values per column (multiples of 1/16, exact in bf16/fp16): a
    float32 mean equal to the float32 reference on the upcast values (issue 13)."""
    torch.manual_seed(11)
    B, T, K, k = 3, 137, 21, 19
    S = torch.stack([torch.randperm(T) for _ in range(B * K)]).reshape(B, K, T).transpose(1, 2)
    S = ((S.float() - T / 2) / 8).to(device=device, dtype=dtype).contiguous()
    _compare(S, k, rtol=1e-5, backend=backend, grad_rtol=1e-2)  # dS rounded to S's dtype


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_topk_mean_near_the_float32_maximum_is_finite(device, backend):
    """Values of +-3e38 (ties included): the mean is formed so that no partial sum overflows.
    Before, the reference's sum overflowed to inf, and the Triton tie correction (sum of the tied
    values minus the excess) computed inf - inf = NaN. The gradient of each column sums to 1."""
    big = 3e38
    col = torch.tensor([big, big, -big, big, -big, 1.0])
    S = torch.stack([col, -col, torch.full_like(col, big), torch.full_like(col, -big)], dim=-1)[None]  # (1, 6, 4)
    for k in (1, 2, 3, 4, 6):
        expected = S.double().topk(k, dim=1).values.mean(dim=1)  # float64 holds the sums
        S_x = S.to(device).clone().requires_grad_()
        gamma = ops.topk_mean(S_x, k, backend=backend)
        torch.testing.assert_close(gamma.double().cpu(), expected, rtol=1e-6, atol=0)
        gamma.sum().backward()
        torch.testing.assert_close(S_x.grad.sum(dim=1), torch.ones(1, 4, device=device))


def test_topk_mean_ties_share_the_gradient(device):
    """Documented tie rule: value exact, tied positions at the k-th value share its 1/k."""
    col = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0, 3.0], device=device)
    S = col[None, :, None].repeat(2, 1, 3).clone().requires_grad_()
    gamma = ops.topk_mean(S, 3, backend="triton")
    torch.testing.assert_close(gamma, torch.full((2, 3), 7.0 / 3.0, device=device))
    gamma.sum().backward()
    expected = torch.tensor([0.0, 2 / 9, 2 / 9, 2 / 9, 0.0, 1 / 3], device=device)
    torch.testing.assert_close(S.grad, expected[None, :, None].expand(2, 6, 3))
    assert torch.allclose(S.grad.sum(dim=1), torch.ones(2, 3, device=device))



def test_topk_mean_signed_zeros(device):
    """Documented -0 rule (``sortable_key``): the value is that of any tie-break (0), and -0 ranks
    below +0, so at k = 2 the +0 gets 1/2 and the two -0 share the other 1/2 as ties."""
    col = torch.tensor([-0.0, 0.0, -1.0, -0.0], device=device)
    S = col[None, :, None].repeat(1, 1, 2).clone().requires_grad_()
    gamma = ops.topk_mean(S, 2, backend="triton")
    assert bool((gamma == 0).all())
    gamma.sum().backward()
    expected = torch.tensor([0.25, 0.5, 0.0, 0.25], device=device)
    torch.testing.assert_close(S.grad, expected[None, :, None].expand(1, 4, 2), rtol=0, atol=0)

def test_auto_backend_uses_reference_on_cpu():
    S = torch.randn(2, 10, 3, requires_grad=True)
    out = ops.topk_mean(S, 2)
    assert "TopKMeanFunction" not in type(out.grad_fn).__name__
    torch.testing.assert_close(out, R.topk_mean(S, 2), rtol=0, atol=0)


@pytest.mark.parametrize(
    "make,k,match",
    [
        (lambda: torch.randn(10, 3), 2, "S"),
        (lambda: torch.randn(2, 10, 1), 2, "S"),
        (lambda: torch.randint(0, 5, (2, 10, 3)), 2, "S"),
        (lambda: torch.randn(2, 10, 3), 0, "k"),
        (lambda: torch.randn(2, 10, 3), 11, "k"),
        (lambda: torch.randn(2, 10, 3), 2.5, "k"),
        (lambda: torch.full((2, 10, 3), float("nan")), 2, "S"),
        ("not a tensor", 2, "S"),
    ],
)
@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_topk_mean_rejects_bad_input(make, k, match, backend):
    S = make() if callable(make) else make
    with pytest.raises(ValueError, match=match):
        ops.topk_mean(S, k, backend=backend)


def test_topk_mean_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        ops.topk_mean(torch.randn(1, 4, 2), 1, backend="cuda")


def test_select_config_keeps_small_batches_parallel(monkeypatch):
    """On a GPU, fewer columns per program while the grid would be small; never more than a tile."""
    from himnet_fast.kernels import topk_mean as kernel

    monkeypatch.setattr(kernel, "MIN_PROGRAMS", 256)
    for T, K, B in [(560, 21, 10), (60, 201, 10), (2048, 201, 64), (8192, 2, 1), (1, 2, 1)]:
        block_t, block_c, single, _ = kernel.select_config(T, K, B)
        assert block_t * block_c <= kernel.SELECT_TILE_ELEMS and block_c >= 1
        assert single == (block_t >= T)
        assert block_c == 1 or -(-K // block_c) * B >= 256
    assert kernel.select_config(60, 201, 10)[1] == 8
