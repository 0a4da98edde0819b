"""Schedule-free SGD and AdamW: interpolate between a fast iterate and its running average.

The optimizer steps ``y`` (the parameter it holds while training) and keeps ``z`` (the
base sequence, stepped by SGD or an Adam-scaled gradient) and ``x`` (a weighted average
of the z's, the point to evaluate at: ``Rule.eval_point``). No learning-rate schedule is
needed: the averaging plays its role. Both rules share the averaging weights below.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.arrays import namespace
from ._axes import is_array
from .base import LR_MAX, Hyper, Rule, is_on, n_slots


class ScheduleFreeSGDState(NamedTuple):
    count: Any  # steps taken
    lr_max: Any  # largest (warmed-up) learning rate so far; -1 before the first step
    weight_sum: Any  # sum of the averaging weights so far
    z: Any  # the base (SGD) sequence
    x: Any  # the weighted average of z: where to evaluate


class ScheduleFreeAdamWState(NamedTuple):
    count: Any
    lr_max: Any
    weight_sum: Any
    z: Any
    x: Any
    v: Any  # EMA of squared gradients


def init_sgd(param: Any) -> ScheduleFreeSGDState:
    xp = namespace(param)
    return ScheduleFreeSGDState(0, -1.0, 0.0, xp.copy(param), xp.copy(param))


def init_adamw(param: Any) -> ScheduleFreeAdamWState:
    xp = namespace(param)
    return ScheduleFreeAdamWState(
        0, -1.0, 0.0, xp.copy(param), xp.copy(param), xp.zeros_like(param)
    )


def averaging(
    xp: Any, state: Any, lr: Any, warmup_steps: int, r: Any, weight_lr_power: Any
) -> tuple[Any, Any, Any, Any]:
    r"""The step's learning rate, new ``lr_max`` and ``weight_sum``, and ``c_{t+1}``:

    .. math::
        \gamma_t = \eta \min(1, t / T_{warm}), \quad
        \gamma_{\max} = \max_{s \le t} \gamma_s, \quad
        w_t = t^r \gamma_{\max}^{p}, \quad
        c_{t+1} = w_t / \textstyle\sum_{s \le t} w_s \ (0 \text{ while the sum is } 0)
    """
    t = state.count + 1
    step_lr = lr * (t / warmup_steps) if t <= warmup_steps else lr
    arrays = is_array(step_lr) or is_array(state.lr_max)
    lr_max = xp.maximum(step_lr, state.lr_max) if arrays else max(step_lr, state.lr_max)
    try:
        weight = t**r * lr_max**weight_lr_power
    except OverflowError:  # Python floats raise where arrays give inf
        raise ValueError(
            f"r and weight_lr_power make the averaging weight t**r * lr_max**weight_lr_power "
            f"overflow at step t={t}, got r={r!r}, weight_lr_power={weight_lr_power!r}"
        ) from None
    weight_sum = state.weight_sum + weight
    if is_array(weight_sum):
        positive = weight_sum > 0
        c = xp.where(positive, weight, 0.0) / xp.where(positive, weight_sum, 1.0)
    else:
        c = weight / weight_sum if weight_sum > 0 else 0.0
    return step_lr, lr_max, weight_sum, c


def per_step_sgd(
    state: ScheduleFreeSGDState | ScheduleFreeAdamWState,
    *,
    lr: Any,
    warmup_steps: int = 0,
    r: Any = 0.0,
    weight_lr_power: Any = 2.0,
    **_: Any,
) -> dict[str, Any]:
    """This step's scalars: ``averaging``'s learning rate ``step_lr``, weight ``c`` and the
    new ``lr_max`` and ``weight_sum`` (the state's scalar slots)."""
    xp = namespace(lr if is_array(lr) else state.lr_max)
    step_lr, lr_max, weight_sum, c = averaging(xp, state, lr, warmup_steps, r, weight_lr_power)
    return {"step_lr": step_lr, "lr_max": lr_max, "weight_sum": weight_sum, "c": c}


def per_step_adamw(state: ScheduleFreeAdamWState, *, beta2: Any, **hp: Any) -> dict[str, Any]:
    """``per_step_sgd``'s scalars and ``bias_correction2 = 1 - beta2^t``."""
    return {**per_step_sgd(state, **hp), "bias_correction2": 1 - beta2 ** (state.count + 1)}


def _average(z: Any, x: Any, c: Any, beta: Any) -> tuple[Any, Any]:
    """``x <- x + c (z - x)`` and ``y = x + (1 - beta)(z - x)``, i.e.
    ``(1 - beta) z + beta x`` (exact when ``z == x``)."""
    x = x + c * (z - x)
    return x, x + (1 - beta) * (z - x)


def update_sgd(
    grad: Any,
    state: ScheduleFreeSGDState,
    param: Any,
    *,
    lr: Any = 1.0,
    momentum: Any = 0.9,
    weight_decay: Any = 0.0,
    warmup_steps: int = 0,
    r: Any = 0.0,
    weight_lr_power: Any = 2.0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, ScheduleFreeSGDState]:
    r"""One schedule-free SGD step at ``param = y``; returns ``(delta, new_state)``.

    .. math::
        g &\leftarrow \nabla f(y_t) + \lambda y_t \\
        z_{t+1} &= z_t - \gamma_t g \\
        x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1} z_{t+1} \\
        y_{t+1} &= (1 - \beta) z_{t+1} + \beta x_{t+1}, \qquad \Delta = y_{t+1} - y_t

    with ``beta = momentum`` and ``gamma_t``, ``c_{t+1}`` from ``averaging`` (a linear
    warmup over ``warmup_steps``; weights ``t^r gamma_max^weight_lr_power``). Evaluate
    at ``x`` (``eval_point``), not at ``y``. As the ``schedulefree`` package's
    SGDScheduleFree, whose averaging state lives per param group (here per parameter:
    the same while every parameter steps every time). ``scalars`` are this step's
    ``per_step_sgd`` values (computed here when not given).

    >>> import numpy as np
    >>> delta, state = update_sgd(np.array([1.0]), init_sgd(np.zeros(1)), np.zeros(1), lr=0.1)
    >>> delta.tolist(), state.z.tolist(), state.x.tolist()  # c_1 = 1: x jumps to z
    ([-0.1], [-0.1], [-0.1])

    Defazio et al., The Road Less Scheduled, NeurIPS 2024.
    """
    if scalars is None:
        hp = {"warmup_steps": warmup_steps, "r": r, "weight_lr_power": weight_lr_power}
        scalars = per_step_sgd(state, lr=lr, **hp)
    s = scalars
    if is_on(weight_decay):
        grad = grad + weight_decay * param
    z = state.z - s["step_lr"] * grad
    x, y = _average(z, state.x, s["c"], momentum)
    new = ScheduleFreeSGDState(state.count + 1, s["lr_max"], s["weight_sum"], z, x)
    return y - param, new


def update_adamw(
    grad: Any,
    state: ScheduleFreeAdamWState,
    param: Any,
    *,
    lr: Any = 2.5e-3,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    warmup_steps: int = 0,
    r: Any = 0.0,
    weight_lr_power: Any = 2.0,
    scalars: dict[str, Any] | None = None,
) -> tuple[Any, ScheduleFreeAdamWState]:
    r"""One schedule-free AdamW step at ``param = y``; returns ``(delta, new_state)``.

    .. math::
        v_t &= \beta_2 v_{t-1} + (1-\beta_2) g^2, \qquad
            g = \nabla f(y_t) \\
        u &= \frac{g}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon} + \lambda y_t \\
        z_{t+1} &= z_t - \gamma_t u \\
        x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1} z_{t+1} \\
        y_{t+1} &= (1 - \beta_1) z_{t+1} + \beta_1 x_{t+1}, \qquad \Delta = y_{t+1} - y_t

    ``gamma_t`` and ``c_{t+1}`` come from ``averaging``; there is no first moment (the
    interpolation with ``x`` is the momentum) and the weight decay is taken at ``y``, as
    in the ``schedulefree`` package's AdamWScheduleFree (``eps`` outside the square root,
    after bias correction). Evaluate at ``x`` (``eval_point``). ``scalars`` are this step's
    ``per_step_adamw`` values (computed here when not given).

    >>> import numpy as np
    >>> p = np.zeros(1)
    >>> delta, state = update_adamw(np.array([0.5]), init_adamw(p), p, lr=0.1)
    >>> round(float(delta[0]), 6), round(float(state.x[0]), 6)  # the first step: size lr
    (-0.1, -0.1)

    Defazio et al., The Road Less Scheduled, NeurIPS 2024.
    """
    xp = namespace(grad)
    if scalars is None:
        hp = {"warmup_steps": warmup_steps, "r": r, "weight_lr_power": weight_lr_power}
        scalars = per_step_adamw(state, lr=lr, beta2=beta2, **hp)
    s = scalars
    v = beta2 * state.v + (1 - beta2) * grad * grad
    u = grad / (xp.sqrt(v / s["bias_correction2"]) + eps)
    if is_on(weight_decay):
        u = u + weight_decay * param
    z = state.z - s["step_lr"] * u
    x, y = _average(z, state.x, s["c"], beta1)
    new = ScheduleFreeAdamWState(state.count + 1, s["lr_max"], s["weight_sum"], z, x, v)
    return y - param, new


def eval_point(param: Any, state: Any) -> Any:
    """The average ``x``: the point whose loss schedule-free methods guarantee."""
    return state.x


def _common(doc_decay: str) -> tuple[Hyper, ...]:
    return (
        Hyper("weight_decay", 0.0, low=0.0, limit=LR_MAX, doc=doc_decay),
        Hyper("warmup_steps", 0, low=0, kind="int", doc="linear warmup of lr (0: none)"),
        Hyper("r", 0.0, low=0.0, doc="polynomial weighting t^r of the average"),
        Hyper("weight_lr_power", 2.0, low=0.0, doc="averaging weights lr_max^power"),
    )


SGD_SCHEDULEFREE = Rule(
    name="sgd_schedulefree",
    init=init_sgd,
    update=update_sgd,
    hyperparams=(
        Hyper("lr", 1.0, low=0.0, limit=LR_MAX, doc="learning rate of the base sequence z"),
        Hyper("momentum", 0.9, 0.0, 1.0, high_open=True, doc="y = (1-b) z + b x"),
        *_common("L2 penalty at y, added to the gradient"),
    ),
    state_numel=n_slots(lambda hp: 2),
    summary="Schedule-free SGD: step z, average it into x, hold y between them.",
    paper="Defazio et al., The Road Less Scheduled, NeurIPS 2024",
    eval_point=eval_point,
    per_step=per_step_sgd,
)

ADAMW_SCHEDULEFREE = Rule(
    name="adamw_schedulefree",
    init=init_adamw,
    update=update_adamw,
    hyperparams=(
        Hyper("lr", 2.5e-3, low=0.0, limit=LR_MAX, doc="learning rate of the base sequence z"),
        Hyper("beta1", 0.9, 0.0, 1.0, high_open=True, doc="y = (1-b1) z + b1 x"),
        Hyper("beta2", 0.999, 0.0, 1.0, high_open=True, doc="decay of the second moment"),
        Hyper("eps", 1e-8, 0.0, low_open=True, doc="added to the denominator, outside sqrt"),
        *_common("decay at y, added to the normalised step"),
    ),
    state_numel=n_slots(lambda hp: 3),
    summary="Schedule-free AdamW: Adam-scaled steps on z, averaged into x, y between.",
    paper="Defazio et al., The Road Less Scheduled, NeurIPS 2024",
    eval_point=eval_point,
    per_step=per_step_adamw,
)
