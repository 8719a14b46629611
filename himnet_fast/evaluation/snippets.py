"""Snippet-level classification accuracy (paper Table 3 "ACC", DESIGN.md section 3)."""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Sequence

import numpy as np

def snippet_targets(annotations: Iterable[Mapping], T: int, class_index: Dict[str, int], num_classes: int) -> np.ndarray:
    """(T,) int64 ground-truth class per snippet; background (outside every segment) = num_classes.

    The rule is the data layer's (``himnet_fast.data.segment_snippets``), so the metric scores
    snippets exactly as the loaders and the generator place them: snippet t belongs to segment
    [s, e) when its centre (t + 0.5) * 16/25 s lies inside; a segment too short to hold a centre
    gets the snippet holding its midpoint; where segments overlap, the one listed last wins.

    Args:
        annotations: one video's ActivityNet annotations ``[{"segment": [s, e], "label": name}]``.
        T: number of snippets; class_index: {label: id in [0, num_classes)}.
    """
    from himnet_fast.data.snippets import segment_snippets

    if T < 0:
        raise ValueError(f"T: must be >= 0, got {T}")
    annotations = list(annotations)
    for k, ann in enumerate(annotations):
        if ann["label"] not in class_index:
            raise ValueError(f"annotations[{k}]: label {ann['label']!r} not in class_index")
        if not float(ann["segment"][1]) >= float(ann["segment"][0]):
            raise ValueError(f"annotations[{k}]: segment must be [start, end] with end >= start, got {ann['segment']}")
    out = np.full(T, num_classes, dtype=np.int64)
    segments = np.array([[float(a["segment"][0]), float(a["segment"][1])] for a in annotations]).reshape(-1, 2)
    for (s, e), ann in zip(zip(*segment_snippets(segments, T)), annotations):
        out[s:e] = class_index[ann["label"]]
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
