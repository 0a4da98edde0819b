"""Small training loops for the teaching API: train, sweep learning rates, compare optimizers.

``compute_loss_and_grads(params) -> (loss, grads)`` is the problem. A loss list holds the
loss at the start of each epoch (the one whose gradient drives that epoch's step). A run
whose loss becomes NaN or infinite has diverged: it stops there, and the result shows it
(the loss list ends with that value; ``experiment_learning_rates`` reports it) instead of
raising.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..core import checks
from ..rules.registry import get_rule
from . import _tree
from .optimizer import numpy_optimizer
from .steps import gradient_descent_step

LossAndGrads = Callable[[Any], tuple[float, Any]]
StepFn = Callable[[Any, Any], Any]


def run(
    step: StepFn,
    params: Any,
    compute_loss_and_grads: LossAndGrads,
    epochs: int,
    name: str = "params",
) -> tuple[Any, list[float]]:
    """Apply ``step(params, grads) -> params`` for ``epochs`` epochs.

    Returns the last parameters and the loss at the start of each epoch; stops early,
    with that loss last in the list, when the loss is not finite. ``params`` (called
    ``name`` in errors) is checked before the user's function ever sees it.
    """
    epochs = checks.integer("epochs", epochs, 0)
    _tree.flatten(params, name)
    params = copy.deepcopy(params)  # a user's step may work in place: keep theirs intact
    losses: list[float] = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            loss, grads = compute_loss_and_grads(params)
            losses.append(float(loss))
            if not math.isfinite(losses[-1]):
                break
            params = step(params, grads)
    return params, losses


def train_with_gradient_descent(
    params: Any, compute_loss_and_grads: LossAndGrads, lr: float, epochs: int
) -> Any:
    r"""Run ``epochs`` steps of :math:`\theta \leftarrow \theta - \eta \nabla L(\theta)`.

    Returns the final parameters (the given ones are not modified); a diverging run stops
    at the first non-finite loss and returns the parameters it had reached.

    >>> train_with_gradient_descent(4.0, lambda x: (x * x, 2 * x), lr=0.25, epochs=3)
    0.5
    """
    checks.real("lr", lr, 0, arrays=True)
    params, _ = run(
        lambda p, g: gradient_descent_step(p, g, lr), params, compute_loss_and_grads, epochs
    )
    return params


def experiment_learning_rates(
    params: Any, compute_loss_and_grads: LossAndGrads, lrs: Iterable[float], epochs: int
) -> dict[float, float]:
    """Train with gradient descent once per learning rate, each from ``params``.

    Returns ``{lr: final_loss}``: the loss at the final parameters, or the first NaN/inf
    loss if that run diverged.

    >>> experiment_learning_rates(1.0, lambda x: (x * x, 2 * x), [0.1, 1.5], epochs=600)[1.5]
    inf
    """
    lrs = _items("lrs", lrs, "a list of learning rates")
    lr_spec = get_rule("sgd").hyper("lr")  # the range gradient_descent_step takes
    lrs = [
        dataclasses.replace(lr_spec, name=f"lrs[{i}]").check(lr, arrays=False, tensors=False)
        for i, lr in enumerate(lrs)
    ]
    checks.integer("epochs", epochs, 0)
    _tree.flatten(params, "params")
    result: dict[float, float] = {}
    for lr in lrs:
        final, losses = run(
            functools.partial(gradient_descent_step, lr=lr),
            params,
            compute_loss_and_grads,
            epochs,
        )
        if losses and not math.isfinite(losses[-1]):
            result[lr] = losses[-1]
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                result[lr] = float(compute_loss_and_grads(final)[0])
    return result


def compare_optimizers(
    opt_steps: Mapping[str, Any] | Iterable[Any],
    initial_params: Any,
    compute_loss_and_grads: LossAndGrads,
    epochs: int,
) -> dict[str, list[float]]:
    """Run several optimizers from the same start; returns ``{name: [loss per epoch]}``.

    ``opt_steps`` maps a display name to one of:

    - a registered optimizer name (``"adam"``, default hyperparameters) or a pair
      ``(name, {"lr": 0.1, ...})``;
    - a stateful NumPy optimizer (anything with ``update(params, grads) -> params``, such
      as ``optimlab.numpy_optimizer(...)``); a copy is used, the given one is unchanged;
    - a function ``(params, grads) -> params``, e.g.
      ``lambda p, g: sgd_step(p, g, lr=0.1)``.

    A list of names or pairs is also accepted; each is then shown under its optimizer's
    name. A diverging run's list ends early, with its NaN or infinite loss.
    """
    if not isinstance(opt_steps, Mapping):
        specs = _items("opt_steps", opt_steps, "a dict {name: step} or a list of names")
        opt_steps = {_display_name(spec): spec for spec in specs}
    checks.integer("epochs", epochs, 0)
    _tree.flatten(initial_params, "initial_params")
    steps = {}
    for name, spec in opt_steps.items():
        try:
            steps[str(name)] = _as_step(name, spec)
        except ValueError as exc:  # an unknown name, a bad hyperparameter: say which entry
            text = str(exc)
            raise ValueError(
                text if text.startswith("opt_steps") else f"opt_steps[{name!r}]: {text}"
            ) from None
    return {
        name: run(step, initial_params, compute_loss_and_grads, epochs, "initial_params")[1]
        for name, step in steps.items()
    }


def _items(name: str, value: Any, what: str) -> list[Any]:
    """``list(value)`` for a list-like ``value``; a string, a number or a 0-d array is
    refused naming ``name``."""
    if not isinstance(value, str | bytes):
        try:
            return list(value)
        except TypeError:  # not iterable (a number, a 0-d array or tensor)
            pass
    raise ValueError(f"{name} must be {what}, got {checks.show(value)}")


def _display_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return spec[0]
    raise ValueError(
        f"opt_steps given as a list must hold names or (name, hyperparams) "
        f"pairs, got {spec!r}; use a dict {{name: step}} for other kinds"
    )


def _as_step(name: Any, spec: Any) -> StepFn:
    if isinstance(spec, str):
        return numpy_optimizer(spec).update
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        if not isinstance(spec[1], Mapping):
            raise ValueError(
                f"opt_steps[{name!r}]: hyperparameters must be a dict, got {spec[1]!r}"
            )
        return numpy_optimizer(spec[0], **spec[1]).update
    if callable(getattr(spec, "update", None)):
        return copy.deepcopy(spec).update
    if callable(spec):
        return spec
    raise ValueError(
        f"opt_steps[{name!r}] must be an optimizer name, a (name, hyperparams) pair, "
        f"an object with update(params, grads) or a function (params, grads) -> params; "
        f"got {spec!r}"
    )
