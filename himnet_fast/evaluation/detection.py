"""Detection mAP: the official ActivityNet algorithm (``ANETdetection.evaluate``), exactly and fast."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .ap import average_precision
from .errors import EvaluationWarning
from .io import GroundTruth, Predictions, drop_ambiguous, load_ground_truth, load_predictions, read_ambiguous
from .matching import match
from .protocols import Protocol, check_tious, get_protocol

_TOL = 1e-9  # threshold matching in average(): linspace values are not exact decimals
_SHOWN = 5


@dataclass
class DetectionResult:
    """AP per class and threshold, mAP per threshold, and what was skipped.

    Attributes:
        tious: (n,) thresholds.
        classes: C ground-truth classes (official order: first appearance in the ground truth).
        ap: (n, C) average precision.
        mAP: (n,) mean over classes (``ap.mean(axis=1)``, as official).
        num_ground_truth: (C,) instances per class.
        num_predictions: (C,) predictions per class evaluated.
        averages: (lo, hi) threshold ranges reported by :meth:`to_json` and :meth:`table`.
        counts: ``unknown_video_predictions``, ``unknown_video_policy``, ``dropped_ambiguous``.
    """

    tious: np.ndarray
    classes: List[str]
    ap: np.ndarray
    mAP: np.ndarray
    num_ground_truth: np.ndarray
    num_predictions: np.ndarray
    averages: Tuple[Tuple[float, float], ...] = ()
    counts: Dict[str, object] = field(default_factory=dict)

    def average(self, lo: Optional[float] = None, hi: Optional[float] = None) -> float:
        """Mean mAP over the thresholds in [lo, hi] (None = no bound; all = official average_mAP)."""
        keep = self._mask(lo, hi)
        if not keep.any():
            raise ValueError(f"average: no threshold in [{lo}, {hi}] (thresholds: {self.tious.tolist()})")
        return float(self.mAP[keep].mean())

    def _mask(self, lo: Optional[float] = None, hi: Optional[float] = None) -> np.ndarray:
        """(n,) bool: thresholds in [lo, hi], with a tolerance for linspace values."""
        lo = -np.inf if lo is None else lo - _TOL
        hi = np.inf if hi is None else hi + _TOL
        return (self.tious >= lo) & (self.tious <= hi)

    def _average_items(self) -> List[Tuple[str, float]]:
        """(name, value) of each reported range holding at least one threshold."""
        return [(f"{lo:g}:{hi:g}", self.average(lo, hi)) for lo, hi in self._ranges()]

    def _ranges(self) -> List[Tuple[float, float]]:
        return [(lo, hi) for lo, hi in self.averages if self._mask(lo, hi).any()]

    def to_json(self) -> dict:
        """Plain-JSON dict: thresholds, mAP per threshold, averages, AP per class, counts."""
        keys = [f"{t:.2f}" for t in self.tious]
        return {
            "tious": self.tious.tolist(),
            "mAP": dict(zip(keys, self.mAP.tolist())),
            "average_mAP": self.average(),
            "averages": dict(self._average_items()),
            "ap": {c: dict(zip(keys, self.ap[:, i].tolist())) for i, c in enumerate(self.classes)},
            "num_ground_truth": dict(zip(self.classes, self.num_ground_truth.tolist())),
            "num_predictions": dict(zip(self.classes, self.num_predictions.tolist())),
            "counts": dict(self.counts),
        }

    def table(self) -> str:
        """Text table in percent: one row per class, then mAP; one column per threshold, then averages."""
        averages = self._average_items()
        width = max([len("mAP")] + [len(c) for c in self.classes])
        head = [f"{t:.2f}" for t in self.tious] + [f"avg {name}" for name, _ in averages]
        cols = [max(6, len(h)) for h in head]
        lines = ["tIoU".ljust(width) + "".join(" " + h.rjust(w) for h, w in zip(head, cols))]
        for i, c in enumerate(self.classes):
            values = list(self.ap[:, i]) + [self.ap[self._mask(lo, hi), i].mean() for lo, hi in self._ranges()]
            lines.append(self._row(c, values, width, cols))
        lines.append(self._row("mAP", list(self.mAP) + [v for _, v in averages], width, cols))
        return "\n".join(lines)

    @staticmethod
    def _row(name: str, values: Sequence[float], width: int, cols: Sequence[int]) -> str:
        return name.ljust(width) + "".join(" " + f"{100 * v:.2f}".rjust(w) for v, w in zip(values, cols))


def detection_map(gt: Union[GroundTruth, dict, str, Path], predictions: Union[Predictions, dict, str, Path],
                  tious: Optional[Sequence[float]] = None, subset: Optional[str] = "test", *,
                  protocol: Union[str, Protocol, None] = None,
                  ambiguous: Union[str, Path, Dict[str, np.ndarray], None] = None,
                  unknown_videos: str = "false_positive") -> DetectionResult:
    """Detection AP/mAP exactly as the official ActivityNet ``ANETdetection`` computes it.

    Args:
        gt: ActivityNet ground-truth JSON (dict or file), a Thumos14reduced annotation folder,
            or a loaded GroundTruth.
        predictions: ActivityNet results ``{"results": {video: [{"label", "score", "segment"}]}}``
            (dict or file) or loaded Predictions.
        tious: (n,) thresholds; default the protocol's.
        subset: ground-truth videos evaluated (their ``subset`` field; None = all).
        protocol: ``"thumos14"`` | ``"anet13"`` | a Protocol: default thresholds and the averages
            reported (default: one average over all thresholds).
        ambiguous: ``Ambiguous_test.txt`` path or {video: (m, 2)}: predictions overlapping these
            segments are removed first (THUMOS14 option).
        unknown_videos: predictions on videos without ground truth in the subset:
            ``"false_positive"`` (official) | ``"skip"`` | ``"error"``; counted and warned about.

    Returns: DetectionResult with ap (n, C) and mAP (n,).
    Raises: EvaluationInputError (a ValueError) naming the file, video and key on bad input.
    """
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if tious is None and proto is None:
        raise ValueError("tious: give the thresholds or a protocol ('thumos14' or 'anet13')")
    tious = check_tious(proto.tious if tious is None else tious)
    gt = load_ground_truth(gt, subset)
    pred = load_predictions(predictions, gt, unknown_videos)
    if ambiguous is not None:
        pred = drop_ambiguous(pred, ambiguous if isinstance(ambiguous, dict) else read_ambiguous(ambiguous))
    _warn_about(gt, pred, unknown_videos)

    num_classes = len(gt.classes)
    npos = np.bincount(gt.label, minlength=num_classes)
    if len(pred):
        ap = average_precision(*match(gt, pred, tious), npos)
    else:
        ap = np.zeros((len(tious), num_classes))
    averages = proto.averages if proto is not None else ((float(tious.min()), float(tious.max())),)
    counts = {"unknown_video_predictions": pred.unknown, "unknown_video_policy": unknown_videos,
              "dropped_ambiguous": pred.dropped_ambiguous}
    return DetectionResult(tious, list(gt.classes), ap, ap.mean(axis=1), npos,
                           np.bincount(pred.label, minlength=num_classes), averages, counts)


def _warn_about(gt: GroundTruth, pred: Predictions, policy: str) -> None:
    """One EvaluationWarning per oddity: unknown videos, no predictions, classes without any."""
    if pred.unknown:
        fate = "counted as false positives (as the official evaluator does)" if policy == "false_positive" \
            else "skipped"
        warnings.warn(f"{pred.source}: {pred.unknown} predictions on {len(pred.unknown_videos)} videos without "
                      f"ground truth in subset {gt.subset!r} {fate}, e.g. {list(pred.unknown_videos[:_SHOWN])}"
                      + _prefix_hint(gt, pred.unknown_videos), EvaluationWarning, stacklevel=3)
    if not len(pred):
        warnings.warn(f"{pred.source}: no predictions to evaluate: every AP is 0", EvaluationWarning, stacklevel=3)
        return
    empty = [c for c, k in zip(gt.classes, np.bincount(pred.label, minlength=len(gt.classes))) if k == 0]
    if empty:
        warnings.warn(f"{pred.source}: no predictions for {len(empty)} of {len(gt.classes)} classes (AP 0): "
                      f"{empty[:_SHOWN]}", EvaluationWarning, stacklevel=3)


def _prefix_hint(gt: GroundTruth, unknown: Sequence[str]) -> str:
    """A hint when ids differ only by ActivityNet's ``v_`` prefix (folders have it, the JSON not)."""
    sample = unknown[:_SHOWN]
    if any(("v_" + v) in gt.video_index or (v.startswith("v_") and v[2:] in gt.video_index) for v in sample):
        return " (the ids differ by a 'v_' prefix: add or strip it on one side)"
    return ""
