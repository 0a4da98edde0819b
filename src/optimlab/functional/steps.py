r"""One optimizer step as a plain function: NumPy in, NumPy out, inputs never modified.

Each function is a thin adapter over a registered rule (``optimlab.rules``): the update
equations in the docstrings are what the rule computes, nothing is re-implemented here.
``params`` and ``grads`` may be one array, a Python number, or a list/tuple/dict of arrays;
state arguments (``velocity``, ``cache``, ``m``, ``v``) have the same layout as ``params``
(``None`` means "start": zeros). Conventions follow torch.optim: ``epsilon`` is added
outside the square root, momentum is ``v = beta v + g``.

>>> import numpy as np
>>> sgd_step(np.array([1.0, -2.0]), np.array([0.5, 0.5]), lr=0.1)
array([ 0.95, -2.05])
"""

from __future__ import annotations

from typing import Any

from ..core import checks
from ..rules.registry import get_rule
from . import bind_rule

# teaching name -> the rule's name, for hyperparameters and state slots alike
_MOMENTUM = {"beta": "momentum", "velocity": "momentum_buffer"}
_ADAGRAD = {"epsilon": "eps", "cache": "sum"}
_RMSPROP = {"beta": "alpha", "epsilon": "eps", "cache": "square_avg"}
_ADAM = {"epsilon": "eps"}


def gradient_descent_step(params: Any, grads: Any, lr: float) -> Any:
    r"""Plain gradient descent: :math:`\theta \leftarrow \theta - \eta\, g`.

    The same update as :func:`sgd_step`; the name says the gradient is the full one.

    >>> gradient_descent_step(3.0, 6.0, lr=0.5)  # f = x^2 at x = 3: g = 6
    0.0
    """
    return sgd_step(params, grads, lr)


def sgd_step(params: Any, grads: Any, lr: float) -> Any:
    r"""Stochastic gradient descent: :math:`\theta \leftarrow \theta - \eta\, g`.

    ``g`` is a (mini-batch) gradient; ``lr`` (:math:`\eta`) must be >= 0.
    """
    hp = bind_rule.hyperparams(get_rule("sgd"), {}, {"lr": lr})
    new_params, _, _ = bind_rule.apply("sgd", params, grads, {}, hp)
    return new_params


def momentum_step(
    params: Any, grads: Any, velocity: Any, lr: float, beta: float, *, ema: bool = False
) -> tuple[Any, Any]:
    r"""Heavy-ball momentum; returns ``(params, velocity)``.

    .. math::
        v &\leftarrow \beta v + g \qquad (\text{ema=True: } v \leftarrow \beta v + (1-\beta) g) \\
        \theta &\leftarrow \theta - \eta\, v

    The default is torch.optim.SGD's form; ``ema=True`` is the exponential moving average
    (Ng's course), which equals the default with ``lr`` scaled by ``1 - beta``. Start with
    ``velocity`` = zeros (or ``None``).

    >>> momentum_step(1.0, 1.0, 0.5, lr=0.1, beta=0.9)  # v = 0.9*0.5 + 1 = 1.45
    (0.855, 1.45)
    """
    hp = bind_rule.hyperparams(get_rule("sgd"), _MOMENTUM, {"lr": lr, "beta": beta, "ema": ema})
    new_params, slots, _ = bind_rule.apply(
        "sgd", params, grads, {"velocity": velocity}, hp, names=_MOMENTUM
    )
    return new_params, slots["velocity"]


def nesterov_step(
    params: Any, grads: Any, velocity: Any, lr: float, beta: float
) -> tuple[Any, Any]:
    r"""Nesterov momentum (torch.optim.SGD's ``nesterov=True``); returns ``(params, velocity)``.

    .. math::
        v &\leftarrow \beta v + g \\
        \theta &\leftarrow \theta - \eta\,(g + \beta v)

    The look-ahead is folded into the gradient (Sutskever et al. 2013), so ``grads`` are
    taken at the current ``params``. ``beta`` must be in (0, 1].
    """
    hp = bind_rule.hyperparams(
        get_rule("sgd"), _MOMENTUM, {"lr": lr, "beta": beta, "nesterov": True}
    )
    new_params, slots, _ = bind_rule.apply(
        "sgd", params, grads, {"velocity": velocity}, hp, names=_MOMENTUM
    )
    return new_params, slots["velocity"]


def adagrad_step(
    params: Any, grads: Any, cache: Any, lr: float, epsilon: float = 1e-10
) -> tuple[Any, Any]:
    r"""Adagrad; returns ``(params, cache)``.

    .. math::
        c &\leftarrow c + g^2 \\
        \theta &\leftarrow \theta - \eta\, g / (\sqrt{c} + \epsilon)

    ``cache`` is the running sum of squared gradients; start it at zeros (or ``None``).
    """
    hp = bind_rule.hyperparams(get_rule("adagrad"), _ADAGRAD, {"lr": lr, "epsilon": epsilon})
    new_params, slots, _ = bind_rule.apply(
        "adagrad", params, grads, {"cache": cache}, hp, names=_ADAGRAD
    )
    return new_params, slots["cache"]


