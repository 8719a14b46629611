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


def synthetic_params(cfg: DataConfig) -> dict:
    """The generator parameters that define a synthetic set (and its cache key)."""
    from himnet_fast.data import synthetic

    version = getattr(synthetic, "GENERATOR_VERSION", getattr(synthetic, "__version__", "1"))
    return {"like": cfg.dataset, "dim": cfg.synth_dim, "seed": cfg.synth_seed, "generator": str(version)}


def synthetic_folder(cfg: DataConfig) -> Path:
    """Where the synthetic set of ``cfg`` lives (generated or not)."""
    params = synthetic_params(cfg)
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root(cfg) / f"synthetic-{cfg.dataset}-{key}"


def ensure_synthetic(cfg: DataConfig, log: Callable[[str], None] = print) -> Path:
    """The synthetic set's folder, generated first if absent (atomic: temp folder + rename)."""
    from himnet_fast.data import synthesize

    folder = synthetic_folder(cfg)
    if (folder / "params.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log(f"generating the synthetic {cfg.dataset}-like set into {folder} (once; cached)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        synthesize(tmp, like=cfg.dataset, dim=cfg.synth_dim, seed=cfg.synth_seed)
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
    return ensure_synthetic(cfg.data, log)


def open_dataset(cfg: RunConfig, log: Callable[[str], None] = print, check_features: bool = True):
    """Load and check the dataset of ``cfg``; raises :class:`DatasetError` on any problem."""
    from himnet_fast.data import load_dataset

    root = data_folder(cfg, log)
    try:
        dataset = load_dataset(root)
    except (ValueError, OSError) as exc:  # DataFormatError is a ValueError
        raise DatasetError(f"cannot load the dataset at {root}: {exc}") from exc
    check_dataset(dataset, root, check_features=check_features)
    return dataset


def check_dataset(dataset, root: Path, check_features: bool = True) -> None:
    """Cross-checks the trainer relies on (splits, labels, feature shapes); one
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
    if dataset.feature_dim % 2:
        problems.append(f"feature dim {dataset.feature_dim} is odd (expected RGB half | flow half)")
    if check_features:
        bad = []
        for i in range(n):
            shape = tuple(dataset.features(i).shape)
            if len(shape) != 2 or shape[0] < 1 or shape[1] != dataset.feature_dim:
                bad.append(f"{dataset.names[i]} {shape}")
        if bad:
            problems.append(f"{len(bad)} videos have features not of shape (T >= 1, {dataset.feature_dim}): "
                            + ", ".join(bad[:3]))
    if problems:
        raise DatasetError(f"dataset at {root} is inconsistent: " + "; ".join(problems))
