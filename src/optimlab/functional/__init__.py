"""The teaching API: each optimizer's step as a plain NumPy function, and small loops.

Every step function is a thin adapter over the registered rule of its algorithm (the math
lives once, in ``optimlab.rules``), so what a learner runs here is exactly what the torch
optimizers and the sweeps run. Inputs are never modified; state is passed in and returned.

>>> from optimlab.functional import momentum_step
>>> params, velocity = momentum_step(1.0, 2.0, 0.0, lr=0.1, beta=0.9)
>>> params, velocity
(0.8, 2.0)
"""

from __future__ import annotations

from .steps import (
    adagrad_step,
    adam_step,
    adamw_step,
    gradient_descent_step,
    momentum_step,
    nadam_step,
    nesterov_step,
    rmsprop_step,
    sgd_step,
)
from .training import compare_optimizers, experiment_learning_rates, train_with_gradient_descent

__all__ = [
    "adagrad_step",
    "adam_step",
    "adamw_step",
    "compare_optimizers",
    "experiment_learning_rates",
    "gradient_descent_step",
    "momentum_step",
    "nadam_step",
    "nesterov_step",
    "rmsprop_step",
    "sgd_step",
    "train_with_gradient_descent",
]
