"""Adamax: Adam with the infinity norm in place of the second moment."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class AdamaxState(NamedTuple):
    count: Any  # steps taken
    m: Any  # first moment (EMA of gradients)
    u: Any  # exponentially weighted infinity norm of the gradients


def init(param: Any) -> AdamaxState:
    xp = namespace(param)
    return AdamaxState(0, xp.zeros_like(param), xp.zeros_like(param))


def per_step(state: AdamaxState, *, lr: Any, beta1: Any, **_: Any) -> dict[str, Any]:
    """This step's scalar: ``step_size = lr / (1 - beta1^t)`` at ``t = count + 1``."""
    return {"step_size": lr / (1 - beta1 ** (state.count + 1))}


def update(
    grad: Any,
    state: AdamaxState,
    param: Any,
    *,
    lr: Any = 2e-3,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, AdamaxState]:
    r"""One Adamax step; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow g + \lambda\theta \quad\text{(L2)} \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g \\
        u_t &= \max(\beta_2 u_{t-1},\ |g| + \epsilon) \\
        \Delta &= -\frac{\eta}{1-\beta_1^t}\, \frac{m_t}{u_t}

    As torch.optim.Adamax: ``eps`` is added to ``|g|`` inside the max (so ``u_t >= eps``
    and the division is safe), and the weight decay is an L2 term in the gradient.
    ``scalars`` are this step's ``per_step`` values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> round(float(delta[0]), 6)  # the first step has size lr
    -0.1

    Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015 (section 7.1).
    """
    xp = namespace(grad)
    if scalars is None:
        scalars = per_step(state, lr=lr, beta1=beta1)
    if is_on(weight_decay):
        grad = grad + weight_decay * param
    m = beta1 * state.m + (1 - beta1) * grad
    u = xp.maximum(beta2 * state.u, xp.abs(grad) + eps)
    delta = -scalars["step_size"] * m / u
    return delta, AdamaxState(state.count + 1, m, u)


ADAMAX = Rule(
    name="adamax",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 2e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="decay of the first moment"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the infinity norm"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to |g| inside the max"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty added to the gradient"),
    ),
    state_numel=n_slots(lambda hp: 2),
    summary="Adam with an infinity-norm scale: a running max of |g| instead of an RMS.",
    paper="Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015",
    per_step=per_step,
)
