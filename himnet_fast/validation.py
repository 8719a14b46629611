"""Input checks shared by the public functions: each raises a ``ValueError`` that names the
argument and says what is wrong with it.

Shapes are written with ``None`` as a wildcard, e.g. ``check_shape("A", A, (B, T))`` or
``check_shape("labels", y, (B, None))``.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch


def check_tensor(
    name: str,
    x,
    ndim: Optional[int] = None,
    *,
    dtype_floating: bool = True,
    finite: bool = True,
    nonempty: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of rank ``ndim`` (if given), floating point (if
    ``dtype_floating``), without NaN/inf (if ``finite``) and without zero-sized dims
    (if ``nonempty``). Returns ``x`` unchanged."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got {x.dim()}-D with shape {tuple(x.shape)}")
    if dtype_floating and not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return x


def check_shape(name: str, x: torch.Tensor, expected: Sequence[Optional[int]], what: str = "") -> None:
    """Check ``x.shape`` against ``expected`` (``None`` matches any size). ``what`` names the
    dims for the message, e.g. ``"(B, T)"``."""
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))
    if not ok:
        want = tuple("*" if e is None else e for e in expected)
        label = f"{what} = " if what else ""
        raise ValueError(f"{name}: expected shape {label}{want}, got {shape}")


def check_labels(name: str, y, shape: Optional[Sequence[Optional[int]]] = None, what: str = "") -> torch.Tensor:
    """Check a multi-hot label tensor: every value 0 or 1, no NaN, optional ``shape``."""
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(y).__name__}")
    if shape is not None:
        check_shape(name, y, shape, what)
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError(f"{name}: labels must be 0 or 1 (multi-hot), got other values")
    return y


def check_range(name: str, x: torch.Tensor, lo: float, hi: float) -> None:
    """Check every value of ``x`` lies in the closed interval [lo, hi]."""
    if not bool(((x >= lo) & (x <= hi)).all()):
        raise ValueError(f"{name}: values must lie in [{lo}, {hi}], got min {float(x.detach().min())}, max {float(x.detach().max())}")


def check_int(name: str, value, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """Check ``value`` is an int (not bool) within [minimum, maximum] where given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def check_number(name: str, value, minimum: Optional[float] = None) -> float:
    """Check ``value`` is a finite real number, >= ``minimum`` where given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return float(value)


def check_choice(name: str, value, choices: Iterable) -> None:
    """Check ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}: must be one of {choices}, got {value!r}")
