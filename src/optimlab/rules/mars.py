"""MARS: variance-reduced (STORM-style) gradients fed to AdamW, in its approximate form."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from ._axes import own_norm
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class MARSState(NamedTuple):
    count: Any  # steps taken
    m: Any  # first moment of the corrected gradient
    v: Any  # second moment of the corrected gradient
    prev_grad: Any  # the previous step's gradient (0 before the first)


def init(param: Any, *, batch_ndim: int = 0) -> MARSState:
    """Zero state; the leading ``batch_ndim`` axes of ``param`` are settings."""
    xp = namespace(param)
    return MARSState(0, xp.zeros_like(param), xp.zeros_like(param), xp.zeros_like(param))


def per_step(
    state: MARSState, *, lr: Any, beta1: Any, beta2: Any, gamma: Any, **_: Any
) -> dict[str, Any]:
    r"""This step's scalars at ``t = count + 1``: the gradient ``correction``
    ``gamma beta1 / (1 - beta1)``, ``step_size = lr / (1 - beta1^t)`` and
    ``bc2_sqrt = sqrt(1 - beta2^t)``."""
    t = state.count + 1
    return {
        "correction": gamma * beta1 / (1 - beta1),
        "step_size": lr / (1 - beta1**t),
        "bc2_sqrt": (1 - beta2**t) ** 0.5,
    }


def update(
    grad: Any,
    state: MARSState,
    param: Any,
    *,
    lr: Any = 3e-3,
    beta1: Any = 0.95,
    beta2: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    gamma: Any = 0.025,
    batch_ndim: int = 0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, MARSState]:
    r"""One MARS-AdamW step (the approximate form); returns ``(delta, new_state)``.

    .. math::
        c_t &= g_t + \gamma \frac{\beta_1}{1-\beta_1} (g_t - g_{t-1}), \qquad
            c_t \leftarrow c_t / \|c_t\| \text{ if } \|c_t\| > 1 \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) c_t, \qquad
            v_t = \beta_2 v_{t-1} + (1-\beta_2) c_t^2 \\
        \Delta &= -\eta \left( \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
            + \lambda\theta \right)

    Exact MARS needs the gradient of the *current* mini-batch at the *previous*
    parameters (a second backward pass); this is MARS-approx, the form the authors
    recommend and use for their language-model results, with the previous step's
    gradient ``g_{t-1}`` instead (``g_0 = 0``). The norm is over the parameter's own
    elements (one per setting with ``batch_ndim``), so the rule is not elementwise. The
    authors' optimizer sends 1-D parameters to plain AdamW by default (``optimize_1d``);
    this rule applies MARS to every parameter it is given. Weight decay is decoupled.
    ``scalars`` are this step's ``per_step`` values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> round(float(delta[0]), 6)  # like Adam, the first step has size lr
    -0.1

    Yuan et al., MARS: Unleashing the Power of Variance Reduction for Training Large
    Models, 2024.
    """
    xp = namespace(grad)
    if scalars is None:
        scalars = per_step(state, lr=lr, beta1=beta1, beta2=beta2, gamma=gamma)
    c = grad + scalars["correction"] * (grad - state.prev_grad)
    norm = own_norm(xp, c, batch_ndim)
    c = c / xp.maximum(norm, 1.0)
    m = beta1 * state.m + (1 - beta1) * c
    v = beta2 * state.v + (1 - beta2) * c * c
    denom = xp.sqrt(v) / scalars["bc2_sqrt"] + eps
    delta = -scalars["step_size"] * m / denom
    if is_on(weight_decay):
        delta = delta - lr * weight_decay * param
    return delta, MARSState(state.count + 1, m, v, xp.copy(grad))


MARS = Rule(
    name="mars",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 3e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("beta1", 0.95, 0.0, 1.0, high_open=True, doc="decay of the first moment"),
        Hyper("beta2", 0.99, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="decoupled decay theta (1 - lr wd)"),
        Hyper("gamma", 0.025, low=0.0, doc="strength of the gradient correction"),
    ),
    state_numel=n_slots(lambda hp: 3),
    summary="AdamW on variance-reduced gradients g + gamma b/(1-b) (g - g_prev), norm-clipped.",
    paper="Yuan et al., MARS: Unleashing the Power of Variance Reduction for Training Large "
    "Models, 2024",
    elementwise=False,
    per_step=per_step,
)
