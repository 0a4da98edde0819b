"""Adagrad: per-coordinate step sizes from the running sum of squared gradients."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class AdagradState(NamedTuple):
    count: Any  # steps taken
    sum: Any = None  # sum of squared gradients; None until the first update


def init(param: Any) -> AdagradState:
    # The sum starts at initial_accumulator_value, a call-time hyperparameter, so the slot
    # is created by the first update (see base.Rule).
    return AdagradState(0)


def per_step(state: AdagradState, *, lr: Any, lr_decay: Any, **_: Any) -> dict[str, Any]:
    """This step's scalar: its learning rate ``step_lr = lr / (1 + (t-1) lr_decay)``."""
    return {"step_lr": lr / (1 + state.count * lr_decay)}


def update(
    grad: Any,
    state: AdagradState,
    param: Any,
    *,
    lr: Any = 1e-2,
    lr_decay: Any = 0.0,
    weight_decay: Any = 0.0,
    initial_accumulator_value: Any = 0.0,
    eps: Any = 1e-10,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, AdagradState]:
    r"""One Adagrad step; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow g + \lambda\theta \\
        s_t &= s_{t-1} + g^2 \quad (s_0 = \text{initial\_accumulator\_value}) \\
        \eta_t &= \eta / (1 + (t-1)\,\text{lr\_decay}) \\
        \Delta &= -\eta_t\, g / (\sqrt{s_t} + \epsilon)

    ``eps`` is added outside the square root, as in torch.optim.Adagrad. ``scalars`` are
    this step's ``per_step`` values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([3.0]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> round(float(delta[0]), 6), float(state.sum[0])  # first step: lr * sign(g)
    (-0.1, 9.0)

    Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and Stochastic
    Optimization, JMLR 2011.
    """
    xp = namespace(grad)
    if scalars is None:
        scalars = per_step(state, lr=lr, lr_decay=lr_decay)
    if is_on(weight_decay):
        grad = grad + weight_decay * param
    prev = initial_accumulator_value if state.sum is None else state.sum
    total = prev + grad * grad
    delta = -scalars["step_lr"] * grad / (xp.sqrt(total) + eps)
    return delta, AdagradState(state.count + 1, total)


ADAGRAD = Rule(
    name="adagrad",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-2, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("lr_decay", 0.0, low=0.0, doc="lr / (1 + (t-1) lr_decay)"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty added to the gradient"),
        Hyper("initial_accumulator_value", 0.0, low=0.0, doc="starting value of the sum"),
        Hyper("eps", 1e-10, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
    ),
    state_numel=n_slots(lambda hp: 1),
    summary="Per-coordinate step sizes shrinking with the sum of squared gradients.",
    paper="Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and "
    "Stochastic Optimization, JMLR 2011",
    per_step=per_step,
)
