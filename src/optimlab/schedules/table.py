"""The table of schedules by name: ``get("warmup_cosine", total_steps=1000)``, ``names()``,
``parameters(name)`` and ``from_spec("multistep:milestones=(30,60)")``.

A name is matched without regard to case, and ``-`` equals ``_`` (``"One-Cycle"``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.names import unknown_keyword, unknown_name
from ..core.specs import parse_spec
from .base import Constant, Schedule
from .cyclic import Cyclic, OneCycle
from .decay import (
    CosineAnnealing,
    CosineWarmRestarts,
    ExponentialDecay,
    Linear,
    MultiStepDecay,
    PolynomialDecay,
    StepDecay,
)
from .warmup import InverseSqrt, Warmup, WarmupStableDecay

# name -> (class, settings fixed by the name)
_TABLE: dict[str, tuple[type[Schedule], dict[str, Any]]] = {
    "constant": (Constant, {}),
    "step": (StepDecay, {}),
    "multistep": (MultiStepDecay, {}),
    "exponential": (ExponentialDecay, {}),
    "polynomial": (PolynomialDecay, {}),
    "linear": (Linear, {}),
    "cosine": (CosineAnnealing, {}),
    "cosine_restarts": (CosineWarmRestarts, {}),
    "warmup_cosine": (Warmup, {"decay": "cosine"}),
    "warmup_linear": (Warmup, {"decay": "linear"}),
    "warmup_constant": (Warmup, {"decay": "constant", "end_lr": 0.0}),
    "warmup_inverse_sqrt": (Warmup, {"decay": "inverse_sqrt", "end_lr": 0.0}),
    "inverse_sqrt": (InverseSqrt, {}),
    "cyclic": (Cyclic, {}),
    "one_cycle": (OneCycle, {}),
    "wsd": (WarmupStableDecay, {}),
}


def names() -> list[str]:
    """Every schedule name, sorted."""
    return sorted(_TABLE)


def _key(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError(f"schedule name must be a string, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in _TABLE:
        raise unknown_name("schedule", name, _TABLE, match=key)
    return key


def parameters(name: str) -> list[str]:
    """The keyword arguments that ``get(name, ...)`` accepts."""
    cls, fixed = _TABLE[_key(name)]
    return [f.name for f in dataclasses.fields(cls) if f.name not in fixed]


def get(name: str, **kwargs: Any) -> Schedule:
    """The schedule called ``name`` built with ``kwargs``.

    Every name accepts ``total_steps`` (the length of the run), so
    ``get(name, total_steps=N)`` works for all of them with their defaults; unknown names
    suggest the closest and unknown keywords are rejected.

    >>> get("warmup_cosine", total_steps=100, warmup_steps=10)(10)
    1.0
    """
    key = _key(name)
    cls, fixed = _TABLE[key]
    allowed = parameters(key)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise unknown_keyword(f"schedule {key!r}", unknown[0], allowed)
    return cls(**fixed, **kwargs)


def from_spec(spec: str, **defaults: Any) -> Schedule:
    """A schedule from text ``NAME[:key=value,...]``, e.g. ``"step:step_size=30,gamma=0.5"``
    or ``"multistep:milestones=(30,60)"``; ``defaults`` (such as ``total_steps``) apply
    unless the text sets them.

    >>> from_spec("cosine:eta_min=0.1", total_steps=10)(10)
    0.1
    """
    name, options = parse_spec(spec, "schedule spec")
    return get(name, **{**defaults, **options})
