"""The snippet clock and the segment IoU, shared by the data, the post-processing, its reference
and the evaluator (plain numpy: references import it as well as fast code)."""
from __future__ import annotations

import numpy as np

# A snippet is 16 frames at 25 fps (I3D features): snippet t covers [t * 0.64, (t + 1) * 0.64) s.
SNIPPET_SECONDS = 16.0 / 25.0


def segment_iou(target: np.ndarray, candidates: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """tIoU of one segment ``target`` (2,) [start, end] with each row of ``candidates`` (m, 2): (m,) float64.

    The official ActivityNet ``segment_iou`` (Evaluation/utils.py), same operations in the
    same order, so the same bits: ``tt1 = max(t0, c0)``, ``tt2 = min(t1, c1)``,
    ``inter = (tt2 - tt1).clip(0)``, ``union = (c1 - c0) + (t1 - t0) - inter``, ``inter / union``
    (0/0 = NaN for two touching zero-length segments). ``offset`` (1: the post-processing's
    legacy "+1" on snippet indices) is added to the intersection before the clip and to each
    length; with offset 0 the quotient keeps the official bits (adding 0.0 only turns -0.0 into +0.0).
    """
    tt1 = np.maximum(target[0], candidates[:, 0])
    tt2 = np.minimum(target[1], candidates[:, 1])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # huge segments; 0/0
        inter = (tt2 - tt1 + offset).clip(0)
        union = (candidates[:, 1] - candidates[:, 0] + offset) + (target[1] - target[0] + offset) - inter
        return inter / union
