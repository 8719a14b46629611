"""The dataset of a run: a real feature folder, or the cached synthetic set; checked once.

``open_dataset(cfg)`` returns a loaded ``FeatureDataset`` after one pass of checks, so that
missing or inconsistent data stops the run with one clear ``ValueError`` before training.
The synthetic set is generated on first use into ``<cache>/synthetic-<like>-<hash>`` (the
hash covers the generator parameters), in a temporary folder renamed into place, so a
crashed generation never leaves a half-written cache and reruns regenerate it identically.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from himnet_fast.config import DataConfig, RunConfig


class DatasetError(ValueError):
    """The run's data is missing or inconsistent (raised before training starts)."""


def cache_root(cfg: DataConfig) -> Path:
    """The folder holding cached synthetic sets: ``cfg.cache_dir``, else
    ``$HIMNET_FAST_CACHE``, else ``~/.cache/himnet_fast``."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    env = os.environ.get("HIMNET_FAST_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "himnet_fast"


def generator_fingerprint() -> str:
    """A digest of the synthetic generator's source: a changed generator gets a new cache."""
    from himnet_fast.data import synth_annotations, synth_features, synth_writer

    digest = hashlib.sha256()
    for module in (synth_annotations, synth_features, synth_writer):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def feature_options(cfg: DataConfig) -> dict:
    """The ``FeatureModel`` fields that ``cfg`` sets (the rest keep their defaults): one list for the
    generator's call and for the cache key, so an option cannot reach one and miss the other."""
    return {"video_style": cfg.synth_video_style, "rectified": cfg.synth_rectified}


def synthetic_params(cfg: DataConfig) -> dict:
    """The generator parameters that define a synthetic set (and its cache key)."""
    return {"like": cfg.dataset, "dim": cfg.synth_dim, "seed": cfg.synth_seed, "videos": cfg.synth_videos,
            **feature_options(cfg), "generator": generator_fingerprint()}


def synthetic_folder(cfg: DataConfig) -> Path:
    """Where the synthetic set of ``cfg`` lives (generated or not)."""
    params = synthetic_params(cfg)
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root(cfg) / f"synthetic-{cfg.dataset}-{key}"


def ensure_synthetic(cfg: DataConfig, log: Callable[[str], None] = print, progress: bool = False) -> Path:
    """The synthetic set's folder, generated first if absent (atomic: temp folder + rename)."""
    from himnet_fast.data import synthesize
    from himnet_fast.data.synth_features import FeatureModel

    folder = synthetic_folder(cfg)
    if (folder / "params.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log(f"generating the synthetic {cfg.dataset}-like set into {folder} (once; cached)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        synthesize(tmp, like=cfg.dataset, dim=cfg.synth_dim, seed=cfg.synth_seed, videos=cfg.synth_videos,
                   model=FeatureModel(**feature_options(cfg)), progress=progress)
        # Written last: its presence marks a complete set.
        (tmp / "params.json").write_text(json.dumps(synthetic_params(cfg), indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "params.json").is_file():  # not a concurrent run finishing first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def data_folder(cfg: RunConfig, log: Callable[[str], None] = print) -> Path:
    """The feature folder of a run: ``--data-root`` or the (generated) synthetic set."""
    if cfg.data.data_root:
        root = Path(cfg.data.data_root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"--data-root: folder not found: {root}")
        return root
    return ensure_synthetic(cfg.data, log, progress=cfg.schedule.progress)


def open_dataset(cfg: RunConfig, log: Callable[[str], None] = print):
    """Load and check the dataset of ``cfg`` (every video's features included: shape, dtype,
    NaN/inf); raises :class:`DatasetError` on any problem."""
    from himnet_fast.data import load_dataset

    root = data_folder(cfg, log)
    try:
        dataset = load_dataset(root)
        dataset.validate(progress=cfg.schedule.progress)
    except (ValueError, OSError) as exc:  # DataFormatError is a ValueError
        raise DatasetError(f"cannot load the dataset at {root}: {exc}") from exc
    check_dataset(dataset, root)
    return dataset


def check_dataset(dataset, root: Path) -> None:
    """Cross-checks the trainer relies on beyond the loader's own (splits, labels); one
    :class:`DatasetError` listing what is wrong."""
    problems = []
    n = len(dataset.names)
    num_classes = len(dataset.classlist)
    if dataset.labels.shape != (n, num_classes):
        problems.append(f"labels have shape {dataset.labels.shape}, expected ({n}, {num_classes}) "
                        f"= (videos, classes)")
    if len(dataset.train_indices) == 0:
        problems.append("no training videos")
    if len(dataset.test_indices) == 0:
        problems.append("no test videos")
    unlabeled = [dataset.names[i] for i in dataset.train_indices if not dataset.labels[i].any()]
    if unlabeled:
        problems.append(f"{len(unlabeled)} training videos have no class label (e.g. {unlabeled[:3]})")
    if problems:
        raise DatasetError(f"dataset at {root} is inconsistent: " + "; ".join(problems))
