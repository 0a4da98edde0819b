"""What one run is asked to do (``Setting``) and the one record of what it did (``Trace``).

The engine returns a ``Trace`` per setting and the store writes that same ``Trace`` under
the run's id: there is no second form of a run's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FINAL", "Setting", "Trace"]

FINAL = ("finished", "diverged")  # the statuses a computed run ends with


@dataclass(frozen=True)
class Setting:
    """One optimizer configuration to run: registry name, hyperparameters, schedule, seed.

    ``hyperparams`` includes ``lr`` (the base learning rate; the rule's default if absent)
    and is validated by the rule. The learning rate at step ``t`` is
    ``lr * schedules.get(schedule, total_steps=steps, **schedule_kwargs)(t)``.
    """

    optimizer: str
    hyperparams: Mapping[str, Any]
    schedule: str | None = None
    schedule_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass
class Trace:
    """What one run did, step by step (``optimlab.lab.engine`` states each field exactly).

    ``loss[t]`` is the training loss at the parameters before update ``t``; ``lr[t]`` the
    learning rate of update ``t``; ``grad_norm``/``update_norm`` global L2 norms; ``time``
    cumulative wall seconds. ``evals`` holds ``(updates applied, {metric: value})``;
    ``trajectory`` the points visited on 2-D test functions (else ``None``);
    ``diverged_step`` the step that tripped the divergence rule (``None`` if finished).
    ``setting`` is what was run (``None`` for a record built by hand, e.g. in tests).
    """

    status: str  # "finished" | "diverged"
    loss: np.ndarray
    lr: np.ndarray
    grad_norm: np.ndarray
    update_norm: np.ndarray
    time: np.ndarray
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    trajectory: np.ndarray | None = None
    diverged_step: int | None = None
    setting: Setting | None = None
