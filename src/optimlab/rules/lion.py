"""Lion: the sign of an interpolated momentum, found by program search."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from . import _axes
from ._axes import check_batched
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class LionState(NamedTuple):
    count: Any  # steps taken
    m: Any  # momentum (EMA of gradients with rate beta2)


def init(param: Any, *, batch_ndim: int = 0) -> LionState:
    """Zero state (``batch_ndim`` is accepted for the ``cautious`` option's batched calls;
    the state does not depend on it)."""
    xp = namespace(param)
    return LionState(0, xp.zeros_like(param))


def update(
    grad: Any,
    state: LionState,
    param: Any,
    *,
    lr: Any = 1e-4,
    beta1: Any = 0.9,
    beta2: Any = 0.99,
    weight_decay: Any = 0.0,
    cautious: bool = False,
    batch_ndim: int = 0,
) -> tuple[Any, LionState]:
    r"""One Lion step; returns ``(delta, new_state)``.

    .. math::
        c_t &= \beta_1 m_{t-1} + (1-\beta_1) g \\
        \Delta &= -\eta\,(\mathrm{sign}(c_t) + \lambda\theta) \\
        m_t &= \beta_2 m_{t-1} + (1-\beta_2) g

    Every coordinate moves by exactly ``lr`` (plus the decoupled decay), so Lion wants
    a learning rate 3-10x smaller than AdamW's and a weight decay 3-10x larger. A
    coordinate with ``c_t == 0`` does not move (``sign(0) = 0``).

    ``cautious=True`` (Liang et al. 2024) keeps only the coordinates where the sign agrees
    with the gradient, rescaled by ``n / (sum [sign(c_t) g > 0] + 1)`` over the parameter's
    own ``n`` elements (its leading ``batch_ndim`` axes are settings); the decay is not
    masked.

    >>> import numpy as np
    >>> delta, state = update(np.array([0.5, -2.0]), init(np.zeros(2)), np.zeros(2), lr=0.1)
    >>> delta.tolist()
    [-0.1, 0.1]

    Chen et al., Symbolic Discovery of Optimization Algorithms, NeurIPS 2023.
    """
    xp = namespace(grad)
    c = beta1 * state.m + (1 - beta1) * grad
    direction = xp.sign(c)
    if cautious:
        hp = {"lr": lr, "beta1": beta1, "beta2": beta2, "weight_decay": weight_decay}
        check_batched("lion", "cautious", batch_ndim, hp)
        direction = _axes.cautious(xp, direction, grad, batch_ndim)
    if is_on(weight_decay):
        direction = direction + weight_decay * param
    delta = -lr * direction
    m = beta2 * state.m + (1 - beta2) * grad
    return delta, LionState(state.count + 1, m)


LION = Rule(
    name="lion",
    init=init,
    update=update,
    hyperparams=(
        Hyper(
            "lr",
            1e-4,
            low=0.0,
            limit=LR_MAX,
            doc="learning rate (the size of every coordinate's step)",
        ),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="interpolation for the update sign"),
        Hyper("beta2", 0.99, 0.0, 1.0, high_open=True, doc="decay of the momentum"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="decoupled decay theta (1 - lr wd)"),
        Hyper("cautious", False, kind="bool", doc="mask steps against the gradient (C-Lion)"),
    ),
    state_numel=n_slots(lambda hp: 1),
    summary="Sign of an interpolated momentum: uniform-size steps, one state slot.",
    paper="Chen et al., Symbolic Discovery of Optimization Algorithms, NeurIPS 2023; "
    "Liang et al., Cautious Optimizers: Improving Training with One Line of Code, 2024",
    reducing_options=("cautious",),
)
