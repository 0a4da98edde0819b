r"""Warmup schedules: linear warmup then a decay, the Transformer's inverse square root, and
warmup-stable-decay.

The warmup is linear from ``init_lr`` at step 0 to ``lr`` at step ``warmup_steps`` (the
convention of Hugging Face's ``get_*_schedule_with_warmup``, so step 0 uses ``init_lr``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import checks
from .base import Schedule, Value, checked_total, clamp, set_fields
from .decay import cosine

DECAYS = ("cosine", "linear", "constant", "inverse_sqrt")
WSD_DECAYS = ("linear", "cosine", "sqrt")


def _default_warmup(total: Value | None, name: str) -> Value:
    if total is None:
        raise ValueError(f"{name} needs warmup_steps or total_steps")
    return total // 10


def _ramp(t: np.ndarray, warmup: Value, init_lr: Value, lr: Value) -> np.ndarray:
    """Linear from ``init_lr`` at 0 to ``lr`` at ``warmup`` (``warmup = 0`` is never used)."""
    return init_lr + (lr - init_lr) * t / np.maximum(warmup, 1)


@dataclass(frozen=True, eq=False)
class Warmup(Schedule):
    r"""Linear warmup for ``warmup_steps`` steps, then ``decay``.

    With :math:`W` = ``warmup_steps``, :math:`T` = ``total_steps``,
    :math:`p = (\min(t, T) - W)/(T - W)`:

    .. math::
        \eta_t = \eta_0 + (\eta - \eta_0)\,t/W \quad (t < W), \text{ then}
        \begin{cases}
        \eta_{end} + \tfrac12(\eta - \eta_{end})(1 + \cos \pi p) & \text{cosine} \\
        \eta + (\eta_{end} - \eta)\,p & \text{linear} \\
        \eta & \text{constant} \\
        \eta\,\sqrt{\max(W, 1)/t} & \text{inverse\_sqrt (t >= 1)}
        \end{cases}

    ``warmup_steps`` defaults to ``total_steps // 10`` and must be < ``total_steps``.
    Cosine and linear need ``total_steps`` and hold ``end_lr`` past it; constant and
    inverse_sqrt are open-ended (``total_steps`` optional, ``end_lr`` must stay 0).

    >>> Warmup("cosine", total_steps=110, warmup_steps=10)(5)
    0.5
    """

    decay: str = "cosine"
    total_steps: Value = None
    warmup_steps: Value = None
    lr: Value = 1.0
    init_lr: Value = 0.0
    end_lr: Value = 0.0

    def __post_init__(self) -> None:
        decay = checks.choice("decay", self.decay, DECAYS)
        bounded = decay in ("cosine", "linear")
        total = checked_total(self.total_steps, f"warmup_{decay}" if bounded else None)
        warmup = self.warmup_steps
        if warmup is None:
            warmup = _default_warmup(total, f"warmup_{decay}")
        warmup = checks.integer("warmup_steps", warmup, low=0, arrays=True)
        if total is not None:
            checks.require(
                np.less(warmup, total),
                f"warmup_steps must be < total_steps, got warmup_steps={checks.show(warmup)} "
                f"and total_steps={checks.show(total)}",
            )
        end_lr = checks.real("end_lr", self.end_lr, low=0, arrays=True)
        if not bounded and np.any(np.asarray(end_lr) != 0):
            raise ValueError(f"end_lr is not used by warmup_{decay}; got {checks.show(end_lr)}")
        set_fields(
            self,
            total_steps=total,
            warmup_steps=warmup,
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            init_lr=checks.real("init_lr", self.init_lr, low=0, arrays=True),
            end_lr=end_lr,
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        w = self.warmup_steps
        if self.decay == "constant":
            after = np.zeros_like(t) + self.lr
        elif self.decay == "inverse_sqrt":
            after = self.lr * np.sqrt(np.maximum(w, 1) / np.maximum(t, 1))
        else:
            frac = (clamp(t, self.total_steps) - w) / (self.total_steps - w)
            frac = np.maximum(frac, 0.0)
            if self.decay == "cosine":
                after = cosine(self.lr, self.end_lr, frac)
            else:
                after = self.lr + (self.end_lr - self.lr) * frac
        return np.where(t < w, _ramp(t, w, self.init_lr, self.lr), after)


@dataclass(frozen=True, eq=False)
class InverseSqrt(Schedule):
    r"""The Transformer schedule (Vaswani et al. 2017, "Attention Is All You Need", eq. 3).

    .. math:: \eta_t = \eta\,d_{model}^{-1/2}\,\min(s^{-1/2},\ s\,W^{-3/2}), \quad s = t + 1

    It peaks at step :math:`W - 1` at :math:`\eta/\sqrt{d_{model} W}`. ``warmup_steps``
    defaults to 4000 (the paper), or ``total_steps // 10`` (at least 1) when ``total_steps``
    is given. Open-ended. For a version peaking at ``lr``, see ``Warmup("inverse_sqrt")``.

    >>> round(InverseSqrt(d_model=512, warmup_steps=4000)(3999), 10)
    0.0006987712
    """

    d_model: Value = 512
    warmup_steps: Value = None
    lr: Value = 1.0
    total_steps: Value = None

    def __post_init__(self) -> None:
        total = checked_total(self.total_steps)
        warmup = self.warmup_steps
        if warmup is None:
            warmup = 4000 if total is None else np.maximum(total // 10, 1)
            warmup = int(warmup) if np.ndim(warmup) == 0 else warmup
        warmup = checks.integer("warmup_steps", warmup, low=1, arrays=True)
        if total is not None:
            checks.require(
                np.less(warmup, total),
                f"warmup_steps must be < total_steps, got warmup_steps={checks.show(warmup)} "
                f"and total_steps={checks.show(total)}",
            )
        set_fields(
            self,
            d_model=checks.real("d_model", self.d_model, low=0, low_open=True, arrays=True),
            warmup_steps=warmup,
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            total_steps=total,
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        s = t + 1.0
        return self.lr * self.d_model**-0.5 * np.minimum(s**-0.5, s * self.warmup_steps**-1.5)


@dataclass(frozen=True, eq=False)
class WarmupStableDecay(Schedule):
    r"""Warmup-stable-decay (WSD; Hu et al. 2024 "MiniCPM", Hägele et al. 2024): linear warmup
    for :math:`W` steps, constant ``lr``, then a cooldown over the last :math:`D` steps.

    With :math:`p = (\min(t, T) - (T - D))/D` during the cooldown:

    .. math::
        \eta_t = \begin{cases}
        \eta_0 + (\eta - \eta_0)\,t/W & t < W \\
        \eta & W \le t < T - D \\
        \eta + (\eta_{end} - \eta)\,p & \text{linear} \\
        \eta_{end} + \tfrac12(\eta - \eta_{end})(1 + \cos \pi p) & \text{cosine} \\
        \eta + (\eta_{end} - \eta)\sqrt{p} & \text{sqrt ("1 - sqrt")}
        \end{cases}

    Defaults: ``warmup_steps = total_steps // 10``, ``decay_steps = total_steps // 5``
    (at least 1); ``warmup_steps + decay_steps <= total_steps``. Holds ``end_lr`` past ``T``.

    >>> WarmupStableDecay(total_steps=100, warmup_steps=10, decay_steps=20)(90)
    0.5
    """

    total_steps: Value = None
    warmup_steps: Value = None
    decay_steps: Value = None
    lr: Value = 1.0
    init_lr: Value = 0.0
    end_lr: Value = 0.0
    decay: str = "linear"

    def __post_init__(self) -> None:
        total = checked_total(self.total_steps, "wsd")
        warmup = _default_warmup(total, "wsd") if self.warmup_steps is None else self.warmup_steps
        decay_steps = self.decay_steps
        if decay_steps is None:
            decay_steps = np.maximum(total // 5, 1)
            decay_steps = int(decay_steps) if np.ndim(decay_steps) == 0 else decay_steps
        warmup = checks.integer("warmup_steps", warmup, low=0, arrays=True)
        decay_steps = checks.integer("decay_steps", decay_steps, low=1, arrays=True)
        checks.require(
            np.add(warmup, decay_steps) <= total,
            f"warmup_steps + decay_steps must be <= total_steps, got "
            f"{checks.show(warmup)} + {checks.show(decay_steps)} > {checks.show(total)}",
        )
        set_fields(
            self,
            total_steps=total,
            warmup_steps=warmup,
            decay_steps=decay_steps,
            lr=checks.real("lr", self.lr, low=0, arrays=True),
            init_lr=checks.real("init_lr", self.init_lr, low=0, arrays=True),
            end_lr=checks.real("end_lr", self.end_lr, low=0, arrays=True),
            decay=checks.choice("decay", self.decay, WSD_DECAYS),
        )

    def _value(self, t: np.ndarray) -> np.ndarray:
        w, d, total = self.warmup_steps, self.decay_steps, self.total_steps
        p = np.clip((clamp(t, total) - (total - d)) / d, 0.0, 1.0)
        if self.decay == "linear":
            cool = self.lr + (self.end_lr - self.lr) * p
        elif self.decay == "cosine":
            cool = cosine(self.lr, self.end_lr, p)
        else:
            cool = self.lr + (self.end_lr - self.lr) * np.sqrt(p)
        return np.where(t < w, _ramp(t, w, self.init_lr, self.lr), cool)
