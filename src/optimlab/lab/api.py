"""``compare`` and ``sweep``: the lab's Python entry points."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.checks import integer
from ..core.specs import parse_spec
from .config import LrSpec, RunConfig, expand_grid, grid_size
from .results import Results
from .runner import ProgressFn, execute
from .store.sizing import MAX_STORE_BYTES, SizeEstimate, check_size, run_bytes

ScheduleSpec = str | tuple[str, Mapping[str, Any]] | None
ProblemSpec = str | tuple[str, Mapping[str, Any]]


def parse_problem(spec: ProblemSpec) -> tuple[str, dict[str, Any]]:
    """``"ravine"``, ``"ravine:condition=100"`` or ``("ravine", {"condition": 100})`` ->
    (name, kwargs); a user problem ``"module:function"`` or ``"file.py:function"`` (no
    ``=`` after the colon) keeps its spec as its name. The name and kwargs are checked by
    building the problem once."""
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        name, kwargs = spec[0], dict(spec[1])
    elif isinstance(spec, str) and ":" in spec and "=" not in spec.partition(":")[2]:
        name, kwargs = spec.strip(), {}  # a user problem "module:function"
    elif isinstance(spec, str):
        name, kwargs = parse_spec(spec, "problem")
    else:
        raise ValueError(f"problem must be a name or (name, kwargs), got {spec!r}")
    from .. import problems

    problem = problems.get(name, **kwargs)  # raises ValueError naming the mistake
    if ":" in name:  # a user problem is stored and reloaded by the spec it was given
        return name, kwargs
    return getattr(problem, "name", name) or name, kwargs


def parse_schedule(spec: ScheduleSpec) -> tuple[str | None, dict[str, Any]]:
    """``None``, ``"cosine"``, ``"warmup_cosine:warmup_steps=100"``,
    ``"multistep:milestones=(30,60)"`` or ``(name, kwargs)`` -> (canonical name, kwargs);
    names are spelled as ``schedules.get`` accepts them (``"Warmup-Cosine"`` is
    ``"warmup_cosine"``); ``"constant"`` (or ``"none"``) without options is no schedule."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return None, {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        name, kwargs = spec[0], dict(spec[1])
    elif isinstance(spec, str):
        name, kwargs = parse_spec(spec, "schedule")
    else:
        raise ValueError(f"schedule must be a name or (name, kwargs), got {spec!r}")
    from .. import schedules

    schedules.parameters(name)  # an unknown name raises, suggesting the closest
    key = name.strip().lower().replace("-", "_")  # how schedules.get spells its names
    if key == "constant" and not kwargs:
        return None, {}
    return key, kwargs


def check_schedule(sched: tuple[str | None, Mapping[str, Any]], steps: int) -> None:
    """Build the schedule once for ``steps`` so that bad options fail before any run."""
    name, kwargs = sched
    if name is None:
        return
    from .. import schedules

    schedules.get(name, total_steps=steps, **kwargs)  # ValueError names the option


def _problems(problem: ProblemSpec | Sequence[ProblemSpec]) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(problem, str | tuple):
        return [parse_problem(problem)]
    try:
        items = list(problem)
    except TypeError:
        raise ValueError(
            f"problem must be a name, (name, kwargs) or a list of them, got {problem!r}"
        ) from None
    specs = [parse_problem(p) for p in items]
    if not specs:
        raise ValueError("problem must name at least one problem, got none")
    return specs


def guard_size(
    grids: Sequence[tuple[tuple[str, dict[str, Any]], int]],
    steps: int,
    out: str | None,
    max_store_bytes: float | None,
    on_estimate: Callable[[SizeEstimate], None] | None,
) -> None:
    """The size guard: ``grids`` pairs each problem spec with its number of runs. Above
    ``max_store_bytes`` (None: no limit) the grid is refused with :class:`StoreTooLarge`,
    before any run or store is made; else the estimate goes to ``on_estimate``."""
    from .. import problems

    total = 0.0
    for (name, kwargs), runs in grids:
        p = problems.get(name, **kwargs)
        trajectory = p.kind == "function" and getattr(p, "dim", 0) == 2
        total += runs * run_bytes(steps, trajectory)
    estimate = SizeEstimate(sum(runs for _, runs in grids), total)
    check_size(estimate, max_store_bytes, out)
    if on_estimate is not None:
        on_estimate(estimate)


def run_configs(
    configs: Sequence[RunConfig],
    out: str | None,
    *,
    batched: bool = True,
    eval_every: int | None = None,
    progress: ProgressFn | None = None,
    **kwargs: Any,
) -> Results:
    """Compute the runs not yet in ``out`` (a fresh temporary folder if None) and load all."""
    folder = out if out is not None else tempfile.mkdtemp(prefix="optimlab-")
    counts = execute(
        configs, folder, batched=batched, eval_every=eval_every, progress=progress, **kwargs
    )
    return Results.load(folder, [c.run_id for c in configs], counts)


