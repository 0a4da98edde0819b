"""Rprop: per-coordinate step sizes adapted from the sign of successive gradients."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..core.arrays import namespace
from ..core.checks import require, show
from .base import INF, LR_MAX, Hyper, Rule, n_slots


class RpropState(NamedTuple):
    count: Any  # steps taken
    prev: Any  # the previous step's gradient (0 where it changed sign)
    step_size: Any = None  # per-coordinate step sizes; starts at lr on the first update


def init(param: Any) -> RpropState:
    xp = namespace(param)
    return RpropState(0, xp.zeros_like(param))


def update(
    grad: Any,
    state: RpropState,
    param: Any,
    *,
    lr: Any = 1e-2,
    eta_minus: Any = 0.5,
    eta_plus: Any = 1.2,
    step_size_min: Any = 1e-6,
    step_size_max: Any = 50.0,
) -> tuple[Any, RpropState]:
    r"""One Rprop step; returns ``(delta, new_state)``.

    .. math::
        s &= \mathrm{sign}(g_t\, g_{t-1}), \qquad
        f = \begin{cases} \eta_+ & s > 0 \\ \eta_- & s < 0 \\ 1 & s = 0 \end{cases} \\
        \delta_t &= \mathrm{clip}(f\, \delta_{t-1},\ \delta_{\min},\ \delta_{\max}),
            \quad \delta_0 = \eta \\
        g_t &\leftarrow 0 \text{ where } s < 0, \qquad
        \Delta = -\mathrm{sign}(g_t)\, \delta_t

    torch.optim.Rprop's form (Rprop without weight backtracking): where the gradient
    changed sign the step shrinks and that coordinate does not move this step, and the
    zeroed gradient is what the next step compares against. ``lr`` is only the initial
    step size: changing it after the first step has no effect, as in torch.

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5, -2.0]), init(np.zeros(2)), np.zeros(2), lr=0.1)
    >>> delta.tolist()
    [-0.1, 0.1]

    Riedmiller & Braun, A Direct Adaptive Method for Faster Backpropagation Learning:
    The RPROP Algorithm, ICNN 1993.
    """
    xp = namespace(grad)
    step_size = xp.zeros_like(param) + lr if state.step_size is None else state.step_size
    s = xp.sign(grad * state.prev)
    # built in the gradient's dtype, as torch writes the factors into the sign tensor
    factor = xp.where(s > 0, eta_plus, xp.where(s < 0, eta_minus, xp.full_like(grad, 1.0)))
    step_size = xp.minimum(xp.maximum(step_size * factor, step_size_min), step_size_max)
    grad = xp.where(s < 0, 0.0, grad)
    delta = -xp.sign(grad) * step_size
    return delta, RpropState(state.count + 1, grad, step_size)


def _check_step_sizes(hp: Mapping[str, Any]) -> None:
    low, high = hp["step_size_min"], hp["step_size_max"]
    require(
        low <= high, f"step_size_min must be <= step_size_max, got {show(low)} and {show(high)}"
    )


RPROP = Rule(
    name="rprop",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-2, low=0.0, limit=LR_MAX, doc="initial step size of every coordinate"),
        Hyper(
            "eta_minus", 0.5, 0.0, 1.0, low_open=True, high_open=True, doc="shrink on a sign change"
        ),
        Hyper("eta_plus", 1.2, 1.0, INF, low_open=True, doc="growth while the sign holds"),
        Hyper("step_size_min", 1e-6, low=0.0, doc="smallest step size"),
        Hyper("step_size_max", 50.0, 0.0, low_open=True, doc="largest step size"),
    ),
    state_numel=n_slots(lambda hp: 2),
    summary="Sign steps with per-coordinate sizes grown while the gradient sign holds.",
    paper="Riedmiller & Braun, The RPROP Algorithm, ICNN 1993",
    checks=(_check_step_sizes,),
)
