"""Reference of ``mask_runs``: one Python scan per row."""
from __future__ import annotations

import torch


def mask_runs_reference(mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """mask (N, T) bool, lengths (N,) int64 -> (R, 3) int64 of (row, start, end), end exclusive."""
    runs = []
    rows = mask.detach().cpu().tolist()
    for r, (row, length) in enumerate(zip(rows, lengths.tolist())):
        t = 0
        while t < length:
            if row[t]:
                start = t
                while t < length and row[t]:
                    t += 1
                runs.append((r, start, t))
            else:
                t += 1
    return torch.tensor(runs, dtype=torch.int64, device=mask.device).reshape(-1, 3)
