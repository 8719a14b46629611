"""Ground-truth annotations in the "Thumos14reduced" folder layout and in ActivityNet JSON.

The layout (W-TALC / CO2-Net / HAM-Net; used for THUMOS14 and ActivityNet1.3) is a folder of
numpy files, one entry per video, all in the same order:

=====================  =========================================================================
``videoname.npy``      video names (bytes in THUMOS14, str in ActivityNet1.3)
``subset.npy``         split per video (``validation``/``test``; ``train``/``val``/``test``)
``classlist.npy``      the C class names; index = class id
``segments.npy``       object array: per video a list of ``[start, end]`` in seconds
``labels.npy``         object array: per video a list of class names, one per segment
``labels_all.npy``     object array: per video the video-level class names
``duration.npy``       seconds, shape (N, 1) (THUMOS14) or (N,) (ActivityNet1.3)
``original_fps.npy``   optional, frames per second of the source video
=====================  =========================================================================

Video-level labels are read from ``labels_all.npy`` (as CO2-Net trains on them); in the
public THUMOS14 files 28 videos list a class there that differs from their segments' classes.

Checks, all done at load (they are cheap: one pass over the segments):

* always an error (:class:`DataFormatError` naming the file and the video): a missing or
  unreadable file, files of different lengths, a label absent from the class list, a
  number of segment labels that differs from the number of segments, a malformed segment,
  NaN/inf values, a negative start, a duration that is not positive;
* tolerated by default, an error with ``strict=True``: a segment ending after the video's
  duration and a zero-length segment. Both occur in the public files (30 THUMOS14 segments
  start after the recorded duration, 11 ActivityNet1.3 segments have zero length), and the
  official evaluation uses them as given, so they are kept unchanged and reported in one
  :class:`DataWarning` per file naming the count and the first videos. Ends up to
  ``tolerance`` (1 s) after the duration pass unreported.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .errors import DataFormatError, DataWarning

PathLike = Union[str, Path]

REQUIRED_FILES = ("videoname.npy", "subset.npy", "classlist.npy", "segments.npy", "labels.npy",
                  "labels_all.npy", "duration.npy")
_MAX_NAMED = 5  # videos named in one aggregated warning


def _text(x) -> str:
    """Decode one name stored as bytes, numpy bytes or str."""
    if isinstance(x, (bytes, np.bytes_)):
        return bytes(x).decode("utf-8")
    return str(x)


@dataclass
class Annotations:
    """Ground truth of N videos over C classes.

    Attributes:
        names: N video names.
        subsets: N split names (e.g. ``validation``/``test``).
        classlist: C class names; index = class id.
        durations: (N,) float64 seconds (NaN where unknown, e.g. a JSON without durations).
        segments: N arrays (n_i, 2) float64, ``[start, end]`` in seconds.
        segment_labels: N arrays (n_i,) int64 class ids, one per segment.
        video_labels: (N, C) float32 multi-hot video-level labels.
        original_fps: (N,) float64 frames per second of the source videos, or ``None``.
        source: the folder or file read (for messages).
    """

    names: List[str]
    subsets: List[str]
    classlist: List[str]
    durations: np.ndarray
    segments: List[np.ndarray]
    segment_labels: List[np.ndarray]
    video_labels: np.ndarray
    original_fps: Optional[np.ndarray] = None
    source: str = "<memory>"
    _index: Dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_classes(self) -> int:
        return len(self.classlist)

    def index_of(self, name: str) -> int:
        """Position of video ``name``; ``KeyError`` naming the source when absent."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"{self.source}: no video named {name!r}") from None

    def select(self, indices: Sequence[int]) -> "Annotations":
        """The annotations of the videos at ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        return Annotations([self.names[i] for i in idx], [self.subsets[i] for i in idx], list(self.classlist),
                           self.durations[idx], [self.segments[i] for i in idx],
                           [self.segment_labels[i] for i in idx], self.video_labels[idx],
                           None if self.original_fps is None else self.original_fps[idx], source=self.source)

    def indices(self, subset: Union[str, Sequence[str], None]) -> np.ndarray:
        """(n,) int64 positions of the videos in ``subset`` (a name, several, or None = all)."""
        if subset is None:
            return np.arange(len(self), dtype=np.int64)
        wanted = {subset} if isinstance(subset, str) else set(subset)
        unknown = wanted - set(self.subsets)
        if unknown:
            raise ValueError(f"subset: {sorted(unknown)} not in {self.source} "
                             f"(splits present: {sorted(set(self.subsets))})")
        return np.array([i for i, s in enumerate(self.subsets) if s in wanted], dtype=np.int64)


# ----------------------------------------------------------------------------------- reading

def _load(folder: Path, name: str, allow_pickle: bool = False) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise DataFormatError(path, "file not found (the annotation folder must hold "
                              + ", ".join(REQUIRED_FILES) + ")")
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except Exception as exc:  # numpy raises several types for corrupt files
        raise DataFormatError(path, f"cannot be read as a .npy file ({exc})") from exc


def _as_segments(value, path: Path, video: str) -> np.ndarray:
    """One video's segment list -> (n, 2) float64, or a DataFormatError."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(path, f"segments are not a list of [start, end] numbers ({exc})", video) from exc
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataFormatError(path, f"segments must be a list of [start, end] pairs, got shape {arr.shape}", video)
    if not np.isfinite(arr).all():
        raise DataFormatError(path, "segments contain NaN or inf", video)
    if (arr[:, 0] < 0).any():
        raise DataFormatError(path, f"segment starts before 0 s: {arr[arr[:, 0] < 0][0].tolist()}", video)
    if (arr[:, 1] < arr[:, 0]).any():
        raise DataFormatError(path, f"segment ends before it starts: {arr[arr[:, 1] < arr[:, 0]][0].tolist()}",
                              video)
    return arr


