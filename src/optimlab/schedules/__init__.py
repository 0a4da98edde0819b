"""Learning-rate schedules: closed-form, picklable, composable, and one torch adapter.

``schedule(step)`` gives the learning rate at a 0-based step (see ``base`` for the units
and array conventions). Build them by class or by name::

    from optimlab import schedules
    s = schedules.get("warmup_cosine", total_steps=1000, warmup_steps=100, lr=3e-4)
    s(0), s(100), s(999)
    sched = schedules.to_torch(s, optimizer)    # a torch LRScheduler; resume is exact
    schedules.plot(["cosine", "one_cycle", "wsd"], steps=1000, path="schedules.png")

torch and matplotlib are imported only by ``to_torch`` and ``plot``.
"""

from __future__ import annotations

from typing import Any

from .base import Constant, Join, Product, Schedule, join
from .cyclic import Cyclic, MomentumCycle, OneCycle
from .decay import (
    CosineAnnealing,
    CosineWarmRestarts,
    ExponentialDecay,
    Linear,
    MultiStepDecay,
    PolynomialDecay,
    StepDecay,
)
from .plot import plot
from .table import from_spec, get, names, parameters
from .warmup import InverseSqrt, Warmup, WarmupStableDecay

list = names  # noqa: A001 - the public API is schedules.list()

__all__ = [
    "Constant",
    "CosineAnnealing",
    "CosineWarmRestarts",
    "Cyclic",
    "ExponentialDecay",
    "InverseSqrt",
    "Join",
    "Linear",
    "MomentumCycle",
    "MultiStepDecay",
    "OneCycle",
    "PolynomialDecay",
    "Product",
    "Schedule",
    "ScheduleLR",
    "StepDecay",
    "Warmup",
    "WarmupStableDecay",
    "from_spec",
    "get",
    "join",
    "list",
    "names",
    "parameters",
    "plot",
    "to_torch",
]


def to_torch(schedule: Any, optimizer: Any, momentum_schedule: Any = None) -> Any:
    """A ``torch.optim.lr_scheduler.LRScheduler`` setting ``lr = schedule(step)`` in every
    param group (and momentum/beta1 from ``momentum_schedule``); see ``torch_scheduler``."""
    from .torch_scheduler import to_torch as _to_torch

    return _to_torch(schedule, optimizer, momentum_schedule)


def __getattr__(name: str) -> Any:
    if name == "ScheduleLR":
        from .torch_scheduler import ScheduleLR

        return ScheduleLR
    raise AttributeError(f"module 'optimlab.schedules' has no attribute {name!r}")
