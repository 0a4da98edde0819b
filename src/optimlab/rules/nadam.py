"""NAdam: Adam with Nesterov momentum and Dozat's momentum-decay schedule."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class NAdamState(NamedTuple):
    count: Any  # steps taken
    mu_product: Any  # product of the momentum schedule mu_1 ... mu_t (a scalar per setting)
    m: Any  # first moment
    v: Any  # second moment


def init(param: Any) -> NAdamState:
    xp = namespace(param)
    return NAdamState(0, 1.0, xp.zeros_like(param), xp.zeros_like(param))


def per_step(
    state: NAdamState, *, lr: Any, beta1: Any, beta2: Any, momentum_decay: Any, **_: Any
) -> dict[str, Any]:
    r"""This step's scalars at ``t = count + 1``: the new ``mu_product`` (``Pi_t``),
    ``bias_correction2 = 1 - beta2^t`` and the coefficients of ``g / d_t`` and
    ``m_t / d_t``."""
    t = state.count + 1
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    mu_product = state.mu_product * mu
    return {
        "mu_product": mu_product,
        "bias_correction2": 1 - beta2**t,
        "coef_grad": -lr * (1.0 - mu) / (1.0 - mu_product),
        "coef_m": -lr * mu_next / (1.0 - mu_product * mu_next),
    }


def update(
    grad: Any,
    state: NAdamState,
    param: Any,
    *,
    lr: Any = 2e-3,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    momentum_decay: Any = 4e-3,
    decoupled_weight_decay: bool = False,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, NAdamState]:
    r"""One NAdam step; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow g + \lambda\theta \quad\text{(L2, unless decoupled)} \\
        \mu_t &= \beta_1 (1 - \tfrac12\, 0.96^{t\psi}), \quad
            \Pi_t = \textstyle\prod_{i\le t} \mu_i \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g, \quad
            v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2 \\
        d_t &= \sqrt{v_t / (1-\beta_2^t)} + \epsilon \\
        \Delta &= -\eta \frac{1-\mu_t}{1-\Pi_t} \frac{g}{d_t}
                  - \eta \frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}} \frac{m_t}{d_t}
                  \;-\; \eta\lambda\theta \text{ (decoupled only)}

    ``psi`` is ``momentum_decay``. This is torch.optim.NAdam: ``mu_product`` is kept in the
    state, ``eps`` is added after the bias-corrected square root, and
    ``decoupled_weight_decay=True`` decays ``theta (1 - lr wd)`` as in AdamW. Here
    ``mu_product`` keeps the precision of the hyperparameters (a Python float, or the
    settings' arrays); torch stores it in the default dtype, float32 unless changed, so a
    float64 torch.optim.NAdam drifts about 1e-10 relative from this rule unless
    ``torch.set_default_dtype(torch.float64)``. ``scalars`` are this step's ``per_step``
    values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> round(float(delta[0]), 4)  # lr (1 + 0.1 mu_2 / (1 - mu_1 mu_2)), whatever the gradient
    -0.1056

    Dozat, Incorporating Nesterov Momentum into Adam, ICLR 2016 workshop.
    """
    xp = namespace(grad)
    if scalars is None:
        hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "momentum_decay": momentum_decay}
        scalars = per_step(state, **hp)
    if is_on(weight_decay) and not decoupled_weight_decay:
        grad = grad + weight_decay * param
    m = beta1 * state.m + (1 - beta1) * grad
    v = beta2 * state.v + (1 - beta2) * grad * grad
    denom = xp.sqrt(v / scalars["bias_correction2"]) + eps
    delta = scalars["coef_grad"] * grad / denom + scalars["coef_m"] * m / denom
    if decoupled_weight_decay and is_on(weight_decay):
        delta = delta - lr * weight_decay * param
    return delta, NAdamState(state.count + 1, scalars["mu_product"], m, v)


NADAM = Rule(
    name="nadam",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 2e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="decay of the first moment"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty (decoupled if chosen)"),
        Hyper("momentum_decay", 4e-3, low=0.0, doc="psi in mu_t = beta1 (1 - 0.96^(t psi) / 2)"),
        Hyper("decoupled_weight_decay", False, kind="bool", doc="AdamW-style decay"),
    ),
    state_numel=n_slots(lambda hp: 2),
    summary="Adam with Nesterov momentum (Dozat's NAdam, as torch.optim.NAdam).",
    paper="Dozat, Incorporating Nesterov Momentum into Adam, ICLR 2016 workshop",
    per_step=per_step,
)