def _class_ids(labels: Iterable, class_index: Dict[str, int], path: Path, video: str) -> np.ndarray:
    ids = []
    for label in labels:
        text = _text(label)
        if text not in class_index:
            raise DataFormatError(path, f"label {text!r} is not in the class list", video)
        ids.append(class_index[text])
    return np.asarray(ids, dtype=np.int64)


class _SuspectLog:
    """Collects tolerated problems of one kind and reports them once (or raises if strict)."""

    def __init__(self, path: Path, problem: str, strict: bool):
        self.path, self.problem, self.strict = path, problem, strict
        self.videos: List[str] = []
        self.count = 0

    def add(self, video: str, n: int, detail: str) -> None:
        if self.strict:
            raise DataFormatError(self.path, f"{self.problem}: {detail} (strict=True)", video)
        self.count += n
        self.videos.append(video)

    def report(self) -> None:
        if self.count:
            shown = ", ".join(self.videos[:_MAX_NAMED]) + (", ..." if len(self.videos) > _MAX_NAMED else "")
            warnings.warn(f"{self.path}: {self.count} {self.problem} in {len(self.videos)} videos ({shown}); "
                          "kept as given (pass strict=True to reject)", DataWarning, stacklevel=4)


def check_segments(names: Sequence[str], durations: np.ndarray, segments: Sequence[np.ndarray],
                   path: PathLike, strict: bool = False, tolerance: float = 1.0) -> None:
    """Report segments ending after their video's duration (+ ``tolerance`` s) and zero-length
    segments: a :class:`DataWarning` (default) or a :class:`DataFormatError` (``strict``).

    Args: names (N,), durations (N,) seconds (NaN = unknown, not checked), segments N x (n_i, 2).
    """
    path = Path(path)
    over = _SuspectLog(path, "segments end after the video duration", strict)
    empty = _SuspectLog(path, "zero-length segments", strict)
    for name, dur, seg in zip(names, durations, segments):
        if len(seg) == 0:
            continue
        late = seg[:, 1] > dur + tolerance  # False where dur is NaN
        if late.any():
            over.add(name, int(late.sum()), f"segment {seg[late][0].tolist()} vs duration {float(dur):.3f} s")
        zero = seg[:, 1] == seg[:, 0]
        if zero.any():
            empty.add(name, int(zero.sum()), f"segment {seg[zero][0].tolist()}")
    over.report()
    empty.report()


