"""Benchmark protocols: tIoU thresholds and the averages each benchmark reports."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

# np.linspace as the official code and the THUMOS14 evaluators of earlier work build them:
# the exact threshold bits decide ``tiou < thr`` at the boundary.
THUMOS14_TIOUS = np.linspace(0.1, 0.7, 7)
ANET_TIOUS = np.linspace(0.5, 0.95, 10)


@dataclass(frozen=True)
class Protocol:
    """A benchmark's thresholds and reported averages.

    Attributes:
        name: ``thumos14`` | ``anet13``.
        tious: (n,) tIoU thresholds.
        averages: (lo, hi) ranges of thresholds whose mAP is averaged (inclusive).
    """

    name: str
    tious: np.ndarray
    averages: Tuple[Tuple[float, float], ...]


PROTOCOLS: Dict[str, Protocol] = {
    "thumos14": Protocol("thumos14", THUMOS14_TIOUS, ((0.1, 0.5), (0.1, 0.7))),
    "anet13": Protocol("anet13", ANET_TIOUS, ((0.5, 0.95),)),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; ValueError listing the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"protocol: unknown {name!r}, expected one of {sorted(PROTOCOLS)}") from None


def check_tious(tious) -> np.ndarray:
    """(n,) float64 thresholds; ValueError unless a non-empty 1-D list of finite numbers in [0, 1]."""
    arr = np.asarray(tious, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"tious: expected a non-empty 1-D list of thresholds, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"tious: thresholds must be finite numbers in [0, 1], got {arr.tolist()}")
    return np.ascontiguousarray(arr)
