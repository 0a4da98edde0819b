"""The one validation vocabulary: every check names the argument and shows the value.

Messages have one format, ``<name> must be <what>, got <value>``::

    lr must be >= 0, got -1.0
    lr must be a finite number >= 0, got nan
    beta1 must be in [0, 1), got 1.0
    steps must be an integer >= 1, got 0
    amsgrad must be True or False, got 1
    mode must be one of 'triangular', 'exp_range', got 'x'
    lr must be a number, got 'abc'

What a number check accepts: a Python ``int`` or ``float``, a real NumPy scalar or 0-d
array; never a bool, a string, a complex number, ``None`` (unless ``optional``) or a list.
With ``arrays=True`` (one value per setting of a batched sweep) it also accepts a
non-empty NumPy array of reals; with ``tensors=True`` a real torch tensor (one element,
or any size together with ``arrays=True``). Scalars come back as Python numbers, so a
NumPy ``float64`` never promotes ``float32`` parameters; arrays and tensors come back as
given. Checks are written ``not (low <= x <= high)`` after ``isfinite``, so NaN, inf and
bools never slip through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .arrays import is_torch

INF = math.inf
INT_MAX = 2**63 - 1  # what NumPy and torch can hold: larger integers overflow later


def range_text(
    low: float = -INF, high: float = INF, *, low_open: bool = False, high_open: bool = False
) -> str:
    """``">= 0"``, ``"< 1"``, ``"in [0, 1)"``; empty when unbounded."""
    lo, hi = _bound(low), _bound(high)
    if high == INF and low == -INF:
        return ""
    if high == INF:
        return f"> {lo}" if low_open else f">= {lo}"
    if low == -INF:
        return f"< {hi}" if high_open else f"<= {hi}"
    return f"in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"


def _bound(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def show(value: Any) -> str:
    """A short text for a value in an error message."""
    if is_torch(value):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"array {np.array2string(value.ravel(), threshold=6)}"
    if isinstance(value, np.generic | np.ndarray):
        return repr(value.item())
    return repr(value)


def _numbers(
    name: str, value: Any, *, arrays: bool, tensors: bool, what: str = "a number"
) -> np.ndarray:
    """``value`` as a float64 array for checking, or a ValueError saying it is not numbers."""
    if is_torch(value):
        if not tensors:
            raise ValueError(f"{name} must be {what}, got a torch tensor")
        if value.is_complex() or str(value.dtype) == "torch.bool":
            raise ValueError(f"{name} must be {what}, got a {value.dtype} tensor")
        if not arrays and value.numel() != 1:
            raise ValueError(
                f"{name} must be {what} (a 1-element tensor), got a tensor of shape "
                f"{tuple(value.shape)}"
            )
        return np.asarray(value.detach().cpu().double().numpy())
    if isinstance(value, np.ndarray | np.generic):
        if not (np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)):
            raise ValueError(f"{name} must be {what}, got {show(value)} of dtype {value.dtype}")
        if np.ndim(value) > 0 and not arrays:
            raise ValueError(f"{name} must be {what}, got an array of shape {np.shape(value)}")
        if np.size(value) == 0:
            raise ValueError(f"{name} must not be an empty array")
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = (
            " (use a NumPy array for one value per setting)"
            if arrays and isinstance(value, list | tuple)
            else ""
        )
        raise ValueError(f"{name} must be {what}, got {value!r}{hint}")
    try:
        return np.asarray(float(value))
    except OverflowError:  # an int beyond float64
        raise ValueError(f"{name} must be {what}, got {value!r}") from None


def _scalar(value: Any, integer: bool) -> Any:
    """Python numbers for scalars (NumPy scalars and 0-d arrays included), else ``value``."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        value = value.item()
    if integer and isinstance(value, float):
        return int(value)
    return value


def real(
    name: str,
    value: Any,
    low: float = -INF,
    high: float = INF,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
    arrays: bool = False,
    tensors: bool = False,
) -> Any:
    """A finite real number in the given range (``None`` too if ``optional``)."""
    if value is None and optional:
        return None
    bounds = range_text(low, high, low_open=low_open, high_open=high_open)
    what = "None or a number" if optional else "a number"
    arr = _numbers(name, value, arrays=arrays, tensors=tensors, what=what)
    if not np.isfinite(arr).all():
        finite = f"a finite number {bounds}".rstrip()
        raise ValueError(
            f"{name} must be {'None or ' if optional else ''}{finite}, got {show(value)}"
        )
    ok = (arr > low if low_open else arr >= low) & (arr < high if high_open else arr <= high)
    if not ok.all():
        raise ValueError(
            f"{name} must be {'None or ' if optional else ''}{bounds}, got {show(value)}"
        )
    return _scalar(value, integer=False)


def integer(
    name: str,
    value: Any,
    low: int | None = None,
    high: int = INT_MAX,
    *,
    optional: bool = False,
    arrays: bool = False,
) -> Any:
    """A whole number in ``[low, high]`` (integral floats such as ``1e3`` are accepted and
    returned as ``int``); ``None`` too if ``optional``."""
    if value is None and optional:
        return None
    prefix = "None or an integer" if optional else "an integer"
    arr = _numbers(name, value, arrays=arrays, tensors=False, what=prefix)
    if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError(f"{name} must be {prefix}, got {show(value)}")
    lo = -INF if low is None else low
    if isinstance(value, int):  # exact, even beyond float64's 53 bits
        below, above = value < lo, value > high
    else:
        below, above = bool((arr < lo).any()), bool((arr > high).any())
    if below or above:
        # past INT_MAX the message names that limit; otherwise the caller's range
        hi = high if above or high != INT_MAX else INF
        bounds = range_text(lo, hi)
        raise ValueError(f"{name} must be {prefix} {bounds}, got {show(value)}")
    return _scalar(value, integer=True)


def flag(name: str, value: Any) -> bool:
    """True or False (not 0/1, not a string)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """One of a fixed set of values (strings, or ``None``)."""
    if not isinstance(value, str | type(None)) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def shape(name: str, value: Any, expected: tuple[int, ...]) -> Any:
    """An array whose shape is ``expected``."""
    got = tuple(np.shape(value))
    if got != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got shape {got}")
    return value


def require(ok: Any, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok`` holds (for every entry of an array)."""
    if not np.all(ok):
        raise ValueError(message)
