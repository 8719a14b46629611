"""Reading and checking ground truth, predictions and ambiguous segments into flat arrays.

Row orders are the official ones (ActivityNet ``eval_detection.py``): ground-truth rows in
database order then annotation order, prediction rows in results order then list order;
class ids in order of first appearance in the ground truth (the official ``activity_index``).
Tie orders downstream depend on them.

Bad input raises :class:`EvaluationInputError` naming the file, video and key:
malformed JSON, a missing key, a segment that is not a list ``[start, end]`` of two finite
numbers, ``end < start`` (zero-length segments are allowed: ActivityNet has some), a score
that is not a finite number (negative scores are ranks like any other, as in the official
code: the base code's detector emits them), a predicted label that is not a ground-truth
class of the subset (an error in the official code too). A number is an int or float
(numpy's too), never a bool or a string; integer scores beyond int64 are read as float64.
Ground-truth segment values may also be numeric strings (``gt_basnet.json`` stores them;
the official code ``float()``s them), as may the fields of an ambiguous-segment text file.

Predictions on a video without a ground-truth entry in the subset ("unknown video") follow
``unknown_videos``: ``"false_positive"`` (default, what the official code does: they count
as false positives), ``"skip"`` (dropped) or ``"error"``. Either way they are counted in
:attr:`Predictions.unknown` and reported by the caller.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from itertools import chain
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple, Union

import numpy as np

from .errors import EvaluationInputError

PathLike = Union[str, Path]
UNKNOWN_VIDEO_POLICIES = ("false_positive", "skip", "error")
_SHOWN = 5  # names quoted in one message


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth instances of one subset in the official table's row order.

    Attributes:
        videos: the subset's V videos in database order (also those without annotations).
        classes: C labels in order of first appearance (official ``activity_index``).
        video: (n,) int64 index into ``videos``.
        label: (n,) int64 index into ``classes``.
        segments: (n, 2) float64 ``[start, end]`` seconds.
        subset: the subset kept (None = every video).
        source: file, folder or ``<dict>`` (for messages).
        other_subset_videos: videos of the database outside the subset.
    """

    videos: List[str]
    classes: List[str]
    video: np.ndarray
    label: np.ndarray
    segments: np.ndarray
    subset: Optional[str]
    source: str
    other_subset_videos: FrozenSet[str] = frozenset()
    video_index: Dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_index", {v: i for i, v in enumerate(self.videos)})

    @property
    def class_index(self) -> Dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}


@dataclass(frozen=True)
class Predictions:
    """Detections in the official prediction table's row order.

    Attributes:
        names: the result file's video ids in file order.
        name: (n,) int64 index into ``names``.
        video: (n,) int64 index into the ground truth's ``videos``; -1 for an unknown video.
        label: (n,) int64 index into the ground truth's ``classes``.
        segments: (n, 2) float64 ``[start, end]`` seconds.
        score: (n,) float64, or int64 when every score is an integer (the official pandas
            column's dtype, which decides how ``np.argsort`` breaks ties).
        source: file or ``<dict>`` (for messages).
        unknown: number of rows on unknown videos (kept as false positives or skipped).
        unknown_videos: the unknown video ids.
        dropped_ambiguous: rows removed by :func:`drop_ambiguous`.
    """

    names: List[str]
    name: np.ndarray
    video: np.ndarray
    label: np.ndarray
    segments: np.ndarray
    score: np.ndarray
    source: str
    unknown: int = 0
    unknown_videos: Tuple[str, ...] = ()
    dropped_ambiguous: int = 0

    def __len__(self) -> int:
        return len(self.label)

    def take(self, rows: np.ndarray, **changes) -> "Predictions":
        """The predictions at ``rows`` (an index or boolean mask), in their order."""
        return replace(self, name=self.name[rows], video=self.video[rows], label=self.label[rows],
                       segments=self.segments[rows], score=self.score[rows], **changes)


# ------------------------------------------------------------------------------ JSON files

