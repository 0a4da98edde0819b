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

from ..core import checks

# A Python number, or a NumPy array when arguments or steps are arrays. A field declared
# ``Value = None`` is optional: ``__post_init__`` derives it (from ``total_steps``) or, for
# ``total_steps`` of an open-ended schedule, leaves it None.
Value = Any


def as_steps(step: Any) -> np.ndarray:
    """``step`` as a float64 array of whole numbers >= 0 (ValueError otherwise); integer
    torch tensors (such as an optimizer's ``state["step"]``) are accepted."""
    if checks.is_tensor(step) and not (step.is_floating_point() or step.is_complex()):
        step = step.detach().cpu().numpy()
    return np.asarray(checks.integer("step", step, 0, arrays=True), dtype=np.float64)


def checked_total(value: Any, required_for: str | None = None) -> Value:
    """``total_steps``: an integer >= 1 (or an array of them), or ``None`` unless the
    schedule ``required_for`` needs it."""
    if value is None and required_for is not None:
        raise ValueError(f"total_steps is required for {required_for}")
    return checks.integer("total_steps", value, 1, optional=required_for is None, arrays=True)


def part(total: Value, k: int) -> Value:
    """``total // k``, at least 1 (elementwise for arrays)."""
    return np.maximum(total // k, 1) if isinstance(total, np.ndarray) else max(total // k, 1)


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


def set_fields(obj: object, **fields: object) -> None:
    """Set checked fields of a frozen schedule: NumPy arrays as float64, and every array
    field must broadcast with the others (one value per setting on the leading axes)."""
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            value = value.astype(np.float64)
        object.__setattr__(obj, name, value)
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    shapes = {k: v.shape for k, v in values.items() if isinstance(v, np.ndarray)}
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ValueError(
            f"array arguments must broadcast together (one value per setting on "
            f"the leading axis), got shapes {listed}"
        ) from None


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
    total_steps: Value = None

    def __post_init__(self) -> None:
        set_fields(
            self,
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            total_steps=checked_total(self.total_steps),
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
        schedules = checks.sequence("schedules", self.schedules, "a sequence of schedules")
        if not schedules or not all(isinstance(s, Schedule) for s in schedules):
            raise ValueError(
                f"schedules must be a non-empty sequence of schedules, got {checks.show(schedules)}"
            )
        bounds = tuple(
            checks.integer(f"boundaries[{i}]", b, 1)
            for i, b in enumerate(
                checks.sequence("boundaries", self.boundaries, "a sequence of integers")
            )
        )
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
        out = self.schedules[0]._value(t)
        for i, (sched, start) in enumerate(zip(self.schedules, starts, strict=True)):
            if i > 0:
                out = np.where(piece == i, sched._value(np.maximum(t - start, 0.0)), out)
        return out


@dataclass(frozen=True, eq=False)
class Product(Schedule):
    """The product of schedules: ``(a * b)(t) == a(t) * b(t)``; ``a * 0.5`` scales ``a``."""

    factors: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        flat: list[Schedule] = []
        for f in checks.sequence("factors", self.factors, "a sequence of schedules"):
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
