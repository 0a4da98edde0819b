"""The schedule contract and the composition tools (``Constant``, ``Join``, ``Product``).

A schedule is a frozen dataclass; ``schedule(step)`` gives the learning rate at a 0-based
step in closed form (no hidden state), so it pickles, prints, compares equal and resumes
exactly from ``(schedule, step)``.

Units: every schedule has a base learning rate ``lr`` (default 1.0) and gives absolute
values. Other learning-rate fields (``eta_min``, ``end_lr``, ``min_lr``, ``init_lr``) are in
the same units as ``lr``, so a schedule built with ``lr=1`` is a multiplier of a base rate
and its other fields are fractions of that base.

Arrays: any numeric argument may be a NumPy array (shape ``(K, 1, ...)`` for K settings of
a batched sweep); ``schedule(step)`` then returns an array. With scalar arguments it
returns a Python float. ``step`` may also be an integer array (all steps at once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.arrays import is_torch
from . import _check

Value = Any  # a Python float, or a NumPy array when arguments or steps are arrays


def as_steps(step: Any) -> np.ndarray:
    """``step`` as a float64 array of whole numbers >= 0 (ValueError otherwise); integer
    torch tensors (such as an optimizer's ``state["step"]``) are accepted."""
    if is_torch(step) and not step.is_floating_point():
        step = step.detach().cpu().numpy()
    if (
        isinstance(step, bool | np.bool_ | str | complex | np.complexfloating)
        or is_torch(step)
        or (isinstance(step, np.ndarray) and (step.dtype == np.bool_ or np.iscomplexobj(step)))
    ):
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    try:
        arr = np.asarray(step, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"step must be an integer >= 0, got {step!r}") from None
    if not (np.isfinite(arr).all() and (arr == np.floor(arr)).all() and (arr >= 0).all()):
        raise ValueError(f"step must be an integer >= 0, got {_check.show(step)}")
    return arr


def output(value: np.ndarray) -> Value:
    """A Python float for a 0-d result, the array otherwise."""
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value


def clamp(t: np.ndarray, end: Value | None) -> np.ndarray:
    """Steps past ``end`` read the value at ``end`` (``end=None``: no clamping)."""
    return t if end is None else np.minimum(t, end)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _hashable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("array", v.shape, (v + 0.0).tobytes())  # -0.0 == 0.0, so hash them alike
    if isinstance(v, tuple):
        return tuple(_hashable(x) for x in v)
    return v


def _sequence(name: str, value: Any) -> tuple[Any, ...]:
    """``tuple(value)``, or a ValueError naming ``name`` for one item (or a string)."""
    if isinstance(value, str | bytes | Schedule) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence, got {value!r}")
    return tuple(value)


@dataclass(frozen=True, eq=False)
class Schedule:
    """Base class: subclasses define ``_value(t)`` on a float64 array of 0-based steps."""

    def __call__(self, step: Any) -> Value:
        """The learning rate at 0-based ``step`` (an int, or an integer array)."""
        return output(self._value(as_steps(step)))

    def _value(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _same(self._fields(), other._fields())  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, _hashable(self._fields())))

    def __mul__(self, other: Any) -> Product:
        if isinstance(other, Schedule):
            return Product((self, other))
        if isinstance(other, int | float) and not isinstance(other, bool):
            return Product((self, Constant(lr=other)))
        return NotImplemented

    __rmul__ = __mul__


@dataclass(frozen=True, eq=False)
class Constant(Schedule):
    """``lr`` at every step. ``total_steps`` is accepted (for a uniform interface) and unused.

    >>> Constant(lr=0.1)(500)
    0.1
    """

    lr: Value = 1.0
    total_steps: Value | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _check.real("lr", self.lr, low=0))
        if self.total_steps is not None:
            object.__setattr__(
                self, "total_steps", _check.integer("total_steps", self.total_steps, low=1)
            )

    def _value(self, t: np.ndarray) -> np.ndarray:
        return np.zeros_like(t) + self.lr


@dataclass(frozen=True, eq=False)
class Join(Schedule):
    """Schedules one after another: piece ``i`` runs from ``boundaries[i-1]`` (0 for the
    first) and sees its step relative to that start, like ``torch.optim.lr_scheduler.SequentialLR``.

    .. math:: \\eta(t) = s_i(t - b_{i-1}) \\quad\\text{for } b_{i-1} \\le t < b_i

    >>> from optimlab.schedules import Linear, CosineAnnealing
    >>> warm_then_cos = Join((Linear(10, start_factor=0.1, end_factor=1.0),
    ...                       CosineAnnealing(90)), (10,))
    >>> warm_then_cos(10)
    1.0
    """

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        schedules = _sequence("schedules", self.schedules)
        if not schedules or not all(isinstance(s, Schedule) for s in schedules):
            raise ValueError(f"schedules must be a non-empty sequence of schedules: {schedules}")
        bounds = tuple(
            _check.integer("boundaries", b, low=1) for b in _sequence("boundaries", self.boundaries)
        )
        if any(isinstance(b, np.ndarray) for b in bounds):
            raise ValueError("boundaries must be Python integers, not arrays")
        if len(bounds) != len(schedules) - 1:
            raise ValueError(
                f"boundaries must have one entry fewer than schedules ({len(schedules) - 1}), "
                f"got {len(bounds)}: {bounds}"
            )
        if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"boundaries must be strictly increasing, got {bounds}")
        object.__setattr__(self, "schedules", schedules)
        object.__setattr__(self, "boundaries", bounds)

    def _value(self, t: np.ndarray) -> np.ndarray:
        starts = (0, *self.boundaries)
        piece = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), t, side="right")
        out = None
        for i, (sched, start) in enumerate(zip(self.schedules, starts, strict=True)):
            value = sched._value(np.maximum(t - start, 0.0))
            out = value if out is None else np.where(piece == i, value, out)
        return out


@dataclass(frozen=True, eq=False)
class Product(Schedule):
    """The product of schedules: ``(a * b)(t) == a(t) * b(t)``; ``a * 0.5`` scales ``a``."""

    factors: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        flat: list[Schedule] = []
        for f in _sequence("factors", self.factors):
            if not isinstance(f, Schedule):
                raise ValueError(f"factors must be schedules, got {f!r}")
            flat.extend(f.factors if isinstance(f, Product) else (f,))
        if not flat:
            raise ValueError("factors must not be empty")
        object.__setattr__(self, "factors", tuple(flat))

    def _value(self, t: np.ndarray) -> np.ndarray:
        out = self.factors[0]._value(t)
        for f in self.factors[1:]:
            out = out * f._value(t)
        return out


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Join:
    """``Join(tuple(schedules), tuple(boundaries))``."""
    return Join(tuple(schedules), tuple(boundaries))
