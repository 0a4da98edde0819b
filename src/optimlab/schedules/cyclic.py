r"""Cyclical schedules: cyclic learning rates (Smith 2017) and one-cycle (Smith & Topin 2018),
each with the matching momentum cycle (``.momentum()``), in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import checks
from .base import Schedule, Value, checked_total, part, set_fields

CYCLIC_MODES = ("triangular", "triangular2", "exp_range")
ANNEALS = ("cos", "linear")


@dataclass(frozen=True, eq=False)
class Cyclic(Schedule):
    r"""Cyclic learning rate between ``min_lr`` and ``lr``, like torch's ``CyclicLR``
    (torch's ``base_lr`` is our ``min_lr``, its ``max_lr`` our ``lr``).

    With cycle length :math:`L = u + d` (``step_size_up + step_size_down``),
    :math:`c = \lfloor 1 + t/L \rfloor`, :math:`x = 1 + t/L - c` and :math:`r = u/L`:

    .. math::
        h = x/r \ (x \le r), \quad h = (x - 1)/(r - 1) \ (x > r), \qquad
        \eta_t = \eta_{min} + (\eta - \eta_{min})\,h\,f

    with :math:`f = 1` (triangular), :math:`2^{1-c}` (triangular2) or :math:`\gamma^t`
    (exp_range). ``step_size_up`` defaults to ``total_steps // 4`` (two cycles per run);
    ``step_size_down`` to ``step_size_up``; ``min_lr`` to ``lr / 10``. Open-ended.

    >>> Cyclic(step_size_up=10, lr=1.0, min_lr=0.0)(5)
    0.5
    """

    step_size_up: Value = None
    step_size_down: Value = None
    lr: Value = 1.0
    min_lr: Value = None
    mode: str = "triangular"
    gamma: Value = 1.0
    total_steps: Value = None

    def __post_init__(self) -> None:
        total = checked_total(self.total_steps)
        up = self.step_size_up
        if up is None:
            if total is None:
                raise ValueError("cyclic needs step_size_up or total_steps")
            up = part(total, 4)
        up = checks.integer("step_size_up", up, low=1, arrays=True)
        down = up if self.step_size_down is None else self.step_size_down
        down = checks.integer("step_size_down", down, low=1, arrays=True)
        lr = checks.real("lr", self.lr, low=0, arrays=True)
        min_lr = lr / 10 if self.min_lr is None else self.min_lr
        min_lr = checks.real("min_lr", min_lr, low=0, arrays=True)
        checks.require(
            np.less_equal(min_lr, lr),
            f"min_lr must be <= lr, got min_lr={checks.show(min_lr)} and lr={checks.show(lr)}",
        )
        mode = checks.choice("mode", self.mode, CYCLIC_MODES)
        gamma = checks.real("gamma", self.gamma, low=0, high=1, low_open=True, arrays=True)
        if mode != "exp_range" and np.any(np.asarray(gamma) != 1):
            raise ValueError(f"gamma is used only with mode='exp_range', got {checks.show(gamma)}")
        set_fields(
            self,
            step_size_up=up,
            step_size_down=down,
            lr=lr,
            min_lr=min_lr,
            mode=mode,
            gamma=gamma,
            total_steps=total,
        )

    def _height(self, t: np.ndarray) -> np.ndarray:
        """:math:`h f`, in [0, 1]: where the step sits between ``min_lr`` and ``lr``."""
        size = np.asarray(self.step_size_up + self.step_size_down, dtype=np.float64)
        ratio = self.step_size_up / size
        cycle = np.floor(1 + t / size)
        x = 1.0 + t / size - cycle
        h = np.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
        if self.mode == "triangular2":
            return h * 0.5 ** (cycle - 1)  # == 1 / 2**(cycle - 1) exactly, without overflow
        if self.mode == "exp_range":
            return h * self.gamma**t
        return h

    def _value(self, t: np.ndarray) -> np.ndarray:
        return self.min_lr + (self.lr - self.min_lr) * self._height(t)

    def momentum(self, base_momentum: Value = 0.8, max_momentum: Value = 0.9) -> MomentumCycle:
        """The momentum (or beta1) cycle that mirrors this one, as torch's ``cycle_momentum``:
        ``max_momentum - (max_momentum - base_momentum) * h f``."""
        return MomentumCycle(self, base_momentum, max_momentum)


@dataclass(frozen=True, eq=False)
class OneCycle(Schedule):
    r"""The one-cycle policy, the closed form of ``torch.optim.lr_scheduler.OneCycleLR``
    (``lr`` is torch's ``max_lr``).

    From :math:`\eta/\text{div}` up to :math:`\eta` over the first ``pct_start`` of the run, then
    down to :math:`\eta/(\text{div}\cdot\text{final\_div})` at step ``total_steps - 1``,
    each phase annealed by ``anneal`` (half cosine or linear). ``three_phase`` goes back
    down to :math:`\eta/\text{div}` symmetrically first, then to the minimum. Phase ends
    are torch's: :math:`pT - 1`, (:math:`2pT - 2`), :math:`T - 1`; every phase must be
    longer than zero steps. Holds the final value past ``total_steps - 1``.

    >>> OneCycle(total_steps=100, lr=1.0)(29)  # the peak, at pct_start * T - 1
    1.0
    """

    total_steps: Value = None
    lr: Value = 1.0
    pct_start: Value = 0.3
    anneal: str = "cos"
    div_factor: Value = 25.0
    final_div_factor: Value = 1e4
    three_phase: bool = False

    def __post_init__(self) -> None:
        total = checked_total(self.total_steps, "one_cycle")
        pct = checks.real("pct_start", self.pct_start, low=0, high=1, arrays=True)
        three = checks.flag("three_phase", self.three_phase)
        ends = self._ends(total, pct, three)
        starts = (0.0, *ends[:-1])
        for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
            checks.require(
                np.greater(b, a),
                f"one_cycle phase {i + 1} would be empty: total_steps={checks.show(total)} "
                f"with pct_start={checks.show(pct)} is too few steps"
                + (" (need pct_start * total_steps > 1)" if i == 0 else ""),
            )
        set_fields(
            self,
            total_steps=total,
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            pct_start=pct,
            anneal=checks.choice("anneal", self.anneal, ANNEALS),
            div_factor=checks.real(
                "div_factor", self.div_factor, low=0, low_open=True, arrays=True
            ),
            final_div_factor=checks.real(
                "final_div_factor", self.final_div_factor, low=0, low_open=True, arrays=True
            ),
            three_phase=three,
        )

    @staticmethod
    def _ends(total: Value, pct: Value, three: bool) -> tuple[Value, ...]:
        first = pct * total - 1.0
        if three:
            return first, 2 * pct * total - 2.0, total - 1.0
        return first, total - 1.0

    def _phases(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(phase index, fraction of the phase done) at each step, as torch's ``get_lr``."""
        t = np.minimum(t, self.total_steps - 1.0)
        ends = self._ends(self.total_steps, self.pct_start, self.three_phase)
        starts = (0.0, *ends[:-1])
        phase = np.zeros(np.broadcast(t, *ends).shape)
        frac = np.zeros_like(phase)
        done = np.zeros(phase.shape, dtype=bool)
        for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
            here = ~done & ((t <= b) | (i == len(ends) - 1))
            phase = np.where(here, i, phase)
            frac = np.where(here, (t - a) / (b - a), frac)
            done |= here
        return phase, frac

    def _anneal(self, start: Any, end: Any, frac: np.ndarray) -> np.ndarray:
        if self.anneal == "cos":
            return end + (start - end) / 2.0 * (np.cos(math.pi * frac) + 1)
        return (end - start) * frac + start

    def _interpolate(self, t: np.ndarray, points: tuple[Any, ...]) -> np.ndarray:
        phase, frac = self._phases(t)
        out = np.zeros_like(frac)
        for i in range(len(points) - 1):
            out = np.where(phase == i, self._anneal(points[i], points[i + 1], frac), out)
        return out

    def _value(self, t: np.ndarray) -> np.ndarray:
        initial = self.lr / self.div_factor
        low = initial / self.final_div_factor
        points = (initial, self.lr, initial, low) if self.three_phase else (initial, self.lr, low)
        return self._interpolate(t, points)

    def momentum(self, base_momentum: Value = 0.85, max_momentum: Value = 0.95) -> MomentumCycle:
        """The momentum (or beta1) cycle of torch's ``cycle_momentum``: from ``max_momentum``
        down to ``base_momentum`` while the rate rises, and back up while it falls."""
        return MomentumCycle(self, base_momentum, max_momentum)


@dataclass(frozen=True, eq=False)
class MomentumCycle(Schedule):
    """The momentum (or Adam's beta1) that cycles against a ``Cyclic`` or ``OneCycle`` rate;
    build it with ``schedule.momentum()`` and pass it to ``to_torch(..., momentum_schedule=)``."""

    schedule: Cyclic | OneCycle
    base_momentum: Value = 0.85
    max_momentum: Value = 0.95

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Cyclic | OneCycle):
            raise ValueError(f"schedule must be Cyclic or OneCycle, got {self.schedule!r}")
        for name in ("base_momentum", "max_momentum"):
            set_fields(
                self,
                **{
                    name: checks.real(
                        name, getattr(self, name), low=0, high=1, high_open=True, arrays=True
                    )
                },
            )

    def _value(self, t: np.ndarray) -> np.ndarray:
        s, lo, hi = self.schedule, self.base_momentum, self.max_momentum
        if isinstance(s, Cyclic):
            return hi - (hi - lo) * s._height(t)
        points = (hi, lo, hi, hi) if s.three_phase else (hi, lo, hi)
        return s._interpolate(t, points)
