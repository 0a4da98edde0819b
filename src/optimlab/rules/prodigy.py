"""Prodigy: Adam whose step size ``d`` is estimated on the fly from the distance travelled."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from ._axes import is_array, own_sum
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class ProdigyState(NamedTuple):
    count: Any  # steps taken
    d: Any  # the step-size estimate (None before the first step: d0)
    d_max: Any  # the largest estimate d_hat so far (None before the first step: d0)
    d_numerator: Any  # the decayed sum of (d/d0) dlr <g, x0 - x> (None before: 0)
    s: Any  # the decayed sum of (d/d0) dlr g
    p0: Any  # the starting point x0
    exp_avg: Any  # first moment, scaled by d
    exp_avg_sq: Any  # second moment, scaled by d^2


def init(param: Any, *, batch_ndim: int = 0) -> ProdigyState:
    """Zero moments and sums, ``x0`` = the parameter; ``d`` starts at ``d0`` (an
    update-time hyperparameter). The leading ``batch_ndim`` axes are settings."""
    xp = namespace(param)
    zeros = xp.zeros_like
    return ProdigyState(
        0, None, None, None, zeros(param), xp.copy(param), zeros(param), zeros(param)
    )


def _total(xp: Any, x: Any, batch_ndim: int) -> Any:
    """The sum over the parameter's own axes: one number per setting, shaped to broadcast
    (a 0-d array when there are no settings)."""
    total = own_sum(xp, x, batch_ndim)
    return total.reshape(()) if batch_ndim == 0 else total


def _max(xp: Any, a: Any, b: Any) -> Any:
    """The larger, an array (0-d included) whenever either is one: the state's scalars
    keep one type from the first step on."""
    if not (hasattr(a, "ndim") or hasattr(b, "ndim")):
        return max(a, b)
    return xp.where(a >= b, a, b)


def _min(xp: Any, a: Any, b: Any) -> Any:
    if not (hasattr(a, "ndim") or hasattr(b, "ndim")):
        return min(a, b)
    return xp.where(a <= b, a, b)


def _pick(xp: Any, cond: Any, a: Any, b: Any) -> Any:
    """``a`` where ``cond`` holds, else ``b`` (per setting when ``cond`` is an array)."""
    if is_array(cond):
        return xp.where(cond, a, b)
    return a if cond else b


def _unless_frozen(xp: Any, moving: Any, new: tuple, old: tuple) -> tuple:
    """The new values where ``lr > 0``, the old ones where ``lr = 0`` (prodigyopt skips
    its statistics then)."""
    return tuple(_pick(xp, moving, a, b) for a, b in zip(new, old, strict=True))


def _estimate(
    xp: Any, d: Any, d0: Any, d_max: Any, d_hat: Any, growth_rate: Any
) -> tuple[Any, Any]:
    r"""The next ``d`` and ``d_max``: :math:`d \leftarrow \max(d, \hat d)` while ``d`` is
    still ``d0``, :math:`d_{\max} = \max(d_{\max}, \hat d)`,
    :math:`d \leftarrow \min(d_{\max}, d \cdot \text{growth\_rate})`."""
    first = d == d0
    d = (
        xp.where(first, _max(xp, d, d_hat), d)
        if is_array(first)
        else (_max(xp, d, d_hat) if first else d)
    )
    d_max = _max(xp, d_max, d_hat)
    return (d_max if growth_rate is None else _min(xp, d_max, d * growth_rate)), d_max


def update(
    grad: Any,
    state: ProdigyState,
    param: Any,
    *,
    lr: Any = 1.0,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    beta3: Any = None,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    decouple: bool = True,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    d0: Any = 1e-6,
    d_coef: Any = 1.0,
    growth_rate: Any = None,
    batch_ndim: int = 0,
) -> tuple[Any, ProdigyState]:
    r"""One Prodigy step (Adam form); returns ``(delta, new_state)``.

    With ``d`` the current estimate, ``k`` the steps taken, ``g`` the gradient (plus
    ``lambda x`` when ``decouple=False``) and ``beta3 = sqrt(beta2)`` unless given:

    .. math::
        \eta_k &= d\,\gamma\, \frac{\sqrt{1-\beta_2^{k+1}}}{1-\beta_1^{k+1}}
            \ \text{(the fraction only with use\_bias\_correction)} \\
        r &= \beta_3 r + \tfrac{d}{d_0}\, \eta_k \langle g, x_0 - x\rangle, \qquad
        s = \beta_3 s + \tfrac{d}{d_0}\, (d \text{ if safeguard\_warmup else } \eta_k)\, g \\
        m &= \beta_1 m + d (1-\beta_1) g, \qquad v = \beta_2 v + d^2 (1-\beta_2) g^2 \\
        \hat d &= d_{coef}\, r / \lVert s\rVert_1, \quad
        d_{\max} = \max(d_{\max}, \hat d), \quad
        d' = \min\big(d_{\max},\ \text{growth\_rate}\cdot(\max(d, \hat d)
            \text{ while } d = d_0 \text{, else } d)\big) \\
        \Delta &= -\eta_k \lambda x\ \text{(decouple)} - \eta_k\, m / (\sqrt{v} + d' \epsilon)

    Sums and norms run over the whole parameter, so ``d`` is one number per parameter
    handed to the rule. The torch classes and the lab hand it a whole param group as one
    flat vector (``Rule.group_wide``), which is Prodigy as published: one ``d`` for the
    group (the ``prodigyopt`` package keeps one ``d`` for the whole optimizer: the same
    with one group). ``growth_rate=None`` is no limit (prodigyopt's ``inf``). Where
    ``||s||_1 = 0`` (every gradient so far zero) ``d`` is kept and the step is taken
    (prodigyopt skips the whole step there); with ``lr = 0`` ``d``, ``r``, ``s`` and the
    moments are kept (as prodigyopt). With ``beta1 = 0`` the step is along
    :math:`d' g` instead of ``m`` (prodigyopt keeps no first moment then and uses the
    new estimate). prodigyopt's ``slice_p`` (statistics on every p-th element) is not
    offered: the statistics use every element.

    >>> import numpy as np
    >>> p = np.ones(3)
    >>> delta, state = update(np.ones(3), init(p), p)  # d = d0 while x has not moved
    >>> float(state.d), np.round(delta, 7).tolist()
    (1e-06, [-1e-06, -1e-06, -1e-06])

    Mishchenko & Defazio, Prodigy: An Expeditiously Adaptive Parameter-Free Learner,
    ICML 2024 (arXiv 2306.06101), Algorithm 4 as in the authors' prodigyopt 1.1.
    """
    xp = namespace(grad)
    k = state.count
    d = d0 if state.d is None else state.d
    d_max = d0 if state.d_max is None else state.d_max
    beta3 = beta2**0.5 if beta3 is None else beta3
    bias = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1)) if use_bias_correction else 1.0
    dlr = d * lr * bias
    if is_on(weight_decay) and not decouple:
        grad = grad + weight_decay * param
    scale = d / d0
    old_numerator = 0.0 if state.d_numerator is None else state.d_numerator
    numerator = beta3 * old_numerator + scale * dlr * _total(
        xp, grad * (state.p0 - param), batch_ndim
    )
    m = beta1 * state.exp_avg + d * (1 - beta1) * grad
    v = beta2 * state.exp_avg_sq + d * d * (1 - beta2) * grad * grad
    s = beta3 * state.s + scale * (d if safeguard_warmup else dlr) * grad
    denom = _total(xp, xp.abs(s), batch_ndim)
    seen = denom > 0
    d_hat = d_coef * numerator / xp.where(seen, denom, 1.0)
    d_hat = xp.where(seen, d_hat, d)
    new_d, new_d_max = _estimate(xp, d, d0, d_max, d_hat, growth_rate)
    new_d, new_d_max, numerator, m, v, s = _unless_frozen(
        xp,
        lr > 0,
        (new_d, new_d_max, numerator, m, v, s),
        (d, d_max, old_numerator, state.exp_avg, state.exp_avg_sq, state.s),
    )
    # prodigyopt steps along d' g (the new estimate) when it keeps no first moment
    step = _pick(xp, beta1 == 0, new_d * grad, m)
    delta = -dlr * step / (xp.sqrt(v) + new_d * eps)
    if is_on(weight_decay) and decouple:
        delta = delta - (weight_decay * dlr) * param
    return delta, ProdigyState(k + 1, new_d, new_d_max, numerator, s, state.p0, m, v)


PRODIGY = Rule(
    name="prodigy",
    init=init,
    update=update,
    hyperparams=(
        Hyper(
            "lr",
            1.0,
            low=0.0,
            limit=LR_MAX,
            doc="multiplies the estimated step size d (leave at 1)",
        ),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="decay of the first moment"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper(
            "beta3",
            None,
            0.0,
            1.0,
            high_open=True,
            optional=True,
            doc="decay of the d statistics (None: sqrt(beta2))",
        ),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator (times d)"),
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc="weight decay (decoupled or L2)"),
        Hyper("decouple", True, kind="bool", doc="AdamW-style decay (else L2 in the gradient)"),
        Hyper("use_bias_correction", False, kind="bool", doc="Adam's bias correction in dlr"),
        Hyper("safeguard_warmup", False, kind="bool", doc="leave lr out of the s sum"),
        Hyper("d0", 1e-6, 0.0, low_open=True, doc="initial estimate of d"),
        Hyper("d_coef", 1.0, 0.0, low_open=True, doc="multiplies every estimate d_hat"),
        Hyper(
            "growth_rate",
            None,
            1.0,
            optional=True,
            doc="most d may grow per step (None: no limit)",
        ),
    ),
    state_numel=n_slots(lambda hp: 4),
    summary="Adam with its step size d estimated from the distance travelled (parameter-free).",
    paper="Mishchenko & Defazio, Prodigy: An Expeditiously Adaptive Parameter-Free Learner, "
    "ICML 2024",
    elementwise=False,
    group_wide=True,
)
