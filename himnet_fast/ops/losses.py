"""Dispatchers of the training-loss ops: ``topk_mean`` and the fused ``himnet_losses``.

Backends: ``"reference"`` (plain PyTorch, the spec) and ``"triton"`` (fused kernels in
``himnet_fast.kernels``, imported only when first used); ``"auto"`` picks Triton for CUDA
tensors (when Triton is installed) and the reference otherwise.

Both backends raise ``ValueError`` naming the argument for inputs of the wrong type, rank,
shape, dtype or device and for k, alpha or scl_variant out of range. ``check_values=True``
(the default) also rejects NaN/inf, |S| above ``reference.MAX_MAGNITUDE`` (the loss terms of
larger logits overflow float32), attention outside [0, 1] and labels other than 0/1, one
reduction per input; on a GPU each synchronises with the device (``.item()``), so a training
loop that has already validated its data may pass ``check_values=False`` (the reference backend
always checks). With the checks, no input gives a NaN or inf result: a ValueError instead.

Dtypes: float16 / bfloat16 inputs are computed in float32 (the Triton kernels load them and
convert in registers; the reference gets float32 copies, ``upcast``), so the outputs are float32
and the gradients come back in the input dtype. float32 and float64 inputs compute in their own
dtype in the reference and in float32 in the kernels.
"""
from __future__ import annotations

import os

import torch

from himnet_fast import validation
from himnet_fast.ops._dispatch import resolve_backend, triton_available
from himnet_fast.reference import losses as reference

BACKENDS = ("reference", "triton")
MAX_FUSED_CLASSES = 4096  # the fused loss keeps one row of C+1 classes in a register tile
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_HALF_DTYPES = (torch.float16, torch.bfloat16)
_FLOAT32_MAX = torch.finfo(torch.float32).max


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 -> float32 (differentiable: the gradient returns in x's dtype); any other
    tensor as it is. The losses' EPS = 1e-6 clamp is not representable next to 1 in half precision."""
    return x.float() if x.dtype in _HALF_DTYPES else x


def _choose(op: str, backend: str, S: torch.Tensor, max_classes: int | None = None) -> str:
    """The concrete backend; "auto" falls back to the reference where the kernels cannot run
    (CPU tensors, more than 2**31 elements, more than ``max_classes`` classes)."""
    limit = None
    if S.numel() >= 2**31:
        limit = f"S: {S.numel()} elements exceed the Triton kernels' int32 indexing"
    elif max_classes is not None and S.shape[-1] > max_classes:
        limit = f"S: C+1 = {S.shape[-1]} classes exceeds the fused loss limit of {max_classes}"
    auto = "triton" if S.is_cuda and triton_available() and limit is None else "reference"
    chosen = resolve_backend(op, backend, BACKENDS, auto)
    if chosen == "triton":
        if not S.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(f"{op}: backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before import), "
                             f"got S on {S.device}")
        if limit is not None:
            raise ValueError(f"{limit}; use backend='reference'")
    return chosen


def _check_cas(S, k, check_values: bool, bound: float) -> tuple[int, int, int]:
    """S: (B, T, K) floating, K >= 2, k in [1, T], |S| <= bound if check_values; returns (B, T, K)."""
    validation.check_tensor("S", S, 3, finite=False)
    if check_values:
        reference.check_magnitude("S", S, bound)
    if S.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"S: dtype must be one of {_FLOAT_DTYPES}, got {S.dtype}")
    B, T, K = S.shape
    if K < 2:
        raise ValueError(f"S: last dim must be C+1 >= 2 (at least one class plus background), got {K}")
    validation.check_int("k", k, 1, T)
    return B, T, K


def _check_same_device(name: str, x: torch.Tensor, S: torch.Tensor) -> None:
    if x.device != S.device:
        raise ValueError(f"{name}: must be on the device of S ({S.device}), got {x.device}")


def topk_mean(S: torch.Tensor, k: int, backend: str = "auto", check_values: bool = True) -> torch.Tensor:
    """Eq. 1: mean of the k largest values over time, per video and class.

    Args:
        S: (B, T, K) floating class activations.
        k: 1 <= k <= T.
        backend: "auto" | "reference" | "triton".
        check_values: reject NaN/inf in S, and float64 values beyond the float32 range the
            kernels compute in (synchronises on a GPU).

    Returns:
        (B, K): float32 for float16 / bfloat16 / float32 S, float64 for float64 S; finite for
        every finite float32 S. Gradient 1/k on the selected positions, in S's dtype; with ties
        at the k-th value the Triton backend shares it equally among the tied positions.
    """
    _check_cas(S, k, check_values, _FLOAT32_MAX)
    if _choose("topk_mean", backend, S) == "reference":
        return reference.topk_mean(upcast(S), k)
    from himnet_fast.kernels.topk_mean import topk_mean as fused_topk_mean

    return fused_topk_mean(S, k).to(upcast(S).dtype)  # the kernel's float32, as the reference


