"""RMSProp: divide the gradient by a running RMS of recent gradients."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class RMSpropState(NamedTuple):
    count: Any  # steps taken
    square_avg: Any  # EMA of squared gradients
    momentum_buffer: Any = None  # None until momentum is first used
    grad_avg: Any = None  # centered: EMA of gradients (None until centered is used)


def init(param: Any) -> RMSpropState:
    xp = namespace(param)
    return RMSpropState(0, xp.zeros_like(param))


def update(
    grad: Any,
    state: RMSpropState,
    param: Any,
    *,
    lr: Any = 1e-2,
    alpha: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    momentum: Any = 0.0,
    centered: bool = False,
) -> tuple[Any, RMSpropState]:
    r"""One RMSProp step; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow g + \lambda\theta \\
        v_t &= \alpha v_{t-1} + (1-\alpha) g^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1-\alpha) g \quad\text{(centered only)} \\
        d_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \text{ (centered) else } \sqrt{v_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g / d_t \quad (b_0 = 0) \\
        \Delta &= -\eta\, b_t \text{ (momentum) else } -\eta\, g / d_t

    torch.optim.RMSprop's convention: ``eps`` outside the square root, the momentum buffer
    starts at zero and accumulates the already-scaled step ``g / d``.

    >>> import numpy as np
    >>> delta, _ = update(np.array([1.0]), init(np.zeros(1)), np.zeros(1), lr=0.01, alpha=0.99)
    >>> round(float(delta[0]), 6)  # the first step is lr / sqrt(1 - alpha)
    -0.1

    Hinton, Neural Networks for Machine Learning, lecture 6e (2012); Graves, Generating
    Sequences With Recurrent Neural Networks, 2013 (centered form).
    """
    xp = namespace(grad)
    if is_on(weight_decay):
        grad = grad + weight_decay * param
    square_avg = alpha * state.square_avg + (1 - alpha) * grad * grad
    grad_avg = state.grad_avg
    if centered:
        prev = xp.zeros_like(grad) if grad_avg is None else grad_avg
        grad_avg = alpha * prev + (1 - alpha) * grad
        avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = xp.sqrt(square_avg) + eps
    # -lr * (g / d) in both branches (torch's addcdiv rounds (-lr g) / d in the plain one,
    # 1 ulp apart) so a batch mixing momentum 0 and > 0 runs the same operations as
    # separate runs (they still agree only within rounding: NumPy's loops differ by CPU).
    step = grad / avg
    buf = state.momentum_buffer
    if is_on(momentum) or buf is not None:
        buf = step if buf is None else momentum * buf + step
        step = buf
    delta = -lr * step
    return delta, RMSpropState(state.count + 1, square_avg, buf, grad_avg)


RMSPROP = Rule(
    name="rmsprop",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-2, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("alpha", 0.99, 0.0, 1.0, doc="decay of the squared-gradient average"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty added to the gradient"),
        Hyper("momentum", 0.0, 0.0, 1.0, doc="momentum of the scaled step"),
        Hyper("centered", False, kind="bool", doc="subtract the squared mean gradient"),
    ),
    state_numel=n_slots(lambda hp: 1 + is_on(hp["momentum"]) + bool(hp["centered"])),
    summary="Gradient over a running RMS of gradients, optionally centered, with momentum.",
    paper="Hinton, Neural Networks for Machine Learning, lecture 6e, 2012; "
    "Graves, Generating Sequences With Recurrent Neural Networks, arXiv:1308.0850, 2013",
)
