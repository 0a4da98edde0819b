"""The one validation vocabulary: every check names the argument and shows the value.

Messages have one format, ``<name> must be <what>, got <value>``::

    lr must be >= 0, got -1.0
    lr must be a finite number >= 0, got nan
    beta1 must be in [0, 1), got 1.0
    steps must be an integer >= 1, got 0
    amsgrad must be True or False, got 1
    mode must be one of 'triangular', 'exp_range', got 'x'
    lr must be a number, got 'abc'
    milestones must be a sequence, got 5

What a number check accepts: a Python ``int`` or ``float``, a real NumPy scalar or 0-d
array (integer or floating dtype); never a bool, a string, a complex number, ``None``
(unless ``optional``), a list or any other object. With ``arrays=True`` (one value per
setting of a batched sweep) it also accepts a non-empty NumPy array of reals of any
shape; with ``tensors=True`` a real torch tensor (one element, or any size together with
``arrays=True``). Scalars come back as Python numbers (``float`` from :func:`real`,
``int`` from :func:`integer`), so a NumPy ``float64`` or ``longdouble`` never promotes
``float32`` parameters; arrays and tensors come back as given. Checks are written
``not (low <= x <= high)`` after ``isfinite``, so NaN, inf and bools never slip through,
and Python integers are compared exactly (no float rounding, no overflow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .arrays import is_torch

INF = math.inf
INT_MAX = 2**63 - 1  # what NumPy and torch can hold: larger integers overflow later
INT_MIN = -(2**63)
_SHOW_LIMIT = 80  # longest text of a value in a message
_EXACT = 2**53  # Python ints up to this convert to float exactly


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
    return str(x) if isinstance(x, int | np.integer) else f"{x:g}"


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (not another torch object such as a dtype)."""
    return is_torch(value) and hasattr(value, "detach") and hasattr(value, "numel")


def show(value: Any) -> str:
    """A short text for a value in an error message (at most about 80 characters)."""
    if is_tensor(value):
        return _show_tensor(value)
    if isinstance(value, np.ndarray) and value.ndim > 0:
        text = f"array {np.array2string(value.ravel(), threshold=6)}"
    elif isinstance(value, np.generic | np.ndarray):
        text = repr(value.item())
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        # repr of a huge int is long, and past 4300 digits Python refuses to write it
        text = f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    else:
        text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _show_tensor(value: Any) -> str:
    try:
        t = value.detach().cpu()
        if t.is_complex():
            t = t.cdouble()
        elif t.is_floating_point():
            t = t.double()  # bfloat16 and float16 have no NumPy twin
        return show(t.numpy())
    except (RuntimeError, TypeError, NotImplementedError):  # meta, sparse and such
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"


def _numbers(
    name: str, value: Any, *, arrays: bool, tensors: bool, what: str = "a number"
) -> np.ndarray:
    """``value`` as a float64 array for checking, or a ValueError saying it is not numbers."""
    if is_tensor(value):
        return _tensor_numbers(name, value, arrays=arrays, tensors=tensors, what=what)
    if isinstance(value, np.ndarray | np.generic):
        if value.dtype.kind not in "iuf":  # bool, complex, strings, objects, dates
            raise ValueError(f"{name} must be {what}, got {show(value)} of dtype {value.dtype}")
        if value.ndim > 0 and not arrays:
            raise ValueError(f"{name} must be {what}, got an array of shape {value.shape}")
        if value.size == 0:
            raise ValueError(f"{name} must be {what}, got an empty array of shape {value.shape}")
        with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf: refused
            return np.asarray(value, dtype=np.float64)
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = (
            " (use a NumPy array for one value per setting)"
            if arrays and isinstance(value, list | tuple)
            else ""
        )
        raise ValueError(f"{name} must be {what}, got {show(value)}{hint}")
    try:
        return np.asarray(float(value))
    except OverflowError:  # an int beyond float64: a number, but not a finite float
        return np.asarray(INF if value > 0 else -INF)


def _tensor_numbers(name: str, value: Any, *, arrays: bool, tensors: bool, what: str) -> np.ndarray:
    if not tensors:
        raise ValueError(f"{name} must be {what}, got a torch tensor")
    if value.is_complex() or str(value.dtype) == "torch.bool":
        raise ValueError(f"{name} must be {what}, got a {value.dtype} tensor")
    if value.numel() == 0:
        raise ValueError(
            f"{name} must be {what}, got an empty tensor of shape {tuple(value.shape)}"
        )
    if not arrays and value.numel() != 1:
        raise ValueError(
            f"{name} must be {what} (a 1-element tensor), got a tensor of shape "
            f"{tuple(value.shape)}"
        )
    return np.asarray(value.detach().cpu().double().numpy())


