"""``compare`` and ``sweep``: the lab's Python entry points.

A problem is a built-in name (``"ravine:condition=100"``), a user problem spec
(``"my_models.py:mlp"``, ``"my_models:mlp"``, found from the current folder), or your own
model passed directly: a function returning ``(model, loss_fn, data[, val_batch])``, a
``TorchTask`` or a problem object, stored under the ``name`` you give
(``compare(make_mlp, ["adam", "sgd"], "1e-4:1e-1:7", 200, name="my_mlp")``).

Where a problem's seeds cannot change anything (a test function from a fixed start) one
seed runs and ``Results.notes`` says so. Without ``out`` the results live in a temporary
folder that is removed once the returned ``Results`` are no longer used (``keep=True``
keeps it).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.checks import integer
from ..core.specs import parse_spec
from .config import LrSpec, RunConfig, expand_grid, grid_size
from .plan import plan
from .results import Results
from .runner import ProgressFn, execute
from .store.sizing import MAX_STORE_BYTES, SizeEstimate
from .tidy import study_label

ScheduleSpec = str | tuple[str, Mapping[str, Any]] | None
ProblemSpec = str | tuple[str, Any] | Any
EVALUATIONS = 20  # eval_every="auto": about this many evaluations per run


def _is_object(spec: Any) -> bool:
    """A model passed directly (a function, a TorchTask, a problem object)."""
    return not isinstance(spec, str | tuple | list) and (
        callable(spec) or hasattr(spec, "torch_task") or hasattr(spec, "batches")
    )


def _object_name(obj: Any, name: str | None) -> str:
    if name is not None:
        return name
    fn_name = getattr(obj, "__name__", None)
    if isinstance(fn_name, str) and fn_name.isidentifier():
        return fn_name
    raise ValueError(
        f"name is needed for problem {obj!r}: the store keys runs by it, e.g. "
        "compare(task, ..., name='my_model')"
    )


def parse_problem(spec: ProblemSpec, name: str | None = None) -> tuple[str, dict[str, Any]]:
    """``"ravine"``, ``"ravine:condition=100"`` or ``("ravine", {"condition": 100})`` ->
    (name, kwargs); a user problem ``"module:function"`` or ``"file.py:function"`` (no
    ``=`` after the colon) keeps its spec as its name. A model passed directly (a
    function, ``TorchTask`` or problem object; or ``(name, object)``) is registered under
    ``name`` (default: the function's name) with ``problems.register``. The name and
    kwargs are checked by building the problem once."""
    from .. import problems

    if isinstance(spec, tuple) and len(spec) == 2 and _is_object(spec[1]):
        spec, name = spec[1], spec[0]
    if _is_object(spec):
        key = _object_name(spec, name)
        problems.register(key, spec)
        return key, {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        name, kwargs = spec[0], dict(spec[1])
    elif isinstance(spec, str) and ":" in spec and "=" not in spec.partition(":")[2]:
        name, kwargs = spec.strip(), {}  # a user problem "module:function"
    elif isinstance(spec, str):
        name, kwargs = parse_spec(spec, "problem")
    else:
        raise ValueError(
            f"problem must be a name, (name, kwargs) or your model (a function, a "
            f"TorchTask or a problem object), got {spec!r}"
        )
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


def _problems(
    problem: ProblemSpec | Sequence[ProblemSpec], name: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(problem, str | tuple) or _is_object(problem):
        return [parse_problem(problem, name)]
    try:
        items = list(problem)
    except TypeError:
        raise ValueError(
            f"problem must be a name, (name, kwargs) or a list of them, got {problem!r}"
        ) from None
    if name is not None:
        raise ValueError("name names one problem object; give (name, object) pairs in a list")
    specs = [parse_problem(p) for p in items]
    if not specs:
        raise ValueError("problem must name at least one problem, got none")
    return specs


def _eval_every(eval_every: int | str | None, steps: int) -> int | None:
    """``"auto"``: about ``EVALUATIONS`` evaluations per run (held-out curves and steps
    to target need them); ``None``: only after the last update."""
    if eval_every == "auto":
        return max(1, steps // EVALUATIONS)
    return integer("eval_every", eval_every, 1, optional=True)


class _TemporaryFolder:
    """A results folder removed when the last ``Results`` holding it is gone (or at exit)."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="optimlab-")
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    def remove(self) -> None:
        self._remove()


def run_configs(
    configs: Sequence[RunConfig],
    out: str | None,
    *,
    batched: bool = True,
    eval_every: int | None = None,
    progress: ProgressFn | None = None,
    keep: bool = False,
    notes: Sequence[str] = (),
    **kwargs: Any,
) -> Results:
    """Compute the runs not yet in ``out`` and load all. Without ``out``: a fresh
    temporary folder, removed when the results are no longer used unless ``keep``."""
    temporary = _TemporaryFolder() if out is None else None
    folder = temporary.path if temporary is not None else str(out)
    try:
        counts = execute(
            configs, folder, batched=batched, eval_every=eval_every, progress=progress, **kwargs
        )
        results = Results.load(folder, [c.run_id for c in configs], counts)
    except BaseException:
        if temporary is not None and not keep:
            temporary.remove()
        raise
    results.notes = list(notes)
    if temporary is not None:
        if keep:
            temporary._remove.detach()
            results.notes.append(f"results kept in {folder}")
        else:
            results._keeper = temporary
    return results


def _fixed_hyperparams(
    hyperparams: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    """``compare``'s ``hyperparams``: one value per optimizer and name (grids are ``sweep``'s)."""
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
    return fixed


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
    name: str | None = None,
    keep: bool = False,
    batched: bool = True,
    eval_every: int | str | None = "auto",
    progress: ProgressFn | None = None,
    max_store_bytes: float | None = MAX_STORE_BYTES,
    on_estimate: Callable[[SizeEstimate], None] | None = None,
    **engine_kwargs: Any,
) -> Results:
    """Compare optimizers over a learning-rate grid on one or more problems.

    ``problem``: a name, a spec, your model (a function, ``TorchTask`` or problem object,
    stored under ``name``), or a list of them. ``lrs`` is a list, a log range
    ``"1e-4:1:9"`` or a mapping optimizer -> either (with an optional ``"default"``).
    ``seeds`` is a count or a list (one seed where seeds change nothing; see
    ``Results.notes``). ``hyperparams`` fixes other hyperparameters per optimizer
    (``{"adam": {"beta2": 0.99}}``; ``"*"`` for all). Results are stored in ``out`` (runs
    already finished there are not recomputed); without it in a temporary folder that is
    removed when the results are no longer used, unless ``keep``. ``eval_every``: the
    evaluation period (``"auto"``: about 20 per run; ``None``: only after the last update).
    Before anything runs, the number of runs and the size of their results are estimated
    (passed to ``on_estimate``); above ``max_store_bytes`` (1 GB; None: no limit) the
    call raises :class:`~optimlab.lab.store.sizing.StoreTooLarge`.

    >>> res = compare("rosenbrock", ["sgd", "adam"], "1e-3:1e-1:3", steps=100, seeds=1)
    ... # doctest: +SKIP
    >>> res.best()[0]["optimizer"]  # doctest: +SKIP
    'adam'
    """
    fixed = _fixed_hyperparams(hyperparams)
    steps = integer("steps", steps, 1)
    sched = parse_schedule(schedule)
    check_schedule(sched, steps)
    specs = _problems(problem, name)
    seed_lists, notes = plan(
        specs,
        seeds,
        steps,
        out,
        max_store_bytes,
        on_estimate,
        lambda seed_list: grid_size(
            optimizers, lrs, seed_list, hyperparams=fixed, schedules=[sched]
        ),
    )
    configs: list[RunConfig] = []
    for problem_name, kwargs in specs:
        configs += expand_grid(
            problem_name,
            optimizers,
            lrs,
            steps,
            seed_lists[study_label(problem_name, kwargs)],
            hyperparams=fixed,
            schedules=[sched],
            problem_kwargs=kwargs,
        )
    return run_configs(
        configs,
        out,
        batched=batched,
        eval_every=_eval_every(eval_every, steps),
        progress=progress,
        keep=keep,
        notes=notes,
        **engine_kwargs,
    )


def _split_grid(
    grid: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, LrSpec], dict[str, dict[str, Any]]]:
    """A sweep's grid as (lrs per optimizer, other axes per optimizer)."""
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
    return lrs, axes


