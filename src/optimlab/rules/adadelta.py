"""Adadelta: step sizes from the ratio of two running RMS values, no global rate needed."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class AdadeltaState(NamedTuple):
    count: Any  # steps taken
    square_avg: Any  # EMA of squared gradients
    acc_delta: Any  # EMA of squared (unscaled) updates


def init(param: Any) -> AdadeltaState:
    xp = namespace(param)
    return AdadeltaState(0, xp.zeros_like(param), xp.zeros_like(param))


def update(
    grad: Any,
    state: AdadeltaState,
    param: Any,
    *,
    lr: Any = 1.0,
    rho: Any = 0.9,
    eps: Any = 1e-6,
    weight_decay: Any = 0.0,
) -> tuple[Any, AdadeltaState]:
    r"""One Adadelta step; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow g + \lambda\theta \quad\text{(L2)} \\
        v_t &= \rho v_{t-1} + (1-\rho) g^2 \\
        d_t &= \frac{\sqrt{a_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g \\
        a_t &= \rho a_{t-1} + (1-\rho) d_t^2 \\
        \Delta &= -\eta\, d_t

    As torch.optim.Adadelta: ``eps`` inside both square roots, the accumulated update
    ``a_t`` tracks the unscaled ``d_t`` (before ``lr``), and ``lr`` (1.0 in the paper's
    form) scales the step.

    >>> import numpy as np
    >>> delta, state = update(np.array([2.0]), init(np.zeros(1)), np.zeros(1))
    >>> round(float(delta[0]), 6)  # sqrt(eps) / sqrt(0.1 * 4 + eps) * 2
    -0.003162

    Zeiler, ADADELTA: An Adaptive Learning Rate Method, 2012.
    """
    xp = namespace(grad)
    if is_on(weight_decay):
        grad = grad + weight_decay * param
    square_avg = rho * state.square_avg + (1 - rho) * grad * grad
    step = xp.sqrt(state.acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
    acc_delta = rho * state.acc_delta + (1 - rho) * step * step
    return -lr * step, AdadeltaState(state.count + 1, square_avg, acc_delta)


ADADELTA = Rule(
    name="adadelta",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1.0, low=0.0, limit=LR_MAX, doc="scales the step (1.0: the paper's form)"),
        Hyper("rho", 0.9, 0.0, 1.0, doc="decay of both running averages"),
        Hyper("eps", 1e-6, 0.0, low_open=True, doc="added inside both square roots"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty added to the gradient"),
    ),
    state_numel=n_slots(lambda hp: 2),
    summary="Per-coordinate steps from RMS(past updates) / RMS(gradients).",
    paper="Zeiler, ADADELTA: An Adaptive Learning Rate Method, 2012",
)
