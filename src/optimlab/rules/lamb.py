"""LAMB: Adam's step rescaled per parameter tensor by a layer-wise trust ratio."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from ._axes import own_norm
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class LambState(NamedTuple):
    count: Any  # steps taken
    m: Any  # first moment
    v: Any  # second moment


def init(param: Any, *, batch_ndim: int = 0) -> LambState:
    """Zero moments; the leading ``batch_ndim`` axes of ``param`` are settings."""
    xp = namespace(param)
    return LambState(0, xp.zeros_like(param), xp.zeros_like(param))


def per_step(state: LambState, *, beta1: Any, beta2: Any, **_: Any) -> dict[str, Any]:
    """This step's scalars: ``bias_correction1 = 1 - beta1^t`` and
    ``bias_correction2 = 1 - beta2^t`` at ``t = count + 1``."""
    t = state.count + 1
    return {"bias_correction1": 1 - beta1**t, "bias_correction2": 1 - beta2**t}


def update(
    grad: Any,
    state: LambState,
    param: Any,
    *,
    lr: Any = 1e-3,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-6,
    weight_decay: Any = 0.01,
    batch_ndim: int = 0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, LambState]:
    r"""One LAMB step; returns ``(delta, new_state)``.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2 \\
        r_t &= \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
            + \lambda\theta \\
        \Delta &= -\eta\, \frac{\|\theta\|}{\|r_t\|}\, r_t

    You et al. (2020), Algorithm 2, with the identity scaling ``phi(z) = z``; norms over
    the parameter's own elements (a whole tensor is one "layer"), and the trust ratio is
    1 where either norm is zero (a zero-initialised tensor still moves, by ``lr``-sized
    Adam steps). The decay is inside the ratio, as in the paper. A ``(K, ...)`` parameter
    with ``batch_ndim=1`` is K tensors, each with its own trust ratio. ``scalars`` are
    this step's ``per_step`` values (computed here when not given).

    >>> import numpy as np
    >>> p = np.array([3.0, 4.0])  # norm 5
    >>> delta, state = update(np.array([1.0, -1.0]), init(p), p, lr=0.1, weight_decay=0.0)
    >>> np.round(delta, 4).tolist()  # r = (1, -1) up to eps: ratio 5 / sqrt(2)
    [-0.3536, 0.3536]

    You et al., Large Batch Optimization for Deep Learning: Training BERT in 76 minutes,
    ICLR 2020.
    """
    xp = namespace(grad)
    if scalars is None:
        scalars = per_step(state, beta1=beta1, beta2=beta2)
    m = beta1 * state.m + (1 - beta1) * grad
    v = beta2 * state.v + (1 - beta2) * grad * grad
    r = (m / scalars["bias_correction1"]) / (xp.sqrt(v / scalars["bias_correction2"]) + eps)
    if is_on(weight_decay):
        r = r + weight_decay * param
    param_norm, r_norm = own_norm(xp, param, batch_ndim), own_norm(xp, r, batch_ndim)
    both = (param_norm > 0) & (r_norm > 0)
    trust = xp.where(both, param_norm, 1.0) / xp.where(both, r_norm, 1.0)
    return -lr * trust * r, LambState(state.count + 1, m, v)


LAMB = Rule(
    name="lamb",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-3, low=0.0, limit=LR_MAX, doc="learning rate"),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="decay of the first moment"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper("eps", 1e-6, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        Hyper(
            "weight_decay",
            0.01,
            low=0.0,
            limit=LR_MAX,
            doc="decoupled decay, inside the trust ratio",
        ),
    ),
    state_numel=n_slots(lambda hp: 2),
    summary="Adam steps rescaled per tensor by the trust ratio ||theta|| / ||step||.",
    paper="You et al., Large Batch Optimization for Deep Learning: Training BERT in 76 "
    "minutes, ICLR 2020",
    elementwise=False,
    per_step=per_step,
)
