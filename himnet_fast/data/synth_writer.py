"""Write a synthetic THUMOS14- or ActivityNet1.3-like feature set in a public layout
(the CLI is ``python -m himnet_fast.synthesize``).

Ground truth comes from a real annotation folder (``--annotations``, e.g. ``../shared/data/thumos14``:
real names, lengths, segments, labels; T_i = floor(duration * 25/16)) or, without it, from the
benchmark's built-in statistics (:mod:`.synth_annotations`). ``--videos N`` keeps N videos
(the first of each split in the benchmark's proportions). Features follow
:mod:`.synth_features` (its docstring explains the design and the MIL failure mode).

Layouts: ``packed`` writes ``Thumos14reduced-I3D-JOINTFeatures.npy`` + ``Thumos14reduced-Annotations/``
(or the ActivityNet1.3 names), exactly as CO2-Net reads them; ``per_video`` writes
``features/{train,test}/{rgb,flow}/<video>.npy`` + ``annotations/``.
A full THUMOS14-size set at D=2048 is about 1.1 GB, a full ActivityNet1.3-size one (13,459
videos) about 20 GB: write them outside the repository, or pass ``videos``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .annotations import Annotations, read_annotations, write_annotations
from .layouts import PACKED_LAYOUTS, PER_VIDEO, PackedLayout
from .stores import write_packed
from .synth_annotations import BUILTIN_STATS, proportional_counts, synth_annotations
from .synth_features import FeatureModel, iter_features

PathLike = Union[str, Path]


def subsample(annotations: Annotations, videos: int) -> Annotations:
    """The first videos of each split, ``videos`` in all, in the splits' proportions (order kept)."""
    subsets = list(dict.fromkeys(annotations.subsets))
    per_split = [annotations.indices(s) for s in subsets]
    counts = proportional_counts([len(ix) for ix in per_split], videos)
    keep = np.sort(np.concatenate([ix[:n] for ix, n in zip(per_split, counts)]))
    return annotations.select(keep)


def _write_packed(out: Path, layout: PackedLayout, annotations: Annotations, model: FeatureModel,
                  seed: int, progress: bool) -> None:
    feats = np.empty(len(annotations), dtype=object)
    for i, x in enumerate(iter_features(annotations, model, seed, progress=progress)):
        feats[i] = x
    write_annotations(annotations, out / layout.annotations_dir, style=layout.style)
    write_packed(out / layout.features_file, feats)


def _write_per_video(out: Path, layout: PackedLayout, annotations: Annotations, model: FeatureModel,
                     seed: int, progress: bool) -> None:
    folder_of = {layout.train_subset: PER_VIDEO.split_dirs[0], layout.test_subset: PER_VIDEO.split_dirs[1]}
    keep = [i for i, s in enumerate(annotations.subsets) if s in folder_of]
    annotations = annotations.select(keep)
    half = model.dim // 2
    for split in PER_VIDEO.split_dirs:
        for mod in PER_VIDEO.modalities:
            (out / PER_VIDEO.features_dir / split / mod).mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(iter_features(annotations, model, seed, progress=progress)):
        base = out / PER_VIDEO.features_dir / folder_of[annotations.subsets[i]]
        np.save(base / PER_VIDEO.modalities[0] / f"{annotations.names[i]}.npy", x[:, :half])
        np.save(base / PER_VIDEO.modalities[1] / f"{annotations.names[i]}.npy", x[:, half:])
    write_annotations(annotations, out / PER_VIDEO.annotations_dir, style=layout.style)


def synthesize(out_dir: PathLike, like: str = "thumos14", annotations: Optional[PathLike] = None,
               dim: int = 2048, seed: int = 0, videos: Optional[int] = None, layout: str = "packed",
               model: Optional[FeatureModel] = None, progress: bool = False) -> Path:
    """Write a synthetic feature set and return ``out_dir`` (loadable by ``load_dataset``).

    Args:
        out_dir: created if needed.
        like: "thumos14" | "anet13": file names, splits and built-in statistics.
        annotations: a real annotation folder to build on (None = built-in statistics).
        dim: feature size D (even: RGB half + flow half); overrides ``model.dim``.
        seed: everything depends on it only.
        videos: keep this many videos (None = all / the benchmark's count).
        layout: "packed" (one object .npy, as CO2-Net) | "per_video" (BaS-Net).
        model: feature amplitudes (:class:`FeatureModel`).
        progress: show a progress bar.
    """
    if like not in PACKED_LAYOUTS:
        raise ValueError(f"like: must be one of {sorted(PACKED_LAYOUTS)}, got {like!r}")
    if layout not in ("packed", "per_video"):
        raise ValueError(f"layout: must be 'packed' or 'per_video', got {layout!r}")
    if videos is not None and videos < 1:
        raise ValueError(f"videos: must be >= 1, got {videos}")
    model = replace(model or FeatureModel(), dim=dim)
    if annotations is None:
        ann = synth_annotations(BUILTIN_STATS[like], videos, seed)
    else:
        ann = read_annotations(annotations)
        if videos is not None:
            ann = subsample(ann, videos)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = _write_packed if layout == "packed" else _write_per_video
    writer(out, PACKED_LAYOUTS[like], ann, model, seed, progress)
    return out
