"""Backend selection shared by every op dispatcher in ``himnet_fast.ops``."""
from __future__ import annotations

import functools

import torch

BACKENDS = ("auto", "reference", "triton", "cpp")


@functools.lru_cache(maxsize=None)
def native_available() -> bool:
    """True when the compiled extension ``himnet_fast._C`` loads."""
    try:
        import himnet_fast._C  # noqa: F401  (registers torch.ops.himnet_fast.*)
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when Triton imports (on CPU it runs only under TRITON_INTERPRET=1)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(op: str, backend: str, supported: tuple[str, ...], auto: str) -> str:
    """Validate ``backend`` for ``op`` and turn ``"auto"`` into the concrete ``auto`` choice.

    ``supported`` lists the concrete backends the op has; a request outside it, or for a
    backend whose runtime is missing, raises a ``ValueError`` naming the op and backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"{op}: backend must be one of {BACKENDS}, got {backend!r}")
    chosen = auto if backend == "auto" else backend
    if chosen not in supported:
        raise ValueError(f"{op}: backend {chosen!r} is not available for this op (have {supported})")
    if chosen == "cpp" and not native_available():
        raise ValueError(f"{op}: backend 'cpp' needs the compiled extension himnet_fast._C, which did not load")
    if chosen == "triton" and not triton_available():
        raise ValueError(f"{op}: backend 'triton' needs the triton package")
    return chosen


def is_cuda(*tensors: torch.Tensor) -> bool:
    return all(t.is_cuda for t in tensors)
