"""ASGD: SGD with a decaying step size and a running (Polyak-Ruppert) average of the iterates."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from ._axes import is_array
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class ASGDState(NamedTuple):
    count: Any  # steps taken
    eta: Any  # the step size of the next step (set from lr by the first update)
    ax: Any  # the averaged iterate (the point to evaluate at)


def init(param: Any) -> ASGDState:
    xp = namespace(param)
    return ASGDState(0, 0.0, xp.zeros_like(param))


def per_step(
    state: ASGDState, *, lr: Any, lambd: Any, alpha: Any, t0: Any, **_: Any
) -> dict[str, Any]:
    r"""This step's scalars at ``t = count + 1``: its step size ``step_eta`` (``eta_t``),
    the averaging weight ``mu`` (``mu_t``) and the next step's ``eta`` (the new state)."""
    t = state.count + 1
    since = t - 1 - t0
    mu = 1 / (namespace(since).maximum(since, 1.0) if is_array(since) else max(since, 1.0))
    return {
        "step_eta": lr if state.count == 0 else state.eta,
        "mu": mu,
        # lr * base**-alpha rather than lr / base**alpha: base >= 1, so this never
        # overflows (a Python float power would raise where torch's tensor gives eta = 0)
        "eta": lr * (1 + lambd * lr * t) ** -alpha,
    }


def update(
    grad: Any,
    state: ASGDState,
    param: Any,
    *,
    lr: Any = 1e-2,
    lambd: Any = 1e-4,
    alpha: Any = 0.75,
    t0: Any = 1e6,
    weight_decay: Any = 0.0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, ASGDState]:
    r"""One ASGD step; returns ``(delta, new_state)``.

    .. math::
        \eta_1 &= \eta, \quad
        \eta_{t+1} = \frac{\eta}{(1 + \lambda \eta t)^{\alpha}}, \qquad
        \mu_t = \frac{1}{\max(1,\ t - 1 - t_0)} \\
        g &\leftarrow g + w\theta \quad\text{(L2)} \\
        \theta_t &= \theta_{t-1} (1 - \lambda \eta_t) - \eta_t g \\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_t (\theta_t - \bar\theta_{t-1})

    torch.optim.ASGD's form: the average starts once ``t > t0 + 1`` (before that
    ``\bar\theta_t = \theta_t``) and is the point to evaluate the model at
    (``ASGD.eval_point``). As in torch, ``eta_{t+1}`` is computed after step ``t`` from
    that step's ``lr`` and kept in the state, so an LR schedule acts one step later than
    in other rules; ``mu_t`` is the same closed form of the step count as torch's (torch
    also stores it: the two differ only if ``t0`` changes during a run). ``scalars`` are
    this step's ``per_step`` values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([1.0]), init(np.ones(1)), np.ones(1), lr=0.1, lambd=0.0)
    >>> delta.tolist(), state.ax.tolist()
    ([-0.1], [0.9])

    Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging, SIAM J.
    Control Optim. 1992; Bottou, Large-Scale Machine Learning with SGD, COMPSTAT 2010.
    """
    if scalars is None:
        scalars = per_step(state, lr=lr, lambd=lambd, alpha=alpha, t0=t0)
    eta, mu = scalars["step_eta"], scalars["mu"]
    if is_on(weight_decay):
        grad = grad + weight_decay * param
    delta = -(lambd * eta) * param - eta * grad
    new_param = param + delta
    # torch copies the parameter while mu is 1
    ax = state.ax + mu * (new_param - state.ax) if is_array(mu) or mu != 1 else new_param
    return delta, ASGDState(state.count + 1, scalars["eta"], ax)


def eval_point(param: Any, state: ASGDState) -> Any:
    """The averaged iterate (the parameter itself before the first step)."""
    return param if state.count == 0 else state.ax


ASGD = Rule(
    name="asgd",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-2, low=0.0, limit=LR_MAX, doc="initial learning rate"),
        Hyper("lambd", 1e-4, low=0.0, doc="decay term: shrinks theta and the step size"),
        Hyper("alpha", 0.75, low=0.0, doc="power of the step-size decay"),
        Hyper("t0", 1e6, low=0.0, doc="step after which averaging starts"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty added to the gradient"),
    ),
    state_numel=n_slots(lambda hp: 1),
    summary="SGD with a decaying step and a running average of the iterates to evaluate.",
    paper="Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging, 1992",
    eval_point=eval_point,
    per_step=per_step,
)