def read_annotations(folder: PathLike, strict: bool = False, tolerance: float = 1.0) -> Annotations:
    """Read a Thumos14reduced-layout annotation folder (THUMOS14 or ActivityNet1.3).

    Args:
        folder: the folder holding ``videoname.npy``, ``subset.npy``, ... (see module doc).
        strict: also reject segments ending after the duration and zero-length segments.
        tolerance: seconds a segment may end after the duration unreported (ActivityNet1.3's
            segment ends and durations disagree by rounding in 1514 videos; 17 by over 1 s).

    Returns: :class:`Annotations` (segments in seconds, class ids, (N, C) multi-hot labels
    from ``labels_all.npy``, (N,) durations).

    Raises: :class:`DataFormatError` naming the file and the video on bad content.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(folder, "annotation folder not found")
    names = [_text(x) for x in _load(folder, "videoname.npy").reshape(-1)]
    n = len(names)

    def per_video(name: str, allow_pickle: bool = False) -> np.ndarray:
        arr = _load(folder, name, allow_pickle)
        if arr.shape[0] != n or (arr.ndim == 2 and arr.shape[1] != 1) or arr.ndim > 2:
            raise DataFormatError(folder / name, f"has shape {arr.shape}, expected ({n},) or ({n}, 1) "
                                  f"to match the {n} videos of videoname.npy")
        return arr.reshape(n) if arr.dtype != object else arr

    subsets = [_text(x) for x in per_video("subset.npy")]
    classlist = [_text(x) for x in _load(folder, "classlist.npy").reshape(-1)]
    if len(set(classlist)) != len(classlist):
        raise DataFormatError(folder / "classlist.npy", "class names are not unique")
    class_index = {c: i for i, c in enumerate(classlist)}

    durations = per_video("duration.npy").astype(np.float64)
    dpath = folder / "duration.npy"
    for name, d in zip(names, durations):
        if not np.isfinite(d) or d <= 0:
            raise DataFormatError(dpath, f"duration must be a positive number of seconds, got {d}", name)

    seg_raw = per_video("segments.npy", allow_pickle=True)
    lab_raw = per_video("labels.npy", allow_pickle=True)
    all_raw = per_video("labels_all.npy", allow_pickle=True)
    spath, lpath, apath = folder / "segments.npy", folder / "labels.npy", folder / "labels_all.npy"
    segments, segment_labels = [], []
    video_labels = np.zeros((n, len(classlist)), dtype=np.float32)
    for i, name in enumerate(names):
        seg = _as_segments(seg_raw[i], spath, name)
        ids = _class_ids(lab_raw[i], class_index, lpath, name)
        if len(ids) != len(seg):
            raise DataFormatError(lpath, f"{len(ids)} segment labels for {len(seg)} segments in segments.npy", name)
        video_labels[i, _class_ids(all_raw[i], class_index, apath, name)] = 1.0
        segments.append(seg)
        segment_labels.append(ids)
    check_segments(names, durations, segments, spath, strict, tolerance)

    fps = None
    if (folder / "original_fps.npy").is_file():
        fps = per_video("original_fps.npy").astype(np.float64)
    return Annotations(names, subsets, classlist, durations, segments, segment_labels, video_labels,
                       fps, source=str(folder))


def read_ground_truth_json(path: PathLike, classlist: Optional[Sequence[str]] = None,
                           strict: bool = False, tolerance: float = 1.0) -> Annotations:
    """Read ActivityNet-style ground truth JSON
    ``{"database": {video: {"subset", ["duration"], "annotations": [{"segment": [s, e], "label"}]}}}``.

    Segment values may be numbers or numeric strings (``gt_basnet.json`` stores strings).
    Args:
        classlist: the class order (ids); default the sorted set of labels found.
        strict, tolerance: as in :func:`read_annotations`.
    Returns: :class:`Annotations`; durations NaN where the JSON has none; video labels = the
    set of the video's segment labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "ground-truth JSON not found")
    try:
        with open(path) as fh:
            database = json.load(fh)["database"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataFormatError(path, f"not an ActivityNet ground-truth JSON with a 'database' key ({exc})") from exc
    if classlist is None:
        classlist = sorted({a.get("label") for v in database.values() for a in v.get("annotations", [])})
    classlist = [str(c) for c in classlist]
    class_index = {c: i for i, c in enumerate(classlist)}
    names, subsets, durations, segments, segment_labels = [], [], [], [], []
    for name, entry in database.items():
        anns = entry.get("annotations", [])
        names.append(name)
        subsets.append(str(entry.get("subset", "test")))
        durations.append(float(entry["duration"]) if entry.get("duration") is not None else np.nan)
        segments.append(_as_segments([a.get("segment") for a in anns], path, name))
        segment_labels.append(_class_ids([a.get("label") for a in anns], class_index, path, name))
    durations = np.asarray(durations, dtype=np.float64)
    bad = ~np.isnan(durations) & ~(durations > 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, f"duration must be positive, got {durations[i]}", names[i])
    check_segments(names, durations, segments, path, strict, tolerance)
    video_labels = np.zeros((len(names), len(classlist)), dtype=np.float32)
    for i, ids in enumerate(segment_labels):
        video_labels[i, ids] = 1.0
    return Annotations(names, subsets, classlist, durations, segments, segment_labels, video_labels,
                       None, source=str(path))


# ----------------------------------------------------------------------------------- writing

def ground_truth_json(annotations: Annotations, subset: Union[str, Sequence[str], None] = "test") -> dict:
    """ActivityNet JSON of the videos in ``subset`` (a name, several, or None = all):
    ``{"database": {video: {"subset", "duration", "annotations": [{"segment": [s, e], "label"}]}}}``,
    segments in seconds as floats, labels as class names, duration omitted where unknown."""
    database = {}
    for i in annotations.indices(subset):
        entry = {"subset": annotations.subsets[i]}
        if np.isfinite(annotations.durations[i]):
            entry["duration"] = float(annotations.durations[i])
        entry["annotations"] = [
            {"segment": [float(s), float(e)], "label": annotations.classlist[c]}
            for (s, e), c in zip(annotations.segments[i], annotations.segment_labels[i])
        ]
        database[annotations.names[i]] = entry
    return {"database": database}


def _object_array(items: Sequence) -> np.ndarray:
    """A 1-D object array of Python lists (np.array would build a 2-D array from equal lengths)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def write_annotations(annotations: Annotations, folder: PathLike, style: str = "thumos14") -> Path:
    """Write ``annotations`` as a Thumos14reduced-layout folder.

    ``style="thumos14"`` stores names as bytes and duration as (N, 1); ``"anet13"`` stores str
    and (N,), as the public files do. Returns the folder.
    """
    if style not in ("thumos14", "anet13"):
        raise ValueError(f"style: must be 'thumos14' or 'anet13', got {style!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    strings = (lambda xs: np.array([x.encode("utf-8") for x in xs])) if style == "thumos14" else np.array
    cls = annotations.classlist
    np.save(folder / "videoname.npy", strings(annotations.names))
    np.save(folder / "subset.npy", strings(annotations.subsets))
    np.save(folder / "classlist.npy", strings(cls))
    np.save(folder / "segments.npy", _object_array([s.tolist() for s in annotations.segments]),
            allow_pickle=True)
    np.save(folder / "labels.npy", _object_array([[cls[c] for c in ids] for ids in annotations.segment_labels]),
            allow_pickle=True)
    np.save(folder / "labels_all.npy",
            _object_array([[cls[c] for c in np.flatnonzero(row)] for row in annotations.video_labels]),
            allow_pickle=True)
    dur = np.asarray(annotations.durations, dtype=np.float64)
    np.save(folder / "duration.npy", dur.reshape(-1, 1) if style == "thumos14" else dur)
    if annotations.original_fps is not None:
        np.save(folder / "original_fps.npy", np.asarray(annotations.original_fps, dtype=np.float64))
    return folder
