"""Where the snippet features of a dataset live: one packed object .npy, or per-video files.

A store gives raw access to video i (``shape(i)``, ``array(i)``, ``gather(i, idx, out)``) and
never holds a second copy of the features: the packed file is unpickled once (one array per
video, nothing stacked), per-video files are memory-mapped read-only. Stores check only what
they must to open a video; content checks are :class:`~.datasets.FeatureDataset`'s job.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .errors import DataFormatError


class PackedStore:
    """An object array of N (T_i, D) arrays in one ``.npy`` (CO2-Net's ``*-I3D-JOINTFeatures.npy``),
    in the order of the annotation's ``videoname.npy``."""

    def __init__(self, path: Path, names: Sequence[str]):
        self.path = Path(path)
        self.names = list(names)
        if not self.path.is_file():
            raise DataFormatError(self.path, "feature file not found")
        try:
            arrays = np.load(self.path, allow_pickle=True)  # one array per video; no stacking
        except Exception as exc:
            raise DataFormatError(self.path, f"cannot be read as a .npy file ({exc})") from exc
        if arrays.dtype != object or arrays.ndim != 1:
            raise DataFormatError(self.path, "expected a 1-D object array of per-video (T_i, D) arrays, "
                                  f"got dtype {arrays.dtype} shape {arrays.shape}")
        if len(arrays) != len(self.names):
            raise DataFormatError(self.path, f"holds features of {len(arrays)} videos but the annotations "
                                  f"list {len(self.names)} (videoname.npy): the feature count must match")
        for i, x in enumerate(arrays):
            if not isinstance(x, np.ndarray):
                raise DataFormatError(self.path, f"entry {i} is a {type(x).__name__}, not an array", self.names[i])
        self.arrays = arrays

    def describe(self, i: int) -> Path:
        return self.path

    def shape(self, i: int) -> Tuple[int, ...]:
        return self.arrays[i].shape

    def dtype(self, i: int) -> np.dtype:
        return self.arrays[i].dtype

    def array(self, i: int) -> np.ndarray:
        """(T_i, D) the stored array itself (no copy)."""
        return self.arrays[i]

    def gather(self, i: int, idx: np.ndarray, out: np.ndarray) -> None:
        """out[:] = features(i)[idx]; out (len(idx), D)."""
        np.take(self.arrays[i], idx, axis=0, out=out)


def write_packed(path: Path, arrays: np.ndarray) -> None:
    """Save N per-video arrays as one object ``.npy`` that ``np.load(allow_pickle=True)`` reads,
    as ``np.save`` would, but without its second copy: ``np.save`` pickles with a memo that
    keeps every array's bytes alive until the end (2x the features at peak); fast mode has no
    memo (safe here: the object graph is a flat list of arrays)."""
    if arrays.dtype != object or arrays.ndim != 1:
        raise ValueError(f"arrays: expected a 1-D object array, got dtype {arrays.dtype} shape {arrays.shape}")
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(arrays))
        pickler = pickle.Pickler(fh, protocol=3)
        pickler.fast = True
        pickler.dump(arrays)


class PerVideoStore:
    """``features/<split>/{rgb,flow}/<video>.npy`` files, (T_i, D/2) each, memory-mapped on first
    use (the header is read then; the data pages only when touched)."""

    def __init__(self, rgb_paths: Sequence[Path], flow_paths: Sequence[Path], names: Sequence[str]):
        self.rgb_paths, self.flow_paths, self.names = list(rgb_paths), list(flow_paths), list(names)
        self._maps: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}

    def describe(self, i: int) -> Path:
        return self.rgb_paths[i].parent.parent

    def _open(self, path: Path, i: int) -> np.ndarray:
        try:
            x = np.load(path, mmap_mode="r")
        except FileNotFoundError:
            raise DataFormatError(path, "feature file not found", self.names[i]) from None
        except Exception as exc:
            raise DataFormatError(path, f"cannot be read as a .npy file ({exc})", self.names[i]) from exc
        if x.ndim != 2:
            raise DataFormatError(path, f"expected a 2-D (T, D/2) array, got shape {x.shape}", self.names[i])
        return x

    def maps(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """The (rgb, flow) memmaps of video i, each (T_i, D/2)."""
        if i not in self._maps:
            rgb, flow = self._open(self.rgb_paths[i], i), self._open(self.flow_paths[i], i)
            if rgb.shape[0] != flow.shape[0]:
                raise DataFormatError(self.flow_paths[i], f"{flow.shape[0]} flow snippets but {rgb.shape[0]} RGB "
                                      f"snippets in {self.rgb_paths[i]}", self.names[i])
            if rgb.dtype != flow.dtype:
                raise DataFormatError(self.flow_paths[i], f"dtype {flow.dtype} differs from RGB's {rgb.dtype}",
                                      self.names[i])
            self._maps[i] = (rgb, flow)
        return self._maps[i]

    def shape(self, i: int) -> Tuple[int, ...]:
        rgb, flow = self.maps(i)
        return (rgb.shape[0], rgb.shape[1] + flow.shape[1])

    def dtype(self, i: int) -> np.dtype:
        return self.maps(i)[0].dtype

    def array(self, i: int) -> np.ndarray:
        """(T_i, D) RGB | flow: a new array of this one video (the two halves live in two files)."""
        return np.concatenate(self.maps(i), axis=1)

    def gather(self, i: int, idx: np.ndarray, out: np.ndarray) -> None:
        """out[:] = features(i)[idx], reading only the rows asked for."""
        rgb, flow = self.maps(i)
        h = rgb.shape[1]
        np.take(rgb, idx, axis=0, out=out[:, :h])
        np.take(flow, idx, axis=0, out=out[:, h:])


def find_per_video_files(features_dir: Path, splits: Sequence[str], modalities: Sequence[str]
                         ) -> Dict[str, List[Tuple[str, Path, Path]]]:
    """Per split, the (video, rgb path, flow path) found under ``features_dir/<split>/<modality>``
    (sorted by name). A video with one modality file but not the other is an error."""
    found = {}
    for split in splits:
        dirs = [features_dir / split / m for m in modalities]
        for d in dirs:
            if not d.is_dir():
                raise DataFormatError(d, "feature folder not found (per-video layout: "
                                      "features/{train,test}/{rgb,flow}/<video>.npy)")
        rgb = {p.stem: p for p in dirs[0].glob("*.npy")}
        flow = {p.stem: p for p in dirs[1].glob("*.npy")}
        for name in sorted(rgb.keys() ^ flow.keys()):
            missing = dirs[1] if name in rgb else dirs[0]
            raise DataFormatError(missing / f"{name}.npy", "feature file not found (the other modality has one)",
                                  name)
        found[split] = [(name, rgb[name], flow[name]) for name in sorted(rgb)]
    return found
