"""Dispatcher of ``mask_runs``: the runs of ``True`` in a batch of 1D boolean masks."""
from __future__ import annotations

import torch

from himnet_fast.ops._dispatch import native_available, resolve_backend
from himnet_fast.reference.mask_runs import mask_runs_reference

if native_available():

    @torch.library.register_fake("himnet_fast::mask_runs")
    def _mask_runs_fake(mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        count = torch.library.get_ctx().new_dynamic_size()
        return lengths.new_empty((count, 3))


def mask_runs(mask: torch.Tensor, lengths: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """Half-open runs ``[start, end)`` of ``True`` in each row of ``mask``.

    Args:
        mask: (N, T) bool.
        lengths: (N,) int64, valid prefix of each row (default: all T).
        backend: ``"auto"`` (native when built), ``"reference"`` or ``"cpp"``.

    Returns:
        (R, 3) int64 rows ``(row, start, end)``, ordered by row then start.
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError(f"mask_runs: mask must be a 2D tensor (N, T), got {getattr(mask, 'shape', type(mask))}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask_runs: mask must be bool, got {mask.dtype}")
    if lengths is None:
        lengths = torch.full((mask.shape[0],), mask.shape[1], dtype=torch.int64, device=mask.device)
    if lengths.shape != (mask.shape[0],):
        raise ValueError(f"mask_runs: lengths must have shape ({mask.shape[0]},), got {tuple(lengths.shape)}")
    lengths = lengths.to(torch.int64)
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > mask.shape[1]):
        raise ValueError(f"mask_runs: lengths must lie in [0, T={mask.shape[1]}]")
    chosen = resolve_backend("mask_runs", backend, ("reference", "cpp"), "cpp" if native_available() else "reference")
    if chosen == "reference":
        return mask_runs_reference(mask, lengths)
    return torch.ops.himnet_fast.mask_runs(mask, lengths)