def _schedules(
    schedules: Sequence[ScheduleSpec] | str | None, steps: int
) -> list[tuple[str | None, dict[str, Any]]]:
    """A sweep's ``schedules`` (a list, or one spec), parsed and checked against ``steps``."""
    if schedules is None or isinstance(schedules, str):  # one schedule, not its letters
        schedules = [schedules]
    try:
        items: list[ScheduleSpec] = list(schedules) or [None]
    except TypeError:
        raise ValueError(f"schedules must be a list of schedule specs, got {schedules!r}") from None
    scheds = [parse_schedule(s) for s in items]
    for sched in scheds:
        check_schedule(sched, steps)
    return scheds


def sweep(
    problem: ProblemSpec | Sequence[ProblemSpec],
    grid: Mapping[str, Mapping[str, Any]],
    steps: int,
    seeds: int | str | Sequence[int] = 3,
    *,
    schedules: Sequence[ScheduleSpec] = (None,),
    out: str | None = None,
    name: str | None = None,
    keep: bool = False,
    batched: bool = True,
    eval_every: int | str | None = "auto",
    progress: ProgressFn | None = None,
    max_store_bytes: float | None = MAX_STORE_BYTES,
    on_estimate: Callable[[SizeEstimate], None] | None = None,
    **engine_kwargs: Any,
) -> Results:
    """The full grid optimizer x hyperparameters x schedule x seed.

    ``grid`` maps each optimizer to its axes: ``"lr"`` (a list or a range spec, required)
    and any other hyperparameter as one value or a list of values, e.g.
    ``{"adam": {"lr": "1e-4:1e-1:4", "beta2": [0.99, 0.999]}, "sgd": {"lr": [0.01, 0.1]}}``.
    ``problem``, ``seeds``, ``out``, ``name``, ``keep``, ``eval_every`` and the size guard
    (``max_store_bytes``, ``on_estimate``) as in :func:`compare`.
    """
    lrs, axes = _split_grid(grid)
    steps = integer("steps", steps, 1)
    scheds = _schedules(schedules, steps)
    specs = _problems(problem, name)
    seed_lists, notes = plan(
        specs,
        seeds,
        steps,
        out,
        max_store_bytes,
        on_estimate,
        lambda seed_list: grid_size(list(grid), lrs, seed_list, hyperparams=axes, schedules=scheds),
    )
    configs: list[RunConfig] = []
    for problem_name, kwargs in specs:
        for opt in grid:
            configs += expand_grid(
                problem_name,
                [opt],
                {opt: lrs[opt]},
                steps,
                seed_lists[study_label(problem_name, kwargs)],
                hyperparams={opt: axes[opt]},
                schedules=scheds,
                problem_kwargs=kwargs,
            )
    return run_configs(
        configs,
        out,
        batched=batched,
        eval_every=_eval_every(eval_every, steps),
        progress=progress,
        keep=keep,
        notes=notes,
        **engine_kwargs,
    )
