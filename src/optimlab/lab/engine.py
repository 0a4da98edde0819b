"""The execution engine: run many optimizer settings on one problem, batched where it can.

Settings that share the optimizer (and its flags, e.g. ``amsgrad``) run together with a
leading config axis: parameters stacked ``(K, ...)``, numeric hyperparameters passed to
the rule as ``(K, 1, ...)`` arrays, and each step's learning rate as a ``(K, 1, ...)``
array ``lr * schedule(step)``. Test functions run in NumPy; torch models run with
``torch.func.vmap(grad(...))`` over stacked parameters, or one setting at a time where
vmap cannot apply (a model that updates buffers or draws random numbers in ``forward``).

Divergence: at each step, a setting whose loss is not finite, whose gradient norm is not
finite, or whose loss exceeds ``divergence_factor * max(|initial loss|, 1e-2)`` stops
there. It is removed from the batch (its rows are dropped, not masked), so it never
changes the other settings' numbers; its ``Trace`` ends with the loss that tripped the
rule (``diverged_step`` is that step; no update was applied there, so ``update_norm`` is
NaN at it).

Records (``Trace``): ``loss[t]`` is the training loss at the parameters before update
``t``; ``lr[t]`` the learning rate used by update ``t``; ``grad_norm``/``update_norm``
global L2 norms; ``time`` cumulative wall seconds, where a batched step's wall time is
split evenly over the settings it advanced (evaluations excluded). ``evals`` holds
``(step, metrics)`` with ``step`` the number of updates applied: every ``eval_every``
steps from 0, and always at the end of a finished run (with ``eval_every=None`` only at
the end). Test functions
report ``loss`` and ``distance`` (to the nearest known minimum); torch problems their
``TorchTask.metrics`` on the validation batch. ``trajectory`` holds the points visited on
2-D test functions: ``steps + 1`` rows for a finished run (the start first), one per loss
entry for a diverged one.

``progress(done)`` is called after every step with the cumulative number of
(setting, step) pairs completed by this call; a diverged setting's remaining steps count
as done when it stops, so ``done`` ends at ``len(settings) * steps``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..problems.base import Problem
from . import _func_batch
from ._plan import check_args, plan

__all__ = ["Setting", "Trace", "run"]


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
    """What one setting did (see the module docstring for the exact meaning of each array)."""

    setting: Setting
    status: str  # "finished" | "diverged"
    loss: np.ndarray
    lr: np.ndarray
    grad_norm: np.ndarray
    update_norm: np.ndarray
    time: np.ndarray
    evals: list[tuple[int, dict[str, float]]]
    trajectory: np.ndarray | None
    diverged_step: int | None


def _resolve(problem: str | Problem) -> Problem:
    if isinstance(problem, str):
        from .. import problems

        return problems.get(problem)
    if getattr(problem, "kind", None) not in ("function", "torch"):
        raise ValueError(f"problem must be a problem name or a Problem, got {problem!r}")
    return problem


def run(
    problem: str | Problem,
    settings: Sequence[Setting],
    steps: int,
    *,
    eval_every: int | None = None,
    batched: bool = True,
    divergence_factor: float = 1e3,
    progress: Callable[[int], None] | None = None,
) -> list[Trace]:
    """Run every setting for ``steps`` steps on ``problem``; traces in the order of ``settings``.

    ``problem`` is a name for ``optimlab.problems.get`` or a problem object. With
    ``batched=False`` every setting runs alone (the reference the batched path is tested
    against). All settings are validated before anything runs (``ValueError``).

    >>> from optimlab.lab.engine import Setting, run
    >>> traces = run("rosenbrock", [Setting("adam", {"lr": lr}) for lr in (0.01, 0.1)], 100)
    >>> [t.status for t in traces], bool(traces[1].loss[-1] < traces[1].loss[0])
    (['finished', 'finished'], True)
    """
    check_args(steps, eval_every, divergence_factor)
    steps = int(steps)
    problem = _resolve(problem)
    settings = list(settings)
    for s in settings:
        if not isinstance(s, Setting):
            raise ValueError(f"settings must be Setting objects, got {s!r}")
    groups = plan(settings, steps)
    if not batched:
        groups = [one for group in groups for one in group.split()]
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0])

    out: dict[int, Trace] = {}
    for group in groups:
        kw = dict(eval_every=eval_every, divergence_factor=float(divergence_factor), progress=tick)
        if problem.kind == "function":
            rec = _func_batch.run_group(problem, group, steps, **kw)
        else:
            from . import _torch_batch

            rec = _torch_batch.run_group(problem, group, steps, batched=batched, **kw)
        out.update(rec.traces(settings, group, Trace))
    return [out[i] for i in range(len(settings))]