def _read_json(path: PathLike, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(str(path), f"{what} file not found")
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise EvaluationInputError(str(path), f"malformed JSON ({exc})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationInputError(str(path), f"cannot read {what} ({exc})") from exc


def _top_level(data, key: str, source: str) -> dict:
    """``data[key]``, checked to be a JSON object."""
    if not isinstance(data, dict):
        raise EvaluationInputError(source, f"expected a JSON object with key {key!r}, got {type(data).__name__}")
    if key not in data:
        raise EvaluationInputError(source, f"missing top-level key (keys present: {sorted(data)[:_SHOWN]})", key=key)
    value = data[key]
    if not isinstance(value, dict):
        raise EvaluationInputError(source, f"must map video ids to entries, got {type(value).__name__}", key=key)
    return value


# ------------------------------------------------------------------------------- numbers

_NUMBER_TYPES = (int, float, np.integer, np.floating)


def _is_number_type(t: type, strings: bool = False) -> bool:
    """int or float (numpy's too), not bool; with ``strings`` also str (converted by float())."""
    return (issubclass(t, _NUMBER_TYPES) and not issubclass(t, bool)) or (strings and issubclass(t, str))


def _all_number_types(values: Iterable, strings: bool = False) -> bool:
    """The fast path's type check: one pass to collect the types, then a few type tests."""
    return all(_is_number_type(t, strings) for t in set(map(type, values)))


def _finite(value, strings: bool = False) -> Optional[float]:
    """``value`` as a float if it is a finite number (see :func:`_is_number_type`), else None."""
    if not _is_number_type(type(value), strings):
        return None
    try:
        x = float(value)
    except (ValueError, OverflowError):  # a non-numeric string, an int beyond float64
        return None
    return x if math.isfinite(x) else None


def _segment(value, source: str, video: str, key: str, strings: bool = False) -> Tuple[float, float]:
    """One ``[start, end]`` of finite numbers (``strings``: numeric strings too, see the module doc)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise EvaluationInputError(source, f"segment must be a list [start, end], got {value!r}", video, key)
    start, end = _finite(value[0], strings), _finite(value[1], strings)
    if start is None or end is None:
        raise EvaluationInputError(source, f"segment values must be finite numbers, got {value!r}", video, key)
    if end < start:
        raise EvaluationInputError(source, f"segment ends before it starts: {value!r}", video, key)
    return start, end


# ---------------------------------------------------------------------------- ground truth

def load_ground_truth(gt: Union[GroundTruth, dict, PathLike], subset: Optional[str] = "test") -> GroundTruth:
    """Ground truth from an ActivityNet JSON (dict or file) or a Thumos14reduced annotation folder.

    Args:
        gt: ``{"database": {video: {"subset", "annotations": [{"segment": [s, e], "label"}]}}}``,
            a path to such a file, a folder in the Thumos14reduced layout, or a GroundTruth
            (returned unchanged).
        subset: keep the videos whose ``subset`` equals this (None = all videos).
    """
    if isinstance(gt, GroundTruth):
        return gt
    if isinstance(gt, dict):
        return _parse_ground_truth(gt, subset, "<ground-truth dict>")
    path = Path(gt)
    if path.is_dir():
        from himnet_fast.data.annotations import ground_truth_json, read_annotations

        annotations = read_annotations(path)
        if subset is not None and subset not in set(annotations.subsets):
            _no_videos(str(path), subset, annotations.subsets)
        return _parse_ground_truth(ground_truth_json(annotations, subset), subset, str(path))
    return _parse_ground_truth(_read_json(path, "ground-truth"), subset, str(path))


def _no_videos(source: str, subset: str, present) -> None:
    raise EvaluationInputError(source, f"no video of subset {subset!r} (subsets present: {sorted(set(present))})",
                               key="subset")


def _parse_ground_truth(data: dict, subset: Optional[str], source: str) -> GroundTruth:
    database = _top_level(data, "database", source)
    videos, counts, labels, segments, other, present = [], [], [], [], set(), set()
    for vid, entry in database.items():
        if not isinstance(entry, dict) or "subset" not in entry:
            raise EvaluationInputError(source, "entry must be an object with a 'subset'", vid, "subset")
        present.add(str(entry["subset"]))
        if subset is not None and entry["subset"] != subset:
            other.add(vid)
            continue
        annotations = entry.get("annotations")
        if not isinstance(annotations, list):
            raise EvaluationInputError(source, "missing or not a list", vid, "annotations")
        videos.append(vid)
        counts.append(len(annotations))
        try:
            labels += [a["label"] for a in annotations]
            segments += [a["segment"] for a in annotations]
        except (KeyError, TypeError):
            _scan(((vid, annotations),), source, _check_annotation, "annotations")
    if subset is not None and not videos:
        _no_videos(source, subset, present)
    if not labels:
        raise EvaluationInputError(source, f"no ground-truth instance in subset {subset!r}: mAP is undefined")
    seg = _fast_segments(segments, strings=True)
    if seg is None or set(map(type, labels)) != {str}:
        _scan(((v, database[v]["annotations"]) for v in videos), source, _check_annotation, "annotations")
    class_index = {c: i for i, c in enumerate(dict.fromkeys(labels))}  # first appearance, as official
    label = np.fromiter(map(class_index.__getitem__, labels), dtype=np.int64, count=len(labels))
    video = np.repeat(np.arange(len(videos), dtype=np.int64), counts)
    return GroundTruth(videos, list(class_index), video, label, seg, subset, source, frozenset(other))


def _fast_segments(segments: list, strings: bool = False) -> Optional[np.ndarray]:
    """(n, 2) float64 of ``[start, end]`` items, or None if any is malformed (see :func:`_segment`),
    NaN/inf or ends before it starts (the caller then scans slowly for the message)."""
    # Types first: fromiter would read "19" as [1, 9], a dict as its keys, True as 1.
    if not set(map(type, segments)) <= {list, tuple} or (segments and set(map(len, segments)) != {2}) \
            or not _all_number_types(chain.from_iterable(segments), strings):
        return None
    try:
        flat = np.fromiter(chain.from_iterable(segments), dtype=np.float64, count=2 * len(segments))
    except (ValueError, OverflowError):  # a non-numeric string, an int beyond float64
        return None
    seg = flat.reshape(-1, 2)
    if not np.isfinite(flat).all() or (seg[:, 1] < seg[:, 0]).any():
        return None
    return seg


def _scan(videos: Iterable[Tuple[str, object]], source: str, check: Callable, what: str, *args) -> None:
    """Slow path: ``check(item, source, video, key, *args)`` on every item, raising the first
    precise error; if all pass, a generic one (the fast path failed for another reason)."""
    for vid, items in videos:
        if not isinstance(items, list):
            raise EvaluationInputError(source, f"must be a list of {what}, got {type(items).__name__}", vid)
        for k, item in enumerate(items):
            check(item, source, vid, f"{what}[{k}]" if what == "annotations" else f"[{k}]", *args)
    raise EvaluationInputError(source, f"cannot convert the {what} to numeric arrays", key=what)


def _check_annotation(ann, source: str, video: str, key: str) -> None:
    if not isinstance(ann, dict) or "label" not in ann or "segment" not in ann:
        raise EvaluationInputError(source, "annotation must have 'label' and 'segment'", video, key)
    if not isinstance(ann["label"], str):
        raise EvaluationInputError(source, f"label must be a string, got {ann['label']!r}", video, key + ".label")
    _segment(ann["segment"], source, video, key + ".segment", strings=True)


# ----------------------------------------------------------------------------- predictions

def load_predictions(predictions: Union[Predictions, dict, PathLike], gt: GroundTruth,
                     unknown_videos: str = "false_positive") -> Predictions:
    """Predictions in the ActivityNet results format, checked against ``gt``.

    Args:
        predictions: ``{"results": {video: [{"label", "score", "segment": [s, e]}]}}``, a path
            to such a file, or Predictions (returned unchanged).
        gt: the ground truth (gives class and video ids).
        unknown_videos: ``"false_positive"`` | ``"skip"`` | ``"error"`` (see module doc).
    """
    if unknown_videos not in UNKNOWN_VIDEO_POLICIES:
        raise ValueError(f"unknown_videos: must be one of {UNKNOWN_VIDEO_POLICIES}, got {unknown_videos!r}")
    if isinstance(predictions, Predictions):
        return predictions
    if isinstance(predictions, dict):
        source, data = "<predictions dict>", predictions
    else:
        source, data = str(predictions), _read_json(predictions, "predictions")
    results = _top_level(data, "results", source)
    return _apply_unknown_policy(_parse_results(results, gt, source), gt, unknown_videos)


def _parse_results(results: dict, gt: GroundTruth, source: str) -> Predictions:
    """Vectorised parsing; any failure re-scans slowly to name the first bad detection."""
    names, class_index = list(results), gt.class_index
    labels, scores, segments, counts = [], [], [], []
    try:
        for dets in results.values():
            labels += [d["label"] for d in dets]
            scores += [d["score"] for d in dets]
            segments += [d["segment"] for d in dets]
            counts.append(len(dets))
        # map(get) gives None for an unknown label, which fromiter rejects (TypeError)
        label = np.fromiter(map(class_index.get, labels), dtype=np.int64, count=len(labels))
        seg = _fast_segments(segments)
        ok = seg is not None and _all_number_types(scores)
        if ok:
            score = np.asarray(scores)
            # int64 where every score is one (the official dtype); else float64, big ints too
            score = score.astype(np.int64 if score.dtype.kind == "i" else np.float64, copy=False)
            ok = bool(np.isfinite(score).all())
    except (KeyError, TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        _scan(results.items(), source, _check_detection, "detections", class_index)
    name = np.repeat(np.arange(len(names), dtype=np.int64), counts)
    video = np.array([gt.video_index.get(v, -1) for v in names], dtype=np.int64)[name]
    return Predictions(names, name, video, label, seg, score, source)


def _check_detection(det, source: str, video: str, key: str, class_index: Dict[str, int]) -> None:
    if not isinstance(det, dict) or not {"label", "score", "segment"} <= set(det):
        raise EvaluationInputError(source, "detection must have 'label', 'score' and 'segment'", video, key)
    label, score = det["label"], det["score"]
    if not isinstance(label, str) or label not in class_index:
        raise EvaluationInputError(source, f"label {label!r} is not a ground-truth class of the subset "
                                   f"({len(class_index)} classes, e.g. {list(class_index)[:3]})", video, key + ".label")
    if _finite(score) is None:
        raise EvaluationInputError(source, f"score must be a finite number, got {score!r}", video, key + ".score")
    _segment(det["segment"], source, video, key + ".segment")


def _apply_unknown_policy(pred: Predictions, gt: GroundTruth, policy: str) -> Predictions:
    unknown = pred.video < 0
    if not unknown.any():
        return pred
    names = tuple(pred.names[i] for i in np.unique(pred.name[unknown]))
    if policy == "error":
        raise EvaluationInputError(pred.source, f"{int(unknown.sum())} predictions on {len(names)} videos without "
                                   f"ground truth in subset {gt.subset!r} (e.g. {list(names[:_SHOWN])})")
    changes = dict(unknown=int(unknown.sum()), unknown_videos=names)
    if policy == "skip":
        return pred.take(~unknown, **changes)
    return replace(pred, **changes)


# ----------------------------------------------------------------------- ambiguous segments

def read_ambiguous(path: PathLike) -> Dict[str, np.ndarray]:
    """THUMOS14 ``Ambiguous_test.txt`` (lines ``video start end``) -> {video: (m, 2) seconds}."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(str(path), "ambiguous-segment file not found")
    out: Dict[str, List[Tuple[float, float]]] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise EvaluationInputError(str(path), f"line {lineno}: expected 'video start end', got {line!r}")
        out.setdefault(fields[0], []).append(_segment(fields[1:], str(path), fields[0], f"line {lineno}", strings=True))
    return {video: np.asarray(segs, dtype=np.float64) for video, segs in out.items()}


def drop_ambiguous(pred: Predictions, ambiguous: Dict[str, np.ndarray]) -> Predictions:
    """Remove the predictions that overlap (intersection > 0 s) an ambiguous segment of their video.

    ambiguous: {video: (m, 2) seconds}, e.g. from :func:`read_ambiguous`. The remaining rows keep
    their order, so the result equals evaluating a results file without the removed detections.
    """
    drop = np.zeros(len(pred), dtype=bool)
    rows_by_name = np.argsort(pred.name, kind="stable")
    bounds = np.searchsorted(pred.name[rows_by_name], np.arange(len(pred.names) + 1))
    for n, vid in enumerate(pred.names):
        amb = ambiguous.get(vid)
        if amb is None or bounds[n] == bounds[n + 1]:
            continue
        rows = rows_by_name[bounds[n]:bounds[n + 1]]
        seg = pred.segments[rows]
        inter = np.minimum(seg[:, None, 1], amb[None, :, 1]) - np.maximum(seg[:, None, 0], amb[None, :, 0])
        drop[rows] = (inter > 0).any(axis=1)
    return pred.take(~drop, dropped_ambiguous=pred.dropped_ambiguous + int(drop.sum()))
