"""Feature datasets in the public layouts, behind one class.

``load_dataset(root)`` recognises, in this order:

* ``thumos14``: ``root/Thumos14reduced-I3D-JOINTFeatures.npy`` + ``root/Thumos14reduced-Annotations/``;
  training split ``validation``, test split ``test``;
* ``anet13``: ``root/ActivityNet1.3-I3D-JOINTFeatures.npy`` + ``root/ActivityNet1.3-Annotations/``;
  training split ``train``, test split ``val``;
* ``per_video`` (BaS-Net / UM): ``root/features/{train,test}/{rgb,flow}/<video>.npy``, ground
  truth in ``root/annotations/`` (reduced layout) or ``root/gt.json`` (ActivityNet JSON), or
  given with ``annotations=``. The folder (train/test) decides the split. Feature files of
  videos absent from the ground truth are skipped with a warning (BaS-Net's gt.json drops two
  THUMOS14 test videos); annotated videos of a loaded subset without features are reported.

Features are X (T_i, D) float32 = [RGB D/2 | flow D/2], one row per 16-frame snippet at 25 fps.

Checks (bad input raises :class:`DataFormatError` naming the file and the video):

* at load: the annotations (see :mod:`.annotations`), missing files, a feature count that
  differs from the annotation count, both splits present; for the packed layouts also every
  video's shape and dtype (they are in memory already): 2-D, float32, D equal for all, T_i > 0;
* on first access to a video (``features``/``gather``/``num_snippets``): the same shape and
  dtype checks for per-video files (the header is read then), and for every layout NaN/inf
  and values beyond :data:`FEATURE_LIMIT` (they overflow the network's float32 arithmetic);
* :meth:`FeatureDataset.validate`: all of the above for every video (progress bar), plus a
  :class:`DataWarning` for videos whose T_i differs from duration * 25/16 by over 10% + 2.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from himnet_fast.geometry import SNIPPET_SECONDS

from .annotations import Annotations, ground_truth_json, read_annotations, read_ground_truth_json
from .errors import DataFormatError, DataWarning
from .layouts import PACKED_LAYOUTS, PER_VIDEO, PackedLayout
from .stores import PackedStore, PerVideoStore, find_per_video_files

PathLike = Union[str, Path]
_MAX_NAMED = 5
# Largest |feature| accepted. I3D features are post-ReLU averages, below ~100; the network
# multiplies features by features (the gate bit * channel, the VCL cosine's sums of D
# squares), which overflow float32 (max 3.4e38) past |x| ~ sqrt(3.4e38 / D), 4e17 at D = 2048
# (measured: a D = 32 model trains at |x| = 1e18 and fails at 1e19). 1e6 leaves a 1e4 margin
# over real features and over 1e11 below overflow.
FEATURE_LIMIT = 1e6


def _named(names: Sequence[str]) -> str:
    return ", ".join(names[:_MAX_NAMED]) + (", ..." if len(names) > _MAX_NAMED else "")


class FeatureDataset:
    """N videos: ground truth (:class:`Annotations`) + snippet features (a store).

    Attributes: ``name`` ("thumos14" | "anet13" | "per_video"), ``annotations``,
    ``train_indices``/``test_indices`` (n,) int64, ``split_names`` {"train": subset, "test": subset},
    ``feature_dim`` D; ``names``, ``classlist``, ``labels`` (N, C) float32 multi-hot,
    ``subsets``, ``durations`` (N,) s, ``segments`` N x (n_i, 2) s, ``segment_labels``
    N x (n_i,) int64 mirror the annotations.
    """

    def __init__(self, name: str, annotations: Annotations, store, train_indices: np.ndarray,
                 test_indices: np.ndarray, split_names: dict):
        self.name = name
        self.annotations = annotations
        self.store = store
        self.train_indices = np.asarray(train_indices, dtype=np.int64)
        self.test_indices = np.asarray(test_indices, dtype=np.int64)
        self.split_names = dict(split_names)
        self._checked = np.zeros(len(annotations), dtype=bool)
        self._shape_ok = np.zeros(len(annotations), dtype=bool)
        self.feature_dim = self._check_shape(0)[1] if len(annotations) else 0

    # ground truth, mirrored for convenience -------------------------------------------------
    names = property(lambda self: self.annotations.names)
    classlist = property(lambda self: self.annotations.classlist)
    labels = property(lambda self: self.annotations.video_labels)
    subsets = property(lambda self: self.annotations.subsets)
    durations = property(lambda self: self.annotations.durations)
    segments = property(lambda self: self.annotations.segments)
    segment_labels = property(lambda self: self.annotations.segment_labels)

    @property
    def num_classes(self) -> int:
        return self.annotations.num_classes

    def __len__(self) -> int:
        return len(self.annotations)

    def __repr__(self) -> str:
        return (f"FeatureDataset({self.name!r}, {len(self)} videos, {self.num_classes} classes, "
                f"D={self.feature_dim}, train={len(self.train_indices)}, test={len(self.test_indices)})")

    # checks --------------------------------------------------------------------------------
    def _check_shape(self, i: int):
        """Shape and dtype of video i (2-D, float32, D, T > 0), checked once."""
        shape = self.store.shape(i)
        if not self._shape_ok[i]:
            where, video = self.store.describe(i), self.names[i]
            if len(shape) != 2:
                raise DataFormatError(where, f"features must be 2-D (T, D), got shape {shape}", video)
            if shape[0] == 0:
                raise DataFormatError(where, "zero-length video: the features have no snippets", video)
            dtype = self.store.dtype(i)
            if dtype != np.float32:
                raise DataFormatError(where, f"features must be float32, got {dtype} "
                                      "(convert the file with .astype(np.float32))", video)
            if i > 0 and shape[1] != self.feature_dim:
                raise DataFormatError(where, f"feature dim {shape[1]} differs from the dataset's D = "
                                      f"{self.feature_dim} (video {self.names[0]!r})", video)
            if shape[1] % 2:
                raise DataFormatError(where, f"feature dim {shape[1]} is odd; expected RGB | flow halves", video)
            self._shape_ok[i] = True
        return shape

    def _check(self, i: int) -> None:
        """All per-video checks of video i (shape, dtype, NaN/inf, magnitude), once per video."""
        if self._checked[i]:
            return
        self._check_shape(i)
        x = self.store.array(i)
        if x.size and not max(x.max(), -x.min()) <= FEATURE_LIMIT:  # NaN propagates; no copy of x
            where, video = self.store.describe(i), self.names[i]
            if not np.isfinite(x).all():
                bad = np.argwhere(~np.isfinite(x))[0]
                raise DataFormatError(where, f"features contain NaN or inf (first at snippet "
                                      f"{bad[0]}, dim {bad[1]})", video)
            t, d = np.unravel_index(np.argmax(np.abs(x)), x.shape)
            raise DataFormatError(where, f"features reach |x| = {abs(x[t, d]):.3g} at snippet {t}, dim {d}, over the "
                                  f"{FEATURE_LIMIT:g} accepted (I3D features are below ~100; far larger values "
                                  "overflow the network's float32 arithmetic): rescale them", video)
        self._checked[i] = True

    def validate(self, progress: bool = True) -> "FeatureDataset":
        """Check every video now (see the module doc); returns self."""
        off = []
        for i in tqdm(range(len(self)), desc=f"validate {self.name}", disable=not progress, unit="video"):
            self._check(i)
            expected = self.durations[i] / SNIPPET_SECONDS
            if np.isfinite(expected) and abs(self.num_snippets(i) - expected) > 0.1 * expected + 2:
                off.append(f"{self.names[i]} (T={self.num_snippets(i)}, duration {self.durations[i]:.1f} s)")
        if off:
            warnings.warn(f"{self.store.describe(0)}: {len(off)} videos have a snippet count far from "
                          f"duration * 25/16: {_named(off)}", DataWarning, stacklevel=2)
        return self

    # features ------------------------------------------------------------------------------
    def num_snippets(self, i: int) -> int:
        """T_i of video i."""
        return int(self._check_shape(i)[0])

    def features(self, i: int) -> np.ndarray:
        """(T_i, D) float32 features of video i: the stored array (packed) or a new array of this
        video built from its two memory-mapped files (per-video). Checked on first access."""
        self._check(i)
        return self.store.array(i)

    def gather(self, i: int, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write snippets ``idx`` (T,) of video i into ``out`` (T, D) float32 without an
        intermediate copy; returns ``out``."""
        self._check(i)
        self.store.gather(i, idx, out)
        return out

    # ground truth --------------------------------------------------------------------------
    def split_indices(self, split: str) -> np.ndarray:
        """(n,) int64 videos of ``split``: "train", "test" or a subset name."""
        if split == "train":
            return self.train_indices
        if split == "test":
            return self.test_indices
        return self.annotations.indices(split)

    def ground_truth(self, subset: str = "test") -> dict:
        """ActivityNet JSON (seconds) of the videos of ``subset`` ("train", "test" or a subset name)."""
        return ground_truth_json(self.annotations.select(self.split_indices(subset)), None)


