"""Stochastic gradient descent with optional (heavy-ball, Nesterov or EMA) momentum."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..core.arrays import namespace
from ._axes import is_array
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class SGDState(NamedTuple):
    count: Any  # steps taken
    momentum_buffer: Any = None  # None until momentum is first used


def init(param: Any) -> SGDState:
    return SGDState(0)


def update(
    grad: Any,
    state: SGDState,
    param: Any,
    *,
    lr: Any = 1e-3,
    momentum: Any = 0.0,
    dampening: Any = 0.0,
    weight_decay: Any = 0.0,
    nesterov: bool = False,
    ema: bool = False,
) -> tuple[Any, SGDState]:
    r"""One SGD step; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow g + \lambda\theta \\
        b_t &= \mu b_{t-1} + (1-\tau) g \quad (b_1 = g) \\
        d &= g + \mu b_t \text{ (Nesterov) else } b_t \\
        \Delta &= -\eta d

    This is torch.optim.SGD's convention (``tau`` is ``dampening``; the buffer starts at
    the first gradient). ``ema=True`` is the exponential-moving-average form
    ``b_t = mu b_{t-1} + (1-mu) g`` with ``b_0 = 0`` (Ng's "beta" momentum); it equals
    the torch form with a learning rate scaled by ``1-mu`` after the first steps.

    >>> import numpy as np
    >>> delta, _ = update(np.array([2.0]), init(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> float(delta[0])
    -0.2
    """
    if is_on(weight_decay):
        grad = grad + weight_decay * param
    buf = state.momentum_buffer
    if is_on(momentum) or buf is not None:
        if ema:
            buf = (1 - momentum) * grad if buf is None else momentum * buf + (1 - momentum) * grad
        else:
            # `* 1.0`: a new array, so the buffer never aliases the caller's gradient;
            # `(1 - dampening) *` only when on: a multiply by 1.0 is exact but a full pass
            damped = (1 - dampening) * grad if is_on(dampening) else grad
            buf = grad * 1.0 if buf is None else momentum * buf + damped
        direction = grad + momentum * buf if nesterov else buf
        if is_array(momentum):
            # settings with momentum 0 in a batch step on the plain gradient, as alone
            # (the buffer would otherwise apply their dampening)
            direction = namespace(grad).where(momentum != 0, direction, grad)
    else:
        direction = grad
    return -lr * direction, SGDState(state.count + 1, buf)


def _check_nesterov(hp: Mapping[str, Any]) -> None:
    if hp["nesterov"] and (not is_on(hp["momentum"]) or is_on(hp["dampening"])):
        raise ValueError(
            "nesterov requires momentum > 0 and dampening == 0, "
            f"got momentum={hp['momentum']!r}, dampening={hp['dampening']!r}"
        )


def _check_ema(hp: Mapping[str, Any]) -> None:
    # The EMA form weighs the gradient by 1 - momentum; a dampening would be silently unused.
    if hp["ema"] and is_on(hp["dampening"]):
        raise ValueError(f"ema momentum takes no dampening, got dampening={hp['dampening']!r}")


SGD = Rule(
    name="sgd",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("momentum", 0.0, 0.0, 1.0, doc="momentum factor mu"),
        Hyper("dampening", 0.0, 0.0, 1.0, doc="dampening tau of the gradient in the buffer"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="L2 penalty added to the gradient"),
        Hyper("nesterov", False, kind="bool", doc="Nesterov's look-ahead momentum"),
        Hyper("ema", False, kind="bool", doc="EMA momentum b = mu b + (1-mu) g"),
    ),
    state_numel=n_slots(lambda hp: 1 if is_on(hp["momentum"]) else 0),
    summary="Gradient descent, with optional heavy-ball or Nesterov momentum.",
    paper="Robbins & Monro 1951; Polyak 1964; Sutskever et al., ICML 2013 (Nesterov form)",
    checks=(_check_nesterov, _check_ema),
)