def compare(
    problem: ProblemSpec | Sequence[ProblemSpec],
    optimizers: Sequence[str],
    lrs: LrSpec | Mapping[str, LrSpec],
    steps: int,
    seeds: int | str | Sequence[int] = 3,
    *,
    hyperparams: Mapping[str, Mapping[str, Any]] | None = None,
    schedule: ScheduleSpec = None,
    out: str | None = None,
    batched: bool = True,
    eval_every: int | None = None,
    progress: ProgressFn | None = None,
    max_store_bytes: float | None = MAX_STORE_BYTES,
    on_estimate: Callable[[SizeEstimate], None] | None = None,
    **engine_kwargs: Any,
) -> Results:
    """Compare optimizers over a learning-rate grid on one or more problems.

    ``lrs`` is a list, a log range ``"1e-4:1:9"`` or a mapping optimizer -> either (with
    an optional ``"default"``). ``seeds`` is a count or a list. ``hyperparams`` fixes other
    hyperparameters per optimizer (``{"adam": {"beta2": 0.99}}``; ``"*"`` for all).
    Results are stored in ``out`` (runs already finished there are not recomputed).
    Before anything runs, the number of runs and the size of their results are estimated
    (passed to ``on_estimate``); above ``max_store_bytes`` (1 GB; None: no limit) the
    call raises :class:`~optimlab.lab.store.sizing.StoreTooLarge`.

    >>> res = compare("rosenbrock", ["sgd", "adam"], "1e-3:1e-1:3", steps=100, seeds=1)
    ... # doctest: +SKIP
    >>> res.best()[0]["optimizer"]  # doctest: +SKIP
    'adam'
    """
    for opt, hp in (hyperparams or {}).items():
        if not isinstance(hp, Mapping):
            raise ValueError(
                f"hyperparams[{opt!r}] must be a mapping of names to values, got {hp!r}"
            )
    fixed = {opt: {k: v for k, v in hp.items()} for opt, hp in (hyperparams or {}).items()}
    for opt, hp in fixed.items():
        for k, v in hp.items():
            if isinstance(v, list | tuple):
                raise ValueError(
                    f"hyperparams[{opt!r}][{k!r}] must be one value in compare "
                    f"(use sweep for grids), got {v!r}"
                )
    steps = integer("steps", steps, 1)
    sched = parse_schedule(schedule)
    check_schedule(sched, steps)
    specs = _problems(problem)
    runs = grid_size(optimizers, lrs, seeds, hyperparams=fixed, schedules=[sched])
    guard_size([(spec, runs) for spec in specs], steps, out, max_store_bytes, on_estimate)
    configs: list[RunConfig] = []
    for name, kwargs in specs:
        configs += expand_grid(
            name,
            optimizers,
            lrs,
            steps,
            seeds,
            hyperparams=fixed,
            schedules=[sched],
            problem_kwargs=kwargs,
        )
    return run_configs(
        configs, out, batched=batched, eval_every=eval_every, progress=progress, **engine_kwargs
    )


def sweep(
    problem: ProblemSpec | Sequence[ProblemSpec],
    grid: Mapping[str, Mapping[str, Any]],
    steps: int,
    seeds: int | str | Sequence[int] = 3,
    *,
    schedules: Sequence[ScheduleSpec] = (None,),
    out: str | None = None,
    batched: bool = True,
    eval_every: int | None = None,
    progress: ProgressFn | None = None,
    max_store_bytes: float | None = MAX_STORE_BYTES,
    on_estimate: Callable[[SizeEstimate], None] | None = None,
    **engine_kwargs: Any,
) -> Results:
    """The full grid optimizer x hyperparameters x schedule x seed.

    ``grid`` maps each optimizer to its axes: ``"lr"`` (a list or a range spec, required)
    and any other hyperparameter as one value or a list of values, e.g.
    ``{"adam": {"lr": "1e-4:1e-1:4", "beta2": [0.99, 0.999]}, "sgd": {"lr": [0.01, 0.1]}}``.
    The size guard (``max_store_bytes``, ``on_estimate``) is that of :func:`compare`.
    """
    if not grid:
        raise ValueError("grid must name at least one optimizer, got {}")
    lrs: dict[str, LrSpec] = {}
    axes: dict[str, dict[str, Any]] = {}
    for opt, hp in grid.items():
        if not isinstance(hp, Mapping):
            raise ValueError(
                f"grid[{opt!r}] must be a mapping of hyperparameter names to "
                f"values (with 'lr'), got {hp!r}"
            )
        hp = dict(hp)
        if "lr" not in hp:
            raise ValueError(f"grid[{opt!r}] needs an 'lr' entry (a list or 'lo:hi:n')")
        lrs[opt] = hp.pop("lr")
        axes[opt] = hp
    if schedules is None or isinstance(schedules, str):  # one schedule, not its letters
        schedules = [schedules]
    try:
        items = list(schedules) or [None]
    except TypeError:
        raise ValueError(f"schedules must be a list of schedule specs, got {schedules!r}") from None
    steps = integer("steps", steps, 1)
    scheds = [parse_schedule(s) for s in items]
    for sched in scheds:
        check_schedule(sched, steps)
    specs = _problems(problem)
    runs = grid_size(list(grid), lrs, seeds, hyperparams=axes, schedules=scheds)
    guard_size([(spec, runs) for spec in specs], steps, out, max_store_bytes, on_estimate)
    configs: list[RunConfig] = []
    for name, kwargs in specs:
        for opt in grid:
            configs += expand_grid(
                name,
                [opt],
                {opt: lrs[opt]},
                steps,
                seeds,
                hyperparams={opt: axes[opt]},
                schedules=scheds,
                problem_kwargs=kwargs,
            )
    return run_configs(
        configs, out, batched=batched, eval_every=eval_every, progress=progress, **engine_kwargs
    )