def himnet_losses(
    S: torch.Tensor,
    A: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    alpha: float = 4.0,
    scl_variant: str = "self",
    backend: str = "auto",
    check_values: bool = True,
    grad_weights: tuple[float, float, float] | None = None,
    mil_norm: str = "paper",
    suppression: str = "product",
    cll_norm: str = "paper",
) -> reference.HiMNetLossTerms:
    """L_MIL (Eq. 4), L_CLL (Eq. 6) and L_SCL (Eq. 10) of one batch, each the mean over videos.

    Args:
        S: (B, T, C+1) floating class activation map (background last), C+1 >= 2
            (at most 4096 for the Triton backend), |S| <= ``reference.MAX_MAGNITUDE`` (1e15).
        A: (B, T) floating attention in [0, 1].
        labels: (B, C) multi-hot video labels (float, int or bool).
        k: top-k size of Eq. 1, 1 <= k <= T.
        alpha: uncertainty sharpness of Eq. 9, >= 0.
        scl_variant: "self" | "target" | "none" (Table 4).
        backend: "auto" | "reference" | "triton".
        check_values: also reject NaN/inf, |S| > 1e15, A outside [0, 1], labels not in {0, 1}.
        grad_weights: optional speed hint, the weights (w_mil, w_cll, w_scl) the caller gives
            the three terms in the loss it backpropagates (e.g. (1, 1, lambda2) for Eq. 11,
            0 for a term it leaves out). The Triton backend then writes dS, dA during the
            forward and its backward is nearly free when the upstream gradients are (a
            multiple of) these weights; otherwise it recomputes them. Values and gradients do
            not depend on it; the reference ignores it.
        mil_norm: "paper" (Eq. 5's 1/(C+1)) or "base" (CO2-Net's label-normalised
            cross-entropy), as ``reference.mil_loss``.
        suppression: S_hat of L_MIL, "product" (S * A) or "shifted" (CO2-Net's
            A * (S - min over classes) + min), as ``reference.suppress``.
        cll_norm: "paper" (Eq. 5's 1/(C+1) in Eq. 6) or "procl" (the authors' ProCL code: the
            sum over the classes, C+1 times the paper's value), as ``reference.cll_loss``.

    Returns:
        HiMNetLossTerms(mil, cll, scl) of 0-D tensors: float32 (float64 from the reference for
        float64 inputs); the gradients of S and A in their own dtypes.
    """
    B, T, K = _check_cas(S, k, check_values, reference.MAX_MAGNITUDE)
    validation.check_tensor("A", A, 2, finite=False)
    validation.check_shape("A", A, (B, T), "(B, T) of S")
    validation.check_tensor("labels", labels, 2, dtype_floating=False, finite=False)
    validation.check_shape("labels", labels, (B, K - 1), "(B, C) with C+1 = S.shape[-1]")
    _check_same_device("A", A, S)
    _check_same_device("labels", labels, S)
    validation.check_number("alpha", alpha, 0.0)
    validation.check_choice("scl_variant", scl_variant, reference.SCL_VARIANTS)
    validation.check_choice("mil_norm", mil_norm, reference.MIL_NORMS)
    validation.check_choice("suppression", suppression, reference.SUPPRESSIONS)
    validation.check_choice("cll_norm", cll_norm, reference.CLL_NORMS)
    if grad_weights is not None:
        if not isinstance(grad_weights, (tuple, list)) or len(grad_weights) != 3:
            raise ValueError(f"grad_weights: expected None or 3 numbers (w_mil, w_cll, w_scl), got {grad_weights!r}")
        weights = [validation.check_number(f"grad_weights[{i}]", w) for i, w in enumerate(grad_weights)]
        if not any(weights):
            raise ValueError("grad_weights: at least one weight must be non-zero")
    if check_values:
        validation.check_range("A", A, 0.0, 1.0)  # also rejects NaN and inf
        validation.check_labels("labels", labels)
    if _choose("himnet_losses", backend, S, MAX_FUSED_CLASSES) == "reference":
        return reference.himnet_losses_reference(upcast(S), upcast(A), labels, k, alpha=alpha,
                                                 scl_variant=scl_variant, mil_norm=mil_norm, suppression=suppression,
                                                 cll_norm=cll_norm)
    from himnet_fast.kernels.himnet_loss import himnet_losses as fused_losses

    return reference.HiMNetLossTerms(*fused_losses(S, A, labels, k, alpha, scl_variant, grad_weights, mil_norm,
                                                     suppression, cll_norm))
