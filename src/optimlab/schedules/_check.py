"""Validation of schedule arguments: scalars or NumPy arrays (one value per setting).

Every check rejects NaN, inf and bools and names the parameter and the value, so a bad
argument fails at construction with ``ValueError: total_steps must be >= 1, got 0``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.arrays import is_torch

Value = Any  # a Python number or a NumPy array of numbers


def _array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, bool | np.bool_ | str | bytes) or (
        isinstance(value, np.ndarray) and value.dtype == np.bool_
    ):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if is_torch(value):
        raise ValueError(f"{name} must be a number or a NumPy array, got a torch tensor")
    if isinstance(value, complex | np.complexfloating) or (
        isinstance(value, np.ndarray) and np.iscomplexobj(value)
    ):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float64
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must not be an empty array")
    return arr


def show(value: Any) -> str:
    """A short text for a value in an error message."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"array {np.array2string(value.ravel(), threshold=6)}"
    return repr(value.item() if isinstance(value, np.generic | np.ndarray) else value)


def _keep(value: Any, arr: np.ndarray, integer: bool) -> Value:
    """Scalars come back as Python numbers, arrays as float64 arrays."""
    if arr.ndim == 0:
        return int(arr) if integer else float(arr)
    return arr


def real(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> Value:
    """A finite real number (or array of them) in the given range."""
    arr = _array(name, value)
    ok = np.isfinite(arr) & (arr > low if low_open else arr >= low)
    ok &= arr < high if high_open else arr <= high
    if not ok.all():
        lo_b, hi_b = ("(" if low_open else "["), (")" if high_open else "]")
        if high == math.inf:
            rng = f"> {low:g}" if low_open else f">= {low:g}"
        elif low == -math.inf:
            rng = f"< {high:g}" if high_open else f"<= {high:g}"
        else:
            rng = f"in {lo_b}{low:g}, {high:g}{hi_b}"
        raise ValueError(f"{name} must be {rng}, got {show(value)}")
    return _keep(value, arr, integer=False)


def integer(name: str, value: Any, *, low: int = 0) -> Value:
    """A whole number ``>= low`` (or an array of them); integral floats are accepted."""
    arr = _array(name, value)
    if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError(f"{name} must be an integer, got {show(value)}")
    if not (arr >= low).all():
        raise ValueError(f"{name} must be >= {low}, got {show(value)}")
    return _keep(value, arr, integer=True)


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """True or False (not 0/1, not a string)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def require(ok: Any, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok`` holds (for every setting of an array)."""
    if not np.all(ok):
        raise ValueError(message)