def rmsprop_step(
    params: Any, grads: Any, cache: Any, lr: float, beta: float, epsilon: float = 1e-8
) -> tuple[Any, Any]:
    r"""RMSProp; returns ``(params, cache)``.

    .. math::
        c &\leftarrow \beta c + (1-\beta) g^2 \\
        \theta &\leftarrow \theta - \eta\, g / (\sqrt{c} + \epsilon)

    ``beta`` is torch.optim.RMSprop's ``alpha`` (commonly 0.9 or 0.99); ``cache`` starts
    at zeros (or ``None``).
    """
    hp = bind_rule.hyperparams(
        get_rule("rmsprop"), _RMSPROP, {"lr": lr, "beta": beta, "epsilon": epsilon}
    )
    new_params, slots, _ = bind_rule.apply(
        "rmsprop", params, grads, {"cache": cache}, hp, names=_RMSPROP
    )
    return new_params, slots["cache"]


def adam_step(
    params: Any,
    grads: Any,
    m: Any,
    v: Any,
    lr: float,
    beta1: float,
    beta2: float,
    t: int,
    epsilon: float = 1e-8,
    *,
    bias_correction: bool = True,
) -> tuple[Any, Any, Any]:
    r"""Adam; returns ``(params, m, v)``. ``t`` is the 1-based number of this step.

    .. math::
        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        \hat m &= m / (1-\beta_1^t), \qquad \hat v = v / (1-\beta_2^t) \\
        \theta &\leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)

    ``bias_correction=False`` uses ``m`` and ``v`` as they are. Both start at zeros and are
    biased toward zero, ``v`` far more than ``m``, so the early uncorrected steps are
    *larger*: the first is ``lr (1-beta1)/sqrt(1-beta2)``, 3.16 ``lr`` for the defaults
    (see ``examples/adam_bias_correction.py``). Start ``m`` and ``v`` at zeros.

    >>> p, m, v = adam_step(1.0, 0.2, 0.0, 0.0, lr=0.1, beta1=0.9, beta2=0.999, t=1)
    >>> round(p, 6)  # the first bias-corrected step has size lr, whatever the gradient
    0.9
    """
    hp = bind_rule.hyperparams(
        get_rule("adam"),
        _ADAM,
        {
            "lr": lr,
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "bias_correction": bias_correction,
        },
    )
    count = bind_rule.check_step(t) - 1
    new_params, slots, _ = bind_rule.apply(
        "adam", params, grads, {"m": m, "v": v}, hp, names=_ADAM, count=count
    )
    return new_params, slots["m"], slots["v"]


def adamw_step(
    params: Any,
    grads: Any,
    m: Any,
    v: Any,
    lr: float,
    beta1: float,
    beta2: float,
    t: int,
    weight_decay: float,
    epsilon: float = 1e-8,
) -> tuple[Any, Any, Any]:
    r"""AdamW (decoupled weight decay); returns ``(params, m, v)``.

    .. math::
        \theta &\leftarrow \theta - \eta\lambda\theta \\
        \theta &\leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)

    with :math:`\hat m, \hat v` as in :func:`adam_step` (computed from the raw gradient,
    which does not include the decay), as torch.optim.AdamW.
    """
    hp = bind_rule.hyperparams(
        get_rule("adamw"),
        _ADAM,
        {
            "lr": lr,
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "weight_decay": weight_decay,
        },
    )
    count = bind_rule.check_step(t) - 1
    new_params, slots, _ = bind_rule.apply(
        "adamw", params, grads, {"m": m, "v": v}, hp, names=_ADAM, count=count
    )
    return new_params, slots["m"], slots["v"]


def nadam_step(
    params: Any,
    grads: Any,
    m: Any,
    v: Any,
    mu_product: float,
    lr: float,
    beta1: float,
    beta2: float,
    t: int,
    epsilon: float = 1e-8,
    *,
    momentum_decay: float = 4e-3,
) -> tuple[Any, Any, Any, float]:
    r"""NAdam (torch.optim.NAdam's schedule); returns ``(params, m, v, mu_product)``.

    .. math::
        \mu_t &= \beta_1 (1 - \tfrac12\, 0.96^{t\psi}), \quad
        \mu_{t+1} = \beta_1 (1 - \tfrac12\, 0.96^{(t+1)\psi}), \quad
        P_t = P_{t-1}\,\mu_t \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        \theta &\leftarrow \theta - \eta \Big(\frac{1-\mu_t}{1-P_t}\, g
                 + \frac{\mu_{t+1}}{1-P_t\mu_{t+1}}\, m\Big)
                 \Big/ \Big(\sqrt{v / (1-\beta_2^t)} + \epsilon\Big)

    ``psi`` is ``momentum_decay``. ``mu_product`` (:math:`P`) is the product of every
    :math:`\mu` so far: pass ``1.0`` at ``t = 1`` and then the value returned by the
    previous step. It is one number shared by all parameters.
    """
    hp = bind_rule.hyperparams(
        get_rule("nadam"),
        _ADAM,
        {
            "lr": lr,
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "momentum_decay": momentum_decay,
        },
    )
    count = bind_rule.check_step(t) - 1
    # a Python float (never a NumPy scalar, which would turn float32 params into float64)
    mu_product = checks.real("mu_product", mu_product, 0.0, 1.0, low_open=True)
    new_params, slots, shared = bind_rule.apply(
        "nadam",
        params,
        grads,
        {"m": m, "v": v},
        hp,
        names=_ADAM,
        count=count,
        shared={"mu_product": mu_product},
    )
    return new_params, slots["m"], slots["v"], shared["mu_product"]
