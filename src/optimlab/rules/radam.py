"""RAdam: Adam whose adaptive step is rectified by the variance of its own estimate."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class RAdamState(NamedTuple):
    count: Any  # steps taken
    m: Any  # first moment
    v: Any  # second moment


def init(param: Any) -> RAdamState:
    xp = namespace(param)
    return RAdamState(0, xp.zeros_like(param), xp.zeros_like(param))


def per_step(state: RAdamState, *, beta1: Any, beta2: Any, **_: Any) -> dict[str, Any]:
    r"""This step's scalars at ``t = count + 1``: ``bias_correction1 = 1 - beta1^t``,
    ``bc2_sqrt = sqrt(1 - beta2^t)``, whether the step is ``rectified`` (``rho_t > 5``:
    a bool, or an array of them for per-setting ``beta2``) and the rectifier ``rect``
    (``r_t``; None when no setting is rectified)."""
    t = state.count + 1
    bias_correction2 = 1 - beta2**t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
    values = {"bias_correction1": 1 - beta1**t, "bc2_sqrt": bias_correction2**0.5}
    if getattr(rho_t, "ndim", 0) == 0:  # one setting: torch's branch
        rectified = bool(float(rho_t) > 5.0)
        rect = _rect(rho_t, rho_inf) if rectified else None
    else:  # per-setting rho_t: the rectifier fed safe values where unused
        xp = namespace(rho_t)
        rectified = rho_t > 5.0
        rect = _rect(xp.where(rectified, rho_t, 6.0), xp.where(rectified, rho_inf, 6.0))
    return {**values, "rectified": rectified, "rect": rect}


def update(
    grad: Any,
    state: RAdamState,
    param: Any,
    *,
    lr: Any = 1e-3,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    decoupled_weight_decay: bool = False,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, RAdamState]:
    r"""One RAdam step; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow g + \lambda\theta \quad\text{(L2, unless decoupled)} \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g, \quad
            v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2, \quad \hat m_t = m_t / (1-\beta_1^t) \\
        \rho_\infty &= 2/(1-\beta_2) - 1, \quad
            \rho_t = \rho_\infty - 2t\beta_2^t / (1-\beta_2^t) \\
        r_t &= \sqrt{(\rho_t-4)(\rho_t-2)\rho_\infty / ((\rho_\infty-4)(\rho_\infty-2)\rho_t)} \\
        \Delta &= -\eta\, \hat m_t\, \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon}\, r_t
                  \text{ if } \rho_t > 5 \text{ else } -\eta\, \hat m_t
                  \;\; (-\,\eta\lambda\theta \text{ if decoupled})

    As torch.optim.RAdam: while ``rho_t <= 5`` (steps 1-5 with ``beta2=0.999``; every
    step when ``beta2 <= 2/3``, as then ``rho_inf <= 5``) the step is plain bias-corrected
    momentum, with no adaptive scale. Per-setting ``beta2`` arrays choose the branch per
    setting. ``scalars`` are this step's ``per_step`` values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> round(float(delta[0]), 6)  # un-rectified first step: -lr * m_hat = -lr * g
    -0.05

    Liu et al., On the Variance of the Adaptive Learning Rate and Beyond, ICLR 2020.
    """
    xp = namespace(grad)
    if scalars is None:
        scalars = per_step(state, beta1=beta1, beta2=beta2)
    if is_on(weight_decay) and not decoupled_weight_decay:
        grad = grad + weight_decay * param
    m = beta1 * state.m + (1 - beta1) * grad
    v = beta2 * state.v + (1 - beta2) * grad * grad
    m_hat = m / scalars["bias_correction1"]
    rectified, rect = scalars["rectified"], scalars["rect"]
    if rectified is True:
        delta = -(m_hat * lr * (scalars["bc2_sqrt"] / (xp.sqrt(v) + eps)) * rect)
    elif rectified is False:
        delta = -(m_hat * lr)
    else:  # per setting: both branches
        adaptive = scalars["bc2_sqrt"] / (xp.sqrt(v) + eps)
        delta = xp.where(rectified, -(m_hat * lr * adaptive * rect), -(m_hat * lr))
    if decoupled_weight_decay and is_on(weight_decay):
        delta = delta - lr * weight_decay * param
    return delta, RAdamState(state.count + 1, m, v)


def _rect(rho_t: Any, rho_inf: Any) -> Any:
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


RADAM = Rule(
    name="radam",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="decay of the first moment"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty (decoupled if chosen)"),
        Hyper("decoupled_weight_decay", False, kind="bool", doc="AdamW-style decay"),
    ),
    state_numel=n_slots(lambda hp: 2),
    summary="Adam with its adaptive step rectified by the variance of v (torch.optim.RAdam).",
    paper="Liu et al., On the Variance of the Adaptive Learning Rate and Beyond, ICLR 2020",
    per_step=per_step,
)
