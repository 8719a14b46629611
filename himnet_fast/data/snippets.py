"""Seconds <-> snippets, and per-snippet ground-truth classes.

Rule (used by the generator to place actions and by :func:`snippet_labels` to score them, so
the two agree): snippet t covers [t * 0.64, (t + 1) * 0.64) s and belongs to segment [s, e]
when its centre (t + 0.5) * 0.64 lies in [s, e). A segment shorter than that which contains
no centre gets the one snippet holding its midpoint. Snippets past the end of the features
are dropped (the public THUMOS14 files have segments after the recorded duration).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from himnet_fast.geometry import SNIPPET_SECONDS


def snippets_for_duration(duration: float) -> int:
    """Number of snippets of a video of ``duration`` seconds: floor(duration * 25 / 16)."""
    return int(np.floor(duration / SNIPPET_SECONDS + 1e-9))


def segment_snippets(segments: np.ndarray, T: int) -> Tuple[np.ndarray, np.ndarray]:
    """Snippet ranges of segments.

    Args: segments (n, 2) seconds; T the video's snippet count.
    Returns: (start (n,), end (n,)) int64, half-open ``[start, end)``, clipped to [0, T]
    (empty where the segment lies past the end).
    """
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2) / SNIPPET_SECONDS
    start = np.ceil(seg[:, 0] - 0.5)
    end = np.ceil(seg[:, 1] - 0.5)
    short = end <= start
    mid = np.floor((seg[:, 0] + seg[:, 1]) / 2)
    start = np.where(short, mid, start)
    end = np.where(short, mid + 1, end)
    start = np.clip(start, 0, T).astype(np.int64)
    end = np.clip(end, 0, T).astype(np.int64)
    return start, np.maximum(start, end)


def snippet_labels(dataset, i: int) -> np.ndarray:
    """Ground-truth class per snippet of video ``i`` of ``dataset`` (a FeatureDataset or any
    object with ``num_snippets(i)``, ``segments``, ``segment_labels``, ``classlist``).

    Returns: (T_i,) int64 class ids, background = C. Where segments of different classes
    overlap, the later segment in the file wins.
    """
    T = dataset.num_snippets(i)
    labels = np.full(T, len(dataset.classlist), dtype=np.int64)
    start, end = segment_snippets(dataset.segments[i], T)
    for s, e, c in zip(start, end, dataset.segment_labels[i]):
        labels[s:e] = c
    return labels
