"""Snippet-level classification accuracy (paper Table 3 "ACC", DESIGN.md section 3)."""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Sequence

import numpy as np

SECONDS_PER_SNIPPET = 16 / 25  # one I3D feature per 16 frames at 25 fps


def snippet_targets(annotations: Iterable[Mapping], T: int, class_index: Dict[str, int], num_classes: int,
                    seconds_per_snippet: float = SECONDS_PER_SNIPPET) -> np.ndarray:
    """(T,) int64 ground-truth class per snippet; background (outside every segment) = num_classes.

    Snippet t spans [t, t+1) * seconds_per_snippet and takes the class of a segment
    ``[start, end)`` that contains its centre; where segments of several classes cover it,
    the one listed last wins.

    Args:
        annotations: one video's ActivityNet annotations ``[{"segment": [s, e], "label": name}]``.
        T: number of snippets; class_index: {label: id in [0, num_classes)}.
    """
    if T < 0:
        raise ValueError(f"T: must be >= 0, got {T}")
    out = np.full(T, num_classes, dtype=np.int64)
    centres = (np.arange(T) + 0.5) * seconds_per_snippet
    for k, ann in enumerate(annotations):
        label = ann["label"]
        if label not in class_index:
            raise ValueError(f"annotations[{k}]: label {label!r} not in class_index")
        start, end = float(ann["segment"][0]), float(ann["segment"][1])
        if not end >= start:
            raise ValueError(f"annotations[{k}]: segment must be [start, end] with end >= start, got {ann['segment']}")
        out[(centres >= start) & (centres < end)] = class_index[label]
    return out


def snippet_accuracy(pred_labels: Sequence[np.ndarray], target_labels: Sequence[np.ndarray]) -> float:
    """Fraction of all snippets (pooled over videos) whose predicted class equals the target.

    Args:
        pred_labels: per video (T_i,) int, e.g. the argmax over C+1 of S.
        target_labels: per video (T_i,) int, e.g. from :func:`snippet_targets`.
    """
    if len(pred_labels) != len(target_labels):
        raise ValueError(f"pred_labels: {len(pred_labels)} videos but target_labels has {len(target_labels)}")
    correct = total = 0
    for i, (p, t) in enumerate(zip(pred_labels, target_labels)):
        p, t = np.asarray(p), np.asarray(t)
        if p.ndim != 1 or p.shape != t.shape:
            raise ValueError(f"pred_labels[{i}]: shape {p.shape} must be (T_i,) like target_labels[{i}] {t.shape}")
        correct += int((p == t).sum())
        total += len(t)
    if total == 0:
        raise ValueError("target_labels: no snippets: accuracy is undefined")
    return correct / total
