"""Dispatchers of the numeric ops: one function per op, each with ``backend=``.

``backend="auto"`` picks the fastest backend for the inputs' device;
``"reference"`` runs the plain PyTorch/numpy spec; ``"triton"`` / ``"cpp"`` force a
fast backend and raise ``ValueError`` when it is unavailable.

Names are resolved lazily so that importing one op never pays for another's backend.
"""
import importlib

_EXPORTS = {
    "topk_mean": "himnet_fast.ops.losses",
    "himnet_losses": "himnet_fast.ops.losses",
    "proposals": "himnet_fast.ops.postprocess",
    "video_scores": "himnet_fast.ops.postprocess",
    "nms": "himnet_fast.ops.postprocess",
    "soft_nms": "himnet_fast.ops.postprocess",
    "batched_soft_nms": "himnet_fast.ops.postprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'himnet_fast.ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
