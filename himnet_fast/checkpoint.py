"""Checkpoints: atomic writes, checksums, the previous checkpoint kept, RNG states, numpy-safe
payloads.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)`` (no arbitrary unpickling). Numpy arrays inside
states (e.g. numpy's legacy RNG key) are stored as tagged tensors and restored on load.
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
import warnings
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


class CheckpointWarning(UserWarning):
    """A checkpoint could not be verified, or a damaged one was replaced by the previous one."""


def previous_path(path: Union[str, Path]) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint it replaced: ``<stem>.prev<suffix>``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def manifest_path(path: Union[str, Path]) -> Path:
    """The checksum file of ``path`` and its previous one: ``<stem>.sha256``, in ``sha256sum``
    format (``sha256sum -c checkpoint.sha256`` checks both)."""
    path = Path(path)
    stem = path.stem[:-len(".prev")] if path.stem.endswith(".prev") else path.stem  # one file for the pair
    return path.with_name(f"{stem}.sha256")


def _read_manifest(path: Path) -> dict:
    """{file name: sha256 hex digest} from a manifest (empty if missing or unreadable)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    entries = (line.split(None, 1) for line in lines if line.strip())
    return {name.strip(): digest for digest, name in entries}


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync, rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(payload: dict, path: Union[str, Path]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, ``os.replace``), so an
    interrupted run never leaves a truncated checkpoint. The checkpoint it replaces becomes
    :func:`previous_path`, and :func:`manifest_path` records the SHA-256 of both.

    Crash safety: the manifest is rewritten last and :func:`load_checkpoint` accepts a file
    whose digest is any of the manifest's, so a kill at any point leaves one verifiable
    checkpoint (the new one, or the one before it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(to_plain(payload), buffer)
    data = buffer.getvalue()
    old = _read_manifest(manifest_path(path))
    entries = {path.name: hashlib.sha256(data).hexdigest()}
    if path.exists():
        os.replace(path, previous_path(path))
        if path.name in old:
            entries[previous_path(path).name] = old[path.name]
    _write_atomic(path, data)
    _write_atomic(manifest_path(path), "".join(f"{d}  {n}\n" for n, d in entries.items()).encode())
    return path


def _load_verified(path: Path, map_location) -> dict:
    """Load ``path`` after checking its SHA-256 against the manifest beside it (a file with no
    manifest loads with a warning: checkpoints written before checksums existed)."""
    if not path.is_file():
        raise ValueError(f"checkpoint: file not found: {path}")
    data = path.read_bytes()
    known = _read_manifest(manifest_path(path)).values()
    if not known:
        warnings.warn(f"checkpoint: {path} has no checksum file ({manifest_path(path).name}); loaded unverified",
                      CheckpointWarning, stacklevel=3)
    elif hashlib.sha256(data).hexdigest() not in known:
        raise ValueError(f"checkpoint: {path} does not match its checksum in {manifest_path(path).name} "
                         f"(damaged or partly written)")
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"checkpoint: cannot read {path}: {exc}") from exc
    if not isinstance(payload, dict) or "config" not in payload or "model" not in payload:
        raise ValueError(f"checkpoint: {path} is not a himnet_fast checkpoint (no 'config'/'model' entries)")
    return from_plain(payload)


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, verified by its checksum.

    A missing, damaged or unverifiable ``path`` falls back to the previous checkpoint beside it (with a
    :class:`CheckpointWarning` naming both); a missing or unreadable file with no good previous
    one raises a ``ValueError`` naming it.
    """
    path = Path(path)
    try:
        return _load_verified(path, map_location)
    except ValueError as exc:
        previous = previous_path(path)
        if not previous.is_file():
            raise
        warnings.warn(f"{exc}; using the previous checkpoint {previous.name}", CheckpointWarning, stacklevel=2)
        return _load_verified(previous, map_location)