# ------------------------------------------------------------------------------------ loaders

def _split_indices(annotations: Annotations, subset: str, where: Path) -> np.ndarray:
    idx = np.flatnonzero(np.asarray(annotations.subsets) == subset)
    if len(idx) == 0:
        raise DataFormatError(where, f"no video of subset {subset!r} (subsets present: "
                              f"{sorted(set(annotations.subsets))})")
    return idx.astype(np.int64)


def load_packed(root: PathLike, layout: PackedLayout, strict: bool = False) -> FeatureDataset:
    """THUMOS14 / ActivityNet1.3 in the CO2-Net layout (``layout`` from :mod:`.layouts`)."""
    root = Path(root)
    ann_dir = root / layout.annotations_dir
    annotations = read_annotations(ann_dir, strict=strict)
    store = PackedStore(root / layout.features_file, annotations.names)
    train = _split_indices(annotations, layout.train_subset, ann_dir / "subset.npy")
    test = _split_indices(annotations, layout.test_subset, ann_dir / "subset.npy")
    ds = FeatureDataset(layout.name, annotations, store, train, test, layout.splits)
    for i in range(len(ds)):  # cheap: the arrays are in memory
        ds._check_shape(i)
    return ds


def _read_any_annotations(path: Path, classlist: Optional[Sequence[str]], strict: bool) -> Annotations:
    if path.is_dir():
        return read_annotations(path, strict=strict)
    return read_ground_truth_json(path, classlist=classlist, strict=strict)


