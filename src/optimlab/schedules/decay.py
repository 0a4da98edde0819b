r"""Decay schedules: step, multistep, exponential, polynomial, linear, cosine, warm restarts.

Each matches the ``torch.optim.lr_scheduler`` class of the same idea, in closed form.
``t`` is the 0-based step and :math:`\eta` the base rate ``lr``.

Past the end: polynomial, linear and cosine are defined on ``[0, total_steps]`` and hold
their end value afterwards (torch's ``CosineAnnealingLR`` instead rises again). Step,
multistep, exponential and warm restarts are open-ended: ``total_steps`` only fills in
defaults and validates, and the formula goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import checks
from .base import Schedule, Value, checked_total, clamp, part, set_fields


@dataclass(frozen=True, eq=False)
class StepDecay(Schedule):
    r"""Multiply by ``gamma`` every ``step_size`` steps, like ``torch.optim.lr_scheduler.StepLR``.

    .. math:: \eta_t = \eta\,\gamma^{\lfloor t / \text{step\_size} \rfloor}

    ``step_size`` defaults to ``ceil(total_steps / 3)``, so the rate drops twice in a run.

    >>> StepDecay(step_size=10, gamma=0.5, lr=1.0)(25)
    0.25
    """

    step_size: Value = None
    gamma: Value = 0.1
    lr: Value = 1.0
    total_steps: Value = None

    def __post_init__(self) -> None:
        total = checked_total(self.total_steps)
        size = self.step_size
        if size is None:
            if total is None:
                raise ValueError("step needs step_size or total_steps")
            size = -(-total // 3)  # ceil: exactly two drops within steps 0 .. T-1
        set_fields(
            self,
            step_size=checks.integer("step_size", size, low=1, arrays=True),
            gamma=checks.real("gamma", self.gamma, low=0, arrays=True),
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            total_steps=total,
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        return self.lr * self.gamma ** np.floor(t / self.step_size)


@dataclass(frozen=True, eq=False)
class MultiStepDecay(Schedule):
    r"""Multiply by ``gamma`` at each milestone, like ``torch.optim.lr_scheduler.MultiStepLR``.

    .. math:: \eta_t = \eta\,\gamma^{\#\{m \in \text{milestones} : m \le t\}}

    ``milestones`` (strictly increasing integers >= 1, each < ``total_steps`` when given;
    none is a constant) default to 50% and 75% of ``total_steps``.

    >>> MultiStepDecay(milestones=(3, 6), gamma=0.1)(6)
    0.010000000000000002
    """

    milestones: tuple[int, ...] | None = None
    gamma: Value = 0.1
    lr: Value = 1.0
    total_steps: int | None = None

    def __post_init__(self) -> None:
        # one total for every setting: the milestones are shared
        total = checks.integer("total_steps", self.total_steps, 1, optional=True)
        marks: Any = self.milestones
        if marks is None:
            if total is None:
                raise ValueError("multistep needs milestones or total_steps")
            marks = sorted({m for m in (round(0.5 * total), round(0.75 * total)) if 1 <= m < total})
        marks = tuple(
            checks.integer(f"milestones[{i}]", m, 1)
            for i, m in enumerate(checks.sequence("milestones", marks, "a sequence of integers"))
        )
        if any(b <= a for a, b in zip(marks, marks[1:], strict=False)):
            raise ValueError(f"milestones must be strictly increasing, got {marks}")
        if total is not None and marks and marks[-1] >= total:
            raise ValueError(
                f"milestones must be < total_steps ({total}), got {marks} (never reached)"
            )
        set_fields(
            self,
            milestones=marks,
            gamma=checks.real("gamma", self.gamma, low=0, arrays=True),
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            total_steps=total,
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        marks = np.asarray(self.milestones, dtype=np.float64)
        return self.lr * self.gamma ** np.searchsorted(marks, t, side="right")


@dataclass(frozen=True, eq=False)
class ExponentialDecay(Schedule):
    r"""Multiply by ``gamma`` every step, like ``torch.optim.lr_scheduler.ExponentialLR``.

    .. math:: \eta_t = \eta\,\gamma^t

    Without ``gamma``, it is chosen so that the rate reaches 1% of ``lr`` at ``total_steps``:
    :math:`\gamma = 0.01^{1/T}`.

    >>> ExponentialDecay(gamma=0.5, lr=2.0)(3)
    0.25
    """

    gamma: Value = None
    lr: Value = 1.0
    total_steps: Value = None

    def __post_init__(self) -> None:
        total = checked_total(self.total_steps)
        gamma = self.gamma
        if gamma is None:
            if total is None:
                raise ValueError("exponential needs gamma or total_steps")
            gamma = 0.01 ** (1.0 / np.asarray(total, dtype=np.float64))
            gamma = float(gamma) if np.ndim(gamma) == 0 else gamma
        set_fields(
            self,
            gamma=checks.real("gamma", gamma, low=0, arrays=True),
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            total_steps=total,
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        return self.lr * self.gamma**t


@dataclass(frozen=True, eq=False)
class PolynomialDecay(Schedule):
    r"""Polynomial decay to ``end_lr`` at ``total_steps``, like torch's ``PolynomialLR``
    (which has ``end_lr = 0``).

    .. math:: \eta_t = \eta_{end} + (\eta - \eta_{end})\,(1 - \min(t, T)/T)^{p}

    >>> PolynomialDecay(total_steps=10, power=2.0)(5)
    0.25
    """

    total_steps: Value = None
    power: Value = 1.0
    lr: Value = 1.0
    end_lr: Value = 0.0

    def __post_init__(self) -> None:
        set_fields(
            self,
            total_steps=checked_total(self.total_steps, "polynomial"),
            power=checks.real("power", self.power, low=0, arrays=True),
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            end_lr=checks.real("end_lr", self.end_lr, low=0, arrays=True),
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        frac = 1.0 - clamp(t, self.total_steps) / self.total_steps
        return self.end_lr + (self.lr - self.end_lr) * frac**self.power


@dataclass(frozen=True, eq=False)
class Linear(Schedule):
    r"""Linear change of the factor from ``start_factor`` to ``end_factor`` over ``total_steps``,
    like ``torch.optim.lr_scheduler.LinearLR`` (whose defaults are 1/3 and 1; ours decay to 0).

    .. math:: \eta_t = \eta\,\big(f_s + (f_e - f_s)\min(t, T)/T\big)

    >>> Linear(total_steps=4, lr=2.0)(1)
    1.5
    """

    total_steps: Value = None
    lr: Value = 1.0
    start_factor: Value = 1.0
    end_factor: Value = 0.0

    def __post_init__(self) -> None:
        set_fields(
            self,
            total_steps=checked_total(self.total_steps, "linear"),
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            start_factor=checks.real("start_factor", self.start_factor, low=0, arrays=True),
            end_factor=checks.real("end_factor", self.end_factor, low=0, arrays=True),
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        frac = clamp(t, self.total_steps) / self.total_steps
        return self.lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


def cosine(start: Value, end: Value, frac: np.ndarray) -> np.ndarray:
    """Half a cosine from ``start`` (frac 0) to ``end`` (frac 1)."""
    return end + (start - end) * (1.0 + np.cos(math.pi * frac)) / 2.0


@dataclass(frozen=True, eq=False)
class CosineAnnealing(Schedule):
    r"""Cosine annealing to ``eta_min`` at ``total_steps``, the closed form of
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max = total_steps``.

    .. math:: \eta_t = \eta_{min} + \tfrac12(\eta - \eta_{min})\,(1 + \cos(\pi \min(t, T)/T))

    >>> CosineAnnealing(total_steps=100, lr=1.0)(50)
    0.5
    """

    total_steps: Value = None
    lr: Value = 1.0
    eta_min: Value = 0.0

    def __post_init__(self) -> None:
        set_fields(
            self,
            total_steps=checked_total(self.total_steps, "cosine"),
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            eta_min=checks.real("eta_min", self.eta_min, low=0, arrays=True),
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        return cosine(self.lr, self.eta_min, clamp(t, self.total_steps) / self.total_steps)


@dataclass(frozen=True, eq=False)
class CosineWarmRestarts(Schedule):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017), the closed form of
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``.

    Cycle ``i`` lasts :math:`T_i = T_0 T_{mult}^i` steps and starts at
    :math:`s_i = \sum_{j<i} T_j`; within it

    .. math:: \eta_t = \eta_{min} + \tfrac12(\eta - \eta_{min})\,(1 + \cos(\pi (t - s_i)/T_i))

    ``T_0`` defaults to ``total_steps // 4`` (at least 1). Open-ended.

    >>> CosineWarmRestarts(T_0=10)(10)  # a restart
    1.0
    """

    T_0: Value = None  # noqa: N815 (torch's name)
    T_mult: Value = 1  # noqa: N815
    lr: Value = 1.0
    eta_min: Value = 0.0
    total_steps: Value = None

    def __post_init__(self) -> None:
        total = checked_total(self.total_steps)
        t0 = self.T_0
        if t0 is None:
            if total is None:
                raise ValueError("cosine_restarts needs T_0 or total_steps")
            t0 = part(total, 4)
        set_fields(
            self,
            T_0=checks.integer("T_0", t0, low=1, arrays=True),
            T_mult=checks.integer("T_mult", self.T_mult, low=1, arrays=True),
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            eta_min=checks.real("eta_min", self.eta_min, low=0, arrays=True),
            total_steps=total,
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        t0 = np.asarray(self.T_0, dtype=np.float64)
        mult = np.asarray(self.T_mult, dtype=np.float64)
        geometric = mult > 1
        safe = np.where(geometric, mult, 2.0)
        # cycle index n: s_n <= t < s_{n+1}; the log estimate is corrected by one either way
        guess = np.floor(np.log(t / t0 * (safe - 1) + 1) / np.log(safe))

        def start(n: np.ndarray) -> np.ndarray:
            # the power only where T_mult > 1: with T_mult = 1, 2.0**n overflows past ~1024 cycles
            power = safe ** np.where(geometric, n, 0.0)
            return np.where(geometric, t0 * (power - 1) / (safe - 1), t0 * n)

        n = np.where(geometric, guess, np.floor(t / t0))
        n = np.where(start(n) > t, n - 1, n)
        n = np.where(start(n + 1) <= t, n + 1, n)
        t_cur = t - start(n)
        t_i = np.where(geometric, t0 * safe ** np.where(geometric, n, 0.0), t0)
        return cosine(self.lr, self.eta_min, t_cur / t_i)