def _scalar(value: Any, kind: type) -> Any:
    """Scalars (NumPy scalars and 0-d arrays included) as ``kind``; arrays and tensors as
    given."""
    if is_tensor(value) or (isinstance(value, np.ndarray) and value.ndim > 0):
        return value
    return kind(value)


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
    """A finite real number in the given range (``None`` too if ``optional``), returned as a
    Python ``float`` (arrays and tensors as given)."""
    if value is None and optional:
        return None
    if type(value) is float or (type(value) is int and abs(value) <= _EXACT):
        # the common case, per optimizer step: checked without NumPy
        x = float(value)
        if math.isfinite(x) and (
            (x > low if low_open else x >= low) and (x < high if high_open else x <= high)
        ):
            return x
    none = "None or " if optional else ""
    arr = _numbers(name, value, arrays=arrays, tensors=tensors, what=f"{none}a number")
    bounds = range_text(low, high, low_open=low_open, high_open=high_open)
    if not np.isfinite(arr).all():
        finite = f"a finite number {bounds}".rstrip()
        raise ValueError(f"{name} must be {none}{finite}, got {show(value)}")
    ok = (arr > low if low_open else arr >= low) & (arr < high if high_open else arr <= high)
    if not ok.all():
        raise ValueError(f"{name} must be {none}{bounds}, got {show(value)}")
    return _scalar(value, float)


def integer(
    name: str,
    value: Any,
    low: int | None = None,
    high: int = INT_MAX,
    *,
    optional: bool = False,
    arrays: bool = False,
) -> Any:
    """A whole number in ``[low, high]``, returned as a Python ``int`` (arrays as given).

    Integral floats such as ``1e3`` are accepted; ``None`` too if ``optional``. Every
    message states the whole requirement (``steps must be an integer >= 1, got 2.5``).
    Without bounds the range is what int64 holds, so a value NumPy or torch would
    overflow on is refused here.
    """
    if value is None and optional:
        return None
    lo = INT_MIN if low is None else low
    if type(value) is int and lo <= value <= high:  # the common case, exact past 2**53
        return value
    caller = range_text(-INF if low is None else low, INF if high == INT_MAX else high)
    what = f"{'None or ' if optional else ''}an integer {caller}".rstrip()
    if isinstance(value, int) and not isinstance(value, bool):  # exact, even past 2**53
        below, above = value < lo, value > high
    else:
        arr = _numbers(name, value, arrays=arrays, tensors=False, what=what)
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise ValueError(f"{name} must be {what}, got {show(value)}")
        below, above = bool((arr < lo).any()), bool((arr > high).any())
    if below or above:
        if (below and low is None) or (above and high == INT_MAX):  # past what int64 holds
            limits = range_text(lo, high)
            what = f"{'None or ' if optional else ''}an integer {limits}"
        raise ValueError(f"{name} must be {what}, got {show(value)}")
    return _scalar(value, int)


def flag(name: str, value: Any) -> bool:
    """True or False (not 0/1, not a string)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {show(value)}")
    return bool(value)


def choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """One of a fixed set of values (strings, or ``None``)."""
    if not isinstance(value, str | type(None)) or value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, options))}, got {show(value)}"
        )
    return value


def shape(name: str, value: Any, expected: tuple[int, ...]) -> Any:
    """An array whose shape is ``expected``."""
    try:
        got = tuple(np.shape(value))
    except ValueError:  # a ragged list
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {show(value)}") from None
    if got != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got shape {got}")
    return value


def require(ok: Any, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok`` holds (for every entry of an array)."""
    if not np.all(ok):
        raise ValueError(message)


def sequence(name: str, value: Any, what: str = "a sequence") -> tuple[Any, ...]:
    """``tuple(value)`` for a list, tuple, range or 1-d array; not a string, a mapping, a
    set (no order) or a single item."""
    ok = isinstance(value, list | tuple | range) or (
        isinstance(value, np.ndarray) and value.ndim == 1
    )
    if not ok:
        raise ValueError(f"{name} must be {what}, got {show(value)}")
    return tuple(value)
