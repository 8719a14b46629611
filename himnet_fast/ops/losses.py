"""Dispatchers of the training-loss ops: ``topk_mean`` and the fused ``himnet_losses``.

Backends: ``"reference"`` (plain PyTorch, the spec) and ``"triton"`` (fused kernels);
``"auto"`` picks Triton for CUDA tensors and the reference on the CPU.
"""
from __future__ import annotations

import torch

from himnet_fast.ops._dispatch import resolve_backend
from himnet_fast.reference import losses as reference


def topk_mean(S: torch.Tensor, k: int, backend: str = "auto") -> torch.Tensor:
    """Eq. 1: mean of the k largest values over time. S: (B, T, K) -> (B, K)."""
    resolve_backend("topk_mean", backend, ("reference",), "reference")
    return reference.topk_mean(S, k)


def himnet_losses(S, A, labels, k: int, alpha: float = 4.0, scl_variant: str = "self", backend: str = "auto"):
    """L_MIL, L_CLL and L_SCL of one batch. S: (B, T, C+1), A: (B, T), labels: (B, C) -> HiMNetLossTerms."""
    resolve_backend("himnet_losses", backend, ("reference",), "reference")
    return reference.himnet_losses_reference(S, A, labels, k, alpha=alpha, scl_variant=scl_variant)
