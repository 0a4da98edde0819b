"""Adafactor: a factored (row x column) second moment and a relative step size."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on


class AdafactorState(NamedTuple):
    count: Any  # steps taken
    row_var: Any = None  # factored (own ndim >= 2): mean of g^2 over the last axis, (..., m, 1)
    col_var: Any = None  # factored: mean of g^2 over the second-to-last axis, (..., 1, n)
    variance: Any = None  # unfactored (own ndim <= 1): EMA of g^2, the parameter's shape


def _factored(param: Any, batch_ndim: int) -> bool:
    return param.ndim - batch_ndim >= 2


def init(param: Any, *, batch_ndim: int = 0) -> AdafactorState:
    """Zero state; the leading ``batch_ndim`` axes of ``param`` are settings, not its own."""
    xp = namespace(param)
    if _factored(param, batch_ndim):
        return AdafactorState(0, xp.zeros_like(param[..., :1]), xp.zeros_like(param[..., :1, :]))
    return AdafactorState(0, variance=xp.zeros_like(param))


def _mean(xp: Any, x: Any, axes: tuple[int, ...]) -> Any:
    """Mean over ``axes`` (kept); 0 for an empty parameter instead of NaN and a warning."""
    n = 1
    for a in axes:  # a loop, not math.prod over a generator: torch.compile traces it
        n *= x.shape[a]
    return xp.sum(x, axis=axes, keepdims=True) / max(n, 1)


def _rms(xp: Any, x: Any, batch_ndim: int) -> Any:
    """Root mean square over the parameter's own axes, one value per setting."""
    axes = tuple(range(batch_ndim, x.ndim))
    if not axes:  # a 0-d parameter: its RMS is its absolute value
        return xp.abs(x)
    return xp.sqrt(_mean(xp, x * x, axes))


def per_step(state: AdafactorState, *, lr: Any, beta2_decay: Any, **_: Any) -> dict[str, Any]:
    r"""This step's scalars at ``t = count + 1``: the EMA ``weight = t^c`` (``1 - beta2_t``)
    and the relative step size ``rho = min(lr, 1/sqrt(t))``."""
    t = state.count + 1
    rho = namespace(lr).minimum(lr, 1 / t**0.5) if _is_array(lr) else min(lr, 1 / t**0.5)
    return {"weight": t**beta2_decay, "rho": rho}