def load_per_video(root: PathLike, annotations: Optional[PathLike] = None,
                   classlist: Optional[Sequence[str]] = None, strict: bool = False) -> FeatureDataset:
    """BaS-Net / UM layout (see the module doc). ``annotations``: a reduced-layout folder or a
    ground-truth JSON (default ``root/annotations/`` then ``root/gt.json``); ``classlist`` fixes
    the class order of a JSON (default: sorted labels)."""
    root = Path(root)
    if annotations is None:
        candidates = [root / PER_VIDEO.annotations_dir, root / PER_VIDEO.gt_json]
        found = [p for p in candidates if p.exists()]
        if not found:
            raise DataFormatError(root, f"no ground truth: expected {candidates[0]} or {candidates[1]}")
        annotations = found[0]
    full = _read_any_annotations(Path(annotations), classlist, strict)
    files = find_per_video_files(root / PER_VIDEO.features_dir, PER_VIDEO.split_dirs, PER_VIDEO.modalities)

    rows, rgb, flow, split_of, unknown = [], [], [], [], []
    known = set(full.names)
    for split, entries in files.items():
        for name, r, f in entries:
            if name not in known:
                unknown.append(name)
                continue
            rows.append(full.index_of(name))
            rgb.append(r)
            flow.append(f)
            split_of.append(split)
    if unknown:
        warnings.warn(f"{root / PER_VIDEO.features_dir}: {len(unknown)} videos have features but no ground "
                      f"truth in {annotations} and are skipped: {_named(unknown)}", DataWarning, stacklevel=2)
    loaded_subsets = {full.subsets[r] for r in rows}
    have = set(rows)
    lacking = [n for j, n in enumerate(full.names) if full.subsets[j] in loaded_subsets and j not in have]
    if lacking:
        warnings.warn(f"{root / PER_VIDEO.features_dir}: {len(lacking)} annotated videos of subsets "
                      f"{sorted(loaded_subsets)} have no features and are left out: {_named(lacking)}",
                      DataWarning, stacklevel=2)
    ann = full.select(rows)
    split_of = np.asarray(split_of)
    train_dir, test_dir = PER_VIDEO.split_dirs
    for split in (train_dir, test_dir):
        if not (split_of == split).any():
            raise DataFormatError(root / PER_VIDEO.features_dir / split, "no annotated video has features here")
    store = PerVideoStore(rgb, flow, ann.names)
    return FeatureDataset(PER_VIDEO.name, ann, store, np.flatnonzero(split_of == train_dir),
                          np.flatnonzero(split_of == test_dir), {"train": train_dir, "test": test_dir})


def detect_layout(root: PathLike) -> str:
    """"thumos14" | "anet13" | "per_video" from the files under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(root, "dataset folder not found")
    for layout in PACKED_LAYOUTS.values():
        if (root / layout.features_file).is_file():
            return layout.name
    if (root / PER_VIDEO.features_dir).is_dir():
        return PER_VIDEO.name
    expected: List[str] = [layout.features_file for layout in PACKED_LAYOUTS.values()]
    raise DataFormatError(root, f"no known feature layout: expected one of {expected} or a "
                          f"{PER_VIDEO.features_dir}/ folder")


def load_dataset(root: PathLike, name: Optional[str] = None, annotations: Optional[PathLike] = None,
                 strict: bool = False) -> FeatureDataset:
    """Load a feature set.

    Args:
        root: the dataset folder.
        name: "thumos14" | "anet13" | "per_video"; None = detect from the files.
        annotations: per-video layout only: ground-truth folder or JSON (default: found in root).
        strict: reject tolerated annotation oddities too (see :mod:`.annotations`).
    Returns: :class:`FeatureDataset`.
    """
    name = detect_layout(root) if name is None else name
    if name in PACKED_LAYOUTS:
        if annotations is not None:
            raise ValueError(f"annotations: only for the per_video layout; {name} reads "
                             f"{PACKED_LAYOUTS[name].annotations_dir}/")
        return load_packed(root, PACKED_LAYOUTS[name], strict=strict)
    if name == PER_VIDEO.name:
        return load_per_video(root, annotations, strict=strict)
    raise ValueError(f"name: must be one of {sorted(PACKED_LAYOUTS) + [PER_VIDEO.name]}, got {name!r}")
