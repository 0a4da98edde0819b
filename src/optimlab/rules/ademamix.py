"""AdEMAMix: Adam with a second, slow momentum mixed into the numerator."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ..core.arrays import namespace
from ._axes import is_array
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class AdEMAMixState(NamedTuple):
    count: Any  # steps taken
    m1: Any  # fast EMA of gradients (rate beta1)
    m2: Any  # slow EMA of gradients (rate beta3)
    v: Any  # EMA of squared gradients


def init(param: Any) -> AdEMAMixState:
    xp = namespace(param)
    return AdEMAMixState(0, xp.zeros_like(param), xp.zeros_like(param), xp.zeros_like(param))


def alpha_at(t: int, alpha: Any, warmup: int) -> Any:
    """Linear warmup of alpha from 0: ``alpha t / T`` for ``t < T``, then ``alpha``."""
    return alpha * (t / warmup) if t < warmup else alpha


def beta3_at(xp: Any, t: int, beta1: Any, beta3: Any, warmup: int) -> Any:
    """beta3 warmed up from beta1 with the half-life ``h(b) = ln(1/2) / ln(b) - 1`` linear
    in ``t`` (the paper's scheduler): ``b(t) = 2^(-1 / (h + 1))`` with
    ``h = (1 - t/T) h(beta1) + (t/T) h(beta3)`` for ``t < T``, then ``beta3``. The logs
    take ``b + 1e-8`` as the authors' code does, so ``beta1 = 0`` is allowed."""
    if t >= warmup:
        return beta3
    log = xp.log if is_array(beta1) or is_array(beta3) else math.log
    a = t / warmup
    half_life = (1 - a) * (math.log(0.5) / log(beta1 + 1e-8) - 1) + a * (
        math.log(0.5) / log(beta3 + 1e-8) - 1
    )
    return 0.5 ** (1 / (half_life + 1))


def per_step(
    state: AdEMAMixState,
    *,
    beta1: Any,
    beta2: Any,
    beta3: Any,
    alpha: Any,
    beta3_warmup: int = 0,
    alpha_warmup: int = 0,
    **_: Any,
) -> dict[str, Any]:
    r"""This step's scalars at ``t = count + 1``: the warmed-up ``beta3(t)`` and
    ``alpha(t)``, ``bias_correction1 = 1 - beta1^t`` and ``bc2_sqrt = sqrt(1 - beta2^t)``."""
    t = state.count + 1
    return {
        "beta3": beta3_at(
            namespace(beta3 if is_array(beta3) else beta1), t, beta1, beta3, beta3_warmup
        ),
        "alpha": alpha_at(t, alpha, alpha_warmup),
        "bias_correction1": 1 - beta1**t,
        "bc2_sqrt": (1 - beta2**t) ** 0.5,
    }


def update(
    grad: Any,
    state: AdEMAMixState,
    param: Any,
    *,
    lr: Any = 1e-3,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    beta3: Any = 0.9999,
    alpha: Any = 2.0,
    beta3_warmup: int = 0,
    alpha_warmup: int = 0,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, AdEMAMixState]:
    r"""One AdEMAMix step; returns ``(delta, new_state)``.

    .. math::
        m^{(1)}_t &= \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g, \qquad
        m^{(2)}_t = \beta_3(t)\, m^{(2)}_{t-1} + (1-\beta_3(t)) g \\
        v_t &= \beta_2 v_{t-1} + (1-\beta_2) g^2 \\
        \Delta &= -\eta \left( \frac{m^{(1)}_t/(1-\beta_1^t) + \alpha(t)\, m^{(2)}_t}
            {\sqrt{v_t/(1-\beta_2^t)} + \epsilon} + \lambda\theta \right)

    The slow EMA (``beta3`` near 1) remembers gradients for thousands of steps and is
    not bias-corrected. ``alpha(t)`` warms up linearly from 0 over ``alpha_warmup``
    steps and ``beta3(t)`` from ``beta1`` over ``beta3_warmup`` steps, linearly in the
    half-life (``beta3_at``); a warmup of 0 means none (the authors' ``None``). Weight
    decay is decoupled (AdamW's), as in the authors' code. ``scalars`` are this step's
    ``per_step`` values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> round(float(delta[0]), 6)  # -lr (1 + alpha (1 - beta3)), up to eps
    -0.10002

    Pagliardini, Ablin & Grangier, The AdEMAMix Optimizer: Better, Faster, Older, 2024.
    """
    xp = namespace(grad)
    if scalars is None:
        warmups = {"beta3_warmup": beta3_warmup, "alpha_warmup": alpha_warmup}
        scalars = per_step(state, beta1=beta1, beta2=beta2, beta3=beta3, alpha=alpha, **warmups)
    slow, mix = scalars["beta3"], scalars["alpha"]
    m1 = beta1 * state.m1 + (1 - beta1) * grad
    m2 = slow * state.m2 + (1 - slow) * grad
    v = beta2 * state.v + (1 - beta2) * grad * grad
    denom = xp.sqrt(v) / scalars["bc2_sqrt"] + eps
    delta = -lr * ((m1 / scalars["bias_correction1"] + mix * m2) / denom)
    if is_on(weight_decay):
        delta = delta - lr * weight_decay * param
    return delta, AdEMAMixState(state.count + 1, m1, m2, v)


ADEMAMIX = Rule(
    name="ademamix",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="decay of the fast momentum"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper("beta3", 0.9999, 0.0, 1.0, high_open=True, doc="decay of the slow momentum"),
        Hyper("alpha", 2.0, low=0.0, doc="weight of the slow momentum"),
        Hyper("beta3_warmup", 0, low=0, kind="int", doc="steps to warm beta3 up (0: none)"),
        Hyper("alpha_warmup", 0, low=0, kind="int", doc="steps to warm alpha up (0: none)"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="decoupled decay theta (1 - lr wd)"),
    ),
    state_numel=n_slots(lambda hp: 3),
    summary="Adam plus a slow (beta3 ~ 0.9999) momentum mixed in with weight alpha.",
    paper="Pagliardini, Ablin & Grangier, The AdEMAMix Optimizer: Better, Faster, Older, 2024",
    per_step=per_step,
)
