"""Adam, and AdamW as its decoupled-weight-decay form."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from . import _axes
from ._axes import check_batched
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class AdamState(NamedTuple):
    count: Any  # steps taken
    m: Any  # first moment (EMA of gradients)
    v: Any  # second moment (EMA of squared gradients)
    v_max: Any = None  # AMSGrad: running max of v (None until amsgrad is used)


def init(param: Any, *, batch_ndim: int = 0) -> AdamState:
    """Zero state (``batch_ndim`` is accepted for the ``cautious`` option's batched calls;
    the state does not depend on it)."""
    xp = namespace(param)
    return AdamState(0, xp.zeros_like(param), xp.zeros_like(param))


def per_step(
    state: AdamState, *, lr: Any, beta1: Any, beta2: Any, bias_correction: bool = True, **_: Any
) -> dict[str, Any]:
    r"""This step's scalars: ``step_size = lr / (1 - beta1^t)`` and
    ``bc2_sqrt = sqrt(1 - beta2^t)`` at ``t = count + 1`` (``lr`` and 1 without bias
    correction)."""
    t = state.count + 1
    if not bias_correction:
        return {"step_size": lr, "bc2_sqrt": 1.0}
    return {"step_size": lr / (1 - beta1**t), "bc2_sqrt": (1 - beta2**t) ** 0.5}


def update(
    grad: Any,
    state: AdamState,
    param: Any,
    *,
    lr: Any = 1e-3,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    amsgrad: bool = False,
    bias_correction: bool = True,
    decoupled_weight_decay: bool = False,
    cautious: bool = False,
    batch_ndim: int = 0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, AdamState]:
    r"""One Adam step; returns ``(delta, new_state)`` with ``param + delta`` the new parameter.

    .. math::
        g &\leftarrow g + \lambda\theta \quad\text{(L2, unless decoupled)} \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g \\
        v_t &= \beta_2 v_{t-1} + (1-\beta_2) g^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ with AMSGrad, else } v_t \\
        \Delta &= -\frac{\eta}{1-\beta_1^t}\,
                  \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}
                  \;-\; \eta\lambda\theta \text{ (decoupled only)}

    ``bias_correction=False`` drops both ``1-\beta^t`` factors (the teaching variant).
    ``eps`` is added outside the square root, after bias correction, as in torch.optim.Adam.
    ``decoupled_weight_decay=True`` is AdamW: ``theta <- theta (1 - lr wd)`` before the step.
    ``cautious=True`` (Liang et al. 2024, "Cautious Optimizers") masks the adaptive step
    ``u = m_hat / (sqrt(v_hat) + eps)`` to the coordinates where it agrees with the
    gradient, ``u <- u [u g > 0] n / (sum [u g > 0] + 1)``, the count taken over the
    parameter's own ``n`` elements (its leading ``batch_ndim`` axes are settings); the
    weight decay is not masked. ``scalars`` are this step's ``per_step`` values (computed
    here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> round(float(delta[0]), 6)  # the first Adam step has size lr, whatever the gradient
    -0.1
    """
    xp = namespace(grad)
    if scalars is None:
        scalars = per_step(state, lr=lr, beta1=beta1, beta2=beta2, bias_correction=bias_correction)
    if is_on(weight_decay) and not decoupled_weight_decay:
        grad = grad + weight_decay * param
    m = beta1 * state.m + (1 - beta1) * grad
    v = beta2 * state.v + (1 - beta2) * grad * grad
    v_max = state.v_max
    if amsgrad:
        v_max = v if v_max is None else xp.maximum(v_max, v)
    v_hat = v_max if amsgrad else v
    step_size = scalars["step_size"]
    denom = xp.sqrt(v_hat) / scalars["bc2_sqrt"] + eps
    if cautious:
        hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
        check_batched("adam", "cautious", batch_ndim, hp)
        delta = -step_size * _axes.cautious(xp, m / denom, grad, batch_ndim)
    else:
        delta = -step_size * m / denom
    if decoupled_weight_decay and is_on(weight_decay):
        delta = delta - lr * weight_decay * param
    return delta, AdamState(state.count + 1, m, v, v_max)


ADAM = Rule(
    name="adam",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="decay of the first moment"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty (decoupled for AdamW)"),
        Hyper("amsgrad", False, kind="bool", doc="use the running max of v (AMSGrad)"),
        Hyper("bias_correction", True, kind="bool", doc="divide moments by 1 - beta^t"),
        Hyper("decoupled_weight_decay", False, kind="bool", doc="AdamW-style decay"),
        Hyper("cautious", False, kind="bool", doc="mask steps against the gradient (C-Adam)"),
    ),
    state_numel=n_slots(lambda hp: 3 if hp["amsgrad"] else 2),
    summary="Adaptive moments: momentum over a per-coordinate RMS scale.",
    paper="Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015; "
    "Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019; "
    "Liang et al., Cautious Optimizers: Improving Training with One Line of Code, 2024",
    reducing_options=("cautious",),
    per_step=per_step,
)
