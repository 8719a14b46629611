"""The output folder of a training run: one writer, never two runs mixed, checked before work.

``claim(out, ...)`` is called before any data is read or generated. It

- checks that the folder can be created and written (a file, ``/proc/x`` or a read-only
  folder is a ``ValueError`` at once, not after training);
- takes an exclusive lock (``run.lock``, ``fcntl.flock``: the kernel releases it when the
  process dies, so a killed run never leaves a stale lock) — a second writer gets a
  ``ValueError`` naming the first one's pid;
- refuses a folder that holds another run's outputs unless ``resume`` or ``overwrite``
  (``overwrite`` deletes that run's outputs, only those: other files are kept), or unless it
  is this very run restarted by ``torchrun --max-restarts`` (same ``TORCHELASTIC_RUN_ID``);
- deletes temporary files left by an interrupted write (``.*.tmp``).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

LOCK_FILE = "run.lock"
RUN_FILE = "run.json"  # who owns the folder: {"run_id", "pid", "host"}
# The files a run writes (and the only ones ``overwrite`` deletes); ``run.json`` alone (a run
# stopped before its first output) does not make a folder "hold a run".
RUN_OUTPUTS = ("checkpoint.pt", "checkpoint.prev.pt", "checkpoint.sha256", "metrics.json", "detections.json",
               "train_log.jsonl", "curves.png")
RUN_OUTPUT_GLOBS = ("timeline_*.png",)


@dataclass
class Claim:
    """A claimed output folder; ``restarted``: this run's own folder after a torchrun restart."""

    path: Path
    lock_fd: int
    restarted: bool

    def release(self) -> None:
        """Unlock (the lock file stays: deleting it would race with a waiting writer)."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def elastic_run_id() -> Optional[str]:
    """torchrun's run id (stable across ``--max-restarts`` restarts), or None outside torchrun."""
    return os.environ.get("TORCHELASTIC_RUN_ID")


def elastic_restart() -> bool:
    """True in a worker that torchrun started again after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def run_outputs(path: Path) -> list[Path]:
    """The run output files present in ``path``."""
    found = [path / name for name in RUN_OUTPUTS if (path / name).exists()]
    for pattern in RUN_OUTPUT_GLOBS:
        found.extend(sorted(path.glob(pattern)))
    return found


def check_writable(path: Path) -> None:
    """Create ``path`` if needed and write a probe file; a ``ValueError`` naming it otherwise."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out: {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out: cannot write to {path}: {exc.strerror or exc}") from None


def _lock(path: Path) -> int:
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise ValueError(f"--out: cannot lock {path / LOCK_FILE}: {exc.strerror}") from None
        owner = _read_owner(path)
        who = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "another process"
        raise ValueError(f"--out: {path} is in use by another run ({who}); wait for it to finish or "
                         f"choose another --out") from None
    return fd


def _read_owner(path: Path) -> dict:
    try:
        return json.loads((path / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def remove_temporaries(path: Path) -> list[Path]:
    """Delete ``.*.tmp`` files left in ``path`` by interrupted atomic writes; returns them."""
    stale = sorted(path.glob(".*.tmp"))
    for file in stale:
        file.unlink(missing_ok=True)
    return stale


def claim(path, resume: bool = False, overwrite: bool = False) -> Claim:
    """Check, lock and prepare the output folder ``path`` (see the module docstring)."""
    path = Path(path)
    check_writable(path)
    fd = _lock(path)
    try:
        run_id = elastic_run_id()
        restarted = elastic_restart() and run_id is not None and _read_owner(path).get("run_id") == run_id
        existing = run_outputs(path)
        if existing and not (resume or overwrite or restarted):
            names = ", ".join(p.name for p in existing[:4]) + (" ..." if len(existing) > 4 else "")
            raise ValueError(f"--out: {path} holds another run ({names}); pass --resume CKPT to continue it, "
                             f"--overwrite to replace it, or choose another --out")
        if overwrite and not restarted:
            for file in existing:
                file.unlink(missing_ok=True)
        remove_temporaries(path)
        owner = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname()}
        tmp = path / f".{RUN_FILE}.tmp"
        tmp.write_text(json.dumps(owner))
        tmp.replace(path / RUN_FILE)
    except BaseException:
        os.close(fd)
        raise
    return Claim(path, fd, restarted)
