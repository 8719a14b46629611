"""Checkpoints: atomic writes, RNG states, numpy-safe payloads.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)`` (no arbitrary unpickling). Numpy arrays inside
states (e.g. numpy's legacy RNG key) are stored as tagged tensors and restored on load.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

_NDARRAY_TAG = "__ndarray__"


def to_plain(obj: Any) -> Any:
    """Recursively replace numpy arrays / scalars by tensors / Python scalars (tagged so that
    :func:`from_plain` can restore them) and tuples by lists."""
    if isinstance(obj, np.ndarray):
        return {_NDARRAY_TAG: torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain` (tuples come back as lists)."""
    if isinstance(obj, dict):
        if set(obj) == {_NDARRAY_TAG}:
            return obj[_NDARRAY_TAG].numpy()
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj


def rng_state() -> dict:
    """The global RNG states of Python, numpy and torch (CPU, and CUDA where present)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore states captured by :func:`rng_state` (after a :func:`from_plain` round trip)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(payload: dict, path: Union[str, Path]) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, fsync,
    then ``os.replace``, so an interrupted run never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(to_plain(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; a missing or unreadable file
    raises a ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint: file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"checkpoint: cannot read {path}: {exc}") from exc
    if not isinstance(payload, dict) or "config" not in payload or "model" not in payload:
        raise ValueError(f"checkpoint: {path} is not a himnet_fast checkpoint (no 'config'/'model' entries)")
    return from_plain(payload)
