"""The execution engine: run many optimizer settings on one problem, batched where it can.

Settings that share the optimizer (and its flags, e.g. ``amsgrad``) form a *group* that
runs together with a leading config axis: parameters stacked ``(K, ...)``, numeric
hyperparameters passed to the rule as ``(K, 1, ...)`` arrays, and each step's learning
rate as a ``(K, 1, ...)`` array ``lr * schedule(step)`` (``grouping``). One loop
(``loop.run_loop``) steps every group through a small backend interface: test functions
in NumPy or torch (``functions``), torch models with ``torch.func.vmap`` over stacked
parameters, or one setting at a time where vmap cannot apply, e.g. a model that updates
buffers or draws random numbers in ``forward`` (``models``).

Divergence: at each step, a setting whose loss is not finite, whose gradient norm is not
finite, or whose loss exceeds ``divergence_factor * max(|initial loss|, 1e-2)`` stops
there. It is removed from the batch (its rows are dropped, not masked), so it never
changes the other settings' numbers beyond rounding (the survivors run on in a smaller
batch); its ``Trace`` ends with the loss that tripped the
rule (``diverged_step`` is that step; no update was applied there, so ``update_norm`` is
NaN at it).

Records (``Trace``): ``loss[t]`` is the training loss at the parameters before update
``t``; ``lr[t]`` the learning rate used by update ``t``; ``grad_norm``/``update_norm``
global L2 norms; ``time`` cumulative wall seconds, where a batched step's wall time is
split evenly over the settings it advanced (evaluations excluded). ``evals`` holds
``(step, metrics)`` with ``step`` the number of updates applied: every ``eval_every``
steps from 0, and always at the end of a finished run (with ``eval_every=None`` only at
the end). Test functions report ``loss`` and ``distance`` (to the nearest known minimum);
torch problems their ``TorchTask.metrics`` on the validation batch, taken in eval mode on
a forked RNG, so evaluating never changes the training that follows. Evaluations are
taken at the rule's evaluation point (``Rule.eval_point``: schedule-free's average ``x``,
ASGD's average, Lookahead's slow weights), while ``loss`` is the training loss where the
optimizer steps (schedule-free's ``y``). ``trajectory``
holds the points visited on 2-D test functions: ``steps + 1`` rows for a finished run
(the start first), one per loss entry for a diverged one.

Parameters: a rule for matrices only (Muon) steps the hidden 2-D weights, and AdamW the
rest (``optimlab.optim.routing``); a group-wide rule (Prodigy) steps a model's
parameters as one vector per setting (``routes``).

Seeds: each seed's model, data and any random numbers drawn in ``forward`` come from that
seed's own stream, so a run's numbers do not depend on what the process ran before, nor
(beyond rounding) on which settings share its batch. A batched run equals the same
settings run one at a time (``batched=False``) within the numerics tolerance of
``tests/numerics.py`` (the batched arithmetic is the same mathematics, not the same
machine code).

``progress(done)`` is called after every step with the cumulative number of
(setting, step) pairs completed by this call; a diverged setting's remaining steps count
as done when it stops, so ``done`` ends at ``len(settings) * steps``.

A run is a plain function of (problem spec, settings, steps) returning records: the
problem may be given as a name or ``(name, kwargs)``, and ``Setting``/``Trace`` pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...core.checks import integer, real
from ...problems.base import Problem
from ..record import Setting, Trace
from .grouping import Group, plan
from .loop import LoopOptions

__all__ = ["Setting", "Trace", "run", "run_group"]

ProblemSpec = str | tuple[str, Mapping[str, Any]] | Problem


def _resolve(problem: ProblemSpec) -> Problem:
    from ... import problems

    if isinstance(problem, str):
        return problems.get(problem)
    if isinstance(problem, tuple) and len(problem) == 2 and isinstance(problem[0], str):
        return problems.get(problem[0], **dict(problem[1]))
    if getattr(problem, "kind", None) not in ("function", "torch"):
        raise ValueError(f"problem must be a problem name or a Problem, got {problem!r}")
    return problem  # type: ignore[return-value]


def run_group(problem: Problem, group: Group, steps: int, options: LoopOptions) -> list[Trace]:
    """One group's traces (in the group's order), on the backend its problem needs."""
    if problem.kind == "function":
        from .functions import run_functions

        return run_functions(problem, group, steps, options)
    from .models import run_models

    return run_models(problem, group, steps, options)


def run(
    problem: ProblemSpec,
    settings: Sequence[Setting],
    steps: int,
    *,
    eval_every: int | None = None,
    batched: bool = True,
    divergence_factor: float = 1e3,
    progress: Callable[[int], None] | None = None,
) -> list[Trace]:
    """Run every setting for ``steps`` steps on ``problem``; traces in the order of ``settings``.

    ``problem`` is a name (or ``(name, kwargs)``) for ``optimlab.problems.get``, or a
    problem object. With ``batched=False`` every setting runs alone (the reference the
    batched path is tested against). All settings are validated before anything runs
    (``ValueError``).

    >>> from optimlab.lab.engine import Setting, run
    >>> traces = run("rosenbrock", [Setting("adam", {"lr": lr}) for lr in (0.01, 0.1)], 100)
    >>> [t.status for t in traces], bool(traces[1].loss[-1] < traces[1].loss[0])
    (['finished', 'finished'], True)
    """
    steps = integer("steps", steps, 1)
    eval_every = integer("eval_every", eval_every, 1, optional=True)
    factor = float(real("divergence_factor", divergence_factor, 1, low_open=True))
    resolved = _resolve(problem)
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

    options = LoopOptions(eval_every, factor, tick, batched)
    out: dict[int, Trace] = {}
    for group in groups:
        out.update(zip(group.positions, run_group(resolved, group, steps, options), strict=True))
    return [out[i] for i in range(len(settings))]