def update(
    grad: Any,
    state: AdafactorState,
    param: Any,
    *,
    lr: Any = 1e-2,
    beta2_decay: Any = -0.8,
    eps1: Any = None,
    eps2: Any = 1e-3,
    d: Any = 1.0,
    weight_decay: Any = 0.0,
    batch_ndim: int = 0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, AdafactorState]:
    r"""One Adafactor step; returns ``(delta, new_state)``.

    .. math::
        \hat\beta_t &= t^{c} \quad(c = \text{beta2\_decay}), \quad
            \rho_t = \min(\eta, 1/\sqrt t), \quad
            \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta))\, \rho_t \\
        R_t &= (1-\hat\beta_t) R_{t-1} + \hat\beta_t\, \mathrm{mean}_{-1}(g^2), \quad
            C_t = (1-\hat\beta_t) C_{t-1} + \hat\beta_t\, \mathrm{mean}_{-2}(g^2) \\
        \hat V_t &= R_t C_t / \max(\mathrm{mean}_{-2}(R_t), \epsilon_1)
            \quad\text{(own ndim} \ge 2\text{; else } V_t = (1-\hat\beta_t)V_{t-1}
            + \hat\beta_t g^2) \\
        U_t &= g / \sqrt{\max(\hat V_t, \epsilon_1^2)}, \quad
            \Delta = -\frac{\alpha_t}{\max(1, \mathrm{RMS}(U_t)/d)} U_t - \eta\lambda\theta

    This is torch.optim.Adafactor: ``alpha_t`` uses the parameter before weight decay, the
    decay is decoupled (``theta (1 - lr wd)``), there is no first moment, and the rows and
    columns are the last two axes (leading axes of a 3-D+ parameter are batch-like).
    ``eps1=None`` means the machine epsilon of the parameter's dtype; ``eps1`` and
    ``eps1**2`` are at least the dtype's smallest positive number, so an ``eps1`` that
    would round to 0 (where torch gives NaN for a zero gradient) still gives finite steps.

    The leading ``batch_ndim`` axes hold settings: every reduction (row/column means, the
    RMS of the parameter and of the update) is taken per setting, and a ``(K, n)``
    parameter with ``batch_ndim=1`` is K vectors. ``scalars`` are this step's ``per_step``
    values (computed here when not given).

    >>> import numpy as np
    >>> p = np.ones((2, 3))
    >>> delta, state = update(np.full((2, 3), 0.5), init(p), p, lr=0.1)
    >>> round(float(delta[0, 0]), 6), state.row_var.shape, state.col_var.shape
    (-0.1, (2, 1), (1, 3))

    Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost,
    ICML 2018.
    """
    xp = namespace(grad)
    if eps1 is None:
        eps1 = xp.finfo_eps(param)
    if scalars is None:
        scalars = per_step(state, lr=lr, beta2_decay=beta2_decay)
    # eps1 and eps1**2 are floors of divisors: where they would round to 0 in the
    # parameter's dtype (eps1 < ~1e-162 in float64, < ~1e-23 in float32), a zero gradient
    # would give 0/0 = NaN. Floor them at the dtype's smallest positive number (tiny * eps,
    # a subnormal), which changes nothing wherever they are representable.
    smallest = xp.finfo_tiny(param) * xp.finfo_eps(param)
    eps1_sq = _at_least(xp, eps1 * eps1, smallest)
    eps1 = _at_least(xp, eps1, smallest)
    count = state.count + 1
    weight, rho = scalars["weight"], scalars["rho"]  # weight: 1 - beta2_t
    rms_param = _rms(xp, param, batch_ndim)
    alpha = xp.maximum(rms_param, eps2) * rho
    g2 = grad * grad
    if _factored(grad, batch_ndim):
        last, second = (g2.ndim - 1,), (g2.ndim - 2,)
        row_var = (1 - weight) * state.row_var + weight * _mean(xp, g2, last)
        col_var = (1 - weight) * state.col_var + weight * _mean(xp, g2, second)
        row_scale = xp.maximum(_mean(xp, row_var, second), eps1)
        var_estimate = row_var * col_var / row_scale
        new_state = AdafactorState(count, row_var, col_var)
    else:
        var_estimate = (1 - weight) * state.variance + weight * g2
        new_state = AdafactorState(count, variance=var_estimate)
    u = grad / xp.sqrt(xp.maximum(var_estimate, eps1_sq))
    clip = xp.maximum(_rms(xp, u, batch_ndim) / d, 1.0)
    delta = -(alpha / clip) * u
    if is_on(weight_decay):
        delta = delta - lr * weight_decay * param
    return delta, new_state


def _is_array(x: Any) -> bool:
    # a number first: torch.compile traces a float hyperparameter, not getattr on it
    return not isinstance(x, int | float) and getattr(x, "ndim", 0) > 0


def _at_least(xp: Any, x: Any, low: float) -> Any:
    """``max(x, low)`` for a number or an array of settings."""
    return xp.maximum(x, low) if _is_array(x) else max(x, low)


def state_numel(shape: tuple[int, ...], hp: Mapping[str, Any]) -> int:
    """Rows plus columns for each matrix of a 2-D+ parameter; the whole size for a vector."""
    if len(shape) >= 2:
        batch = math.prod(shape[:-2])
        return batch * (shape[-2] + shape[-1])
    return math.prod(shape)


ADAFACTOR = Rule(
    name="adafactor",
    init=init,
    update=update,
    hyperparams=(
        Hyper(
            "lr", 1e-2, low=0.0, limit=LR_MAX, doc="caps the relative step size min(lr, 1/sqrt(t))"
        ),
        Hyper("beta2_decay", -0.8, high=0.0, doc="c in 1 - beta2_t = t^c"),
        Hyper(
            "eps1",
            None,
            0.0,
            low_open=True,
            optional=True,
            doc="floor of the second moment (squared); None: dtype's machine epsilon",
        ),
        Hyper("eps2", 1e-3, 0.0, low_open=True, doc="floor of the parameter RMS in the step"),
        Hyper("d", 1.0, low=1.0, doc="clipping threshold of the update RMS"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="decoupled decay theta (1 - lr wd)"),
    ),
    state_numel=state_numel,
    summary="Factored second moment (sublinear memory) with a relative step size.",
    paper="Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost, "
    "ICML 2018",
    elementwise=False,
    per_step=per_step,
)
