"""Orchestration: turn a list of run configurations into stored results.

The runner inserts every run in the store (idempotently), requeues runs a dead process
left ``running``, then claims and computes the queued ones batch by batch with the
engine, writing each batch's traces in one transaction. Finished runs are never
recomputed; runs another live process holds are waited for, so the returned results
are complete. Interrupting (Ctrl+C, SIGTERM) gives the claimed runs back to the queue.

Batches run one after another in this process, or (``engine="ray"``) all at once as tasks
on a Ray cluster (``ray_engine``): either way this process claims them and writes every
result, so the store has one writer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.checks import choice, integer, real
from . import engine as default_engine
from .config import RunConfig
from .store import FINAL, Store, StoreFault

ENGINES = ("local", "ray")  # what ``execute(engine=...)`` and ``--engine`` accept by name
ProgressFn = Callable[[int, int], None]  # (units done so far, total units); a unit = one run-step


@dataclass
class RunCounts:
    """What one call of :func:`execute` did."""

    requested: int = 0
    skipped: int = 0  # already finished or diverged in the store: not recomputed
    computed: int = 0  # computed by this call
    diverged: int = 0  # of the computed ones
    failed: int = 0  # the engine raised
    by_others: int = 0  # finished meanwhile by another process sharing the folder
    failed_by_others: int = 0  # requested runs another process sharing the folder failed
    requeued_stale: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Session:
    """One call of :func:`execute`: its store, engine, counts and progress."""

    store: Store
    engine: Any  # a module (or object) with ``Setting`` and ``run`` like optimlab.lab.engine
    by_id: dict[str, RunConfig]
    engine_kw: dict[str, Any]
    progress: ProgressFn | None
    max_batch: int | None
    dispatch: Any = None  # None: batches run here; else e.g. ray_engine.RayDispatch
    threads: int | None = None  # torch threads for torch problems
    counts: RunCounts = field(default_factory=RunCounts)
    done: int = 0  # run-steps done (finished before, computed, failed)

    @property
    def total(self) -> int:
        return sum(c.steps for c in self.by_id.values())

    def report(self) -> None:
        if self.progress:
            self.progress(min(self.done, self.total), self.total)


def load_problem(name: str, kwargs: dict[str, Any]) -> Any:
    """The problem object for a name and its keyword arguments."""
    from .. import problems

    return problems.get(name, **kwargs)


def _batches(configs: Sequence[RunConfig], max_runs: int | None) -> list[list[RunConfig]]:
    """Group runs that the engine can run together: same problem and budget, one optimizer
    and schedule per batch (learning rates, other hyperparameters and seeds vary inside)."""
    groups: dict[str, list[RunConfig]] = {}
    for cfg in configs:
        key = json.dumps(
            [
                cfg.problem,
                dict(cfg.problem_kwargs),
                cfg.steps,
                cfg.optimizer,
                cfg.schedule,
                dict(cfg.schedule_kwargs),
            ],
            sort_keys=True,
            default=str,
        )
        groups.setdefault(key, []).append(cfg)
    out: list[list[RunConfig]] = []
    for group in groups.values():
        size = max_runs or len(group)
        out.extend(group[i : i + size] for i in range(0, len(group), size))
    return out


def execute(
    configs: Sequence[RunConfig],
    out: str,
    *,
    batched: bool = True,
    eval_every: int | None = None,
    divergence_factor: float = 1e3,
    max_batch: int | None = None,
    progress: ProgressFn | None = None,
    stale_after: float = 600.0,
    poll: float = 0.5,
    engine: Any = None,
    address: str | None = None,
    torch_threads: int | None = None,
) -> RunCounts:
    """Compute every run of ``configs`` not yet in the store of folder ``out``.

    ``torch_threads`` sets torch's intra-op threads while torch problems run (restored
    after): the lab's models are small, and one thread per process avoids the
    oversubscription that makes tiny matmuls several times slower on a busy machine.
    ``engine`` is ``"local"`` (the default), ``"ray"`` (batches as Ray tasks on the
    cluster at ``address``, else on ``RAY_ADDRESS`` or a local one started here), or a
    module like ``optimlab.lab.engine`` to run batches with (tests inject failures).
    """
    for name, value in (("torch_threads", torch_threads), ("max_batch", max_batch)):
        integer(name, value, 1, optional=True)
    engine, dispatch = _dispatch(engine, address)
    engine_kw = {
        "batched": batched,
        "eval_every": integer("eval_every", eval_every, 1, optional=True),
        "divergence_factor": real("divergence_factor", divergence_factor, 1, low_open=True),
    }
    by_id = {c.run_id: c for c in configs}
    with Store(out) as store:
        s = _Session(
            store, engine or default_engine, by_id, engine_kw, progress, max_batch, dispatch
        )
        s.threads = torch_threads
        s.counts.requested = len(configs)
        s.counts.requeued_stale = store.requeue_stale(stale_after)
        s.counts.skipped = store.add(by_id.values())["done"]
        status = store.status_of(list(by_id))
        s.done = sum(by_id[r].steps for r, st in status.items() if st in FINAL)
        s.report()
        try:
            todo = [c for c in by_id.values() if status.get(c.run_id) not in FINAL]
            with _threads(torch_threads, todo):
                _run_batches(s, _batches(todo, max_batch))
                _wait_for_others(s, stale_after, poll)
        except BaseException:
            # give claimed runs back; if even that fails (a full disk), the first error is
            # the one to report, and the next run requeues them (their process is gone)
            with contextlib.suppress(StoreFault):
                store.release()
            raise
    return s.counts


@contextlib.contextmanager
def _threads(n: int | None, configs: Sequence[RunConfig]) -> Iterator[None]:
    kinds = {
        _problem_kind(c.problem, json.dumps(dict(c.problem_kwargs), sort_keys=True))
        for c in configs
    }
    if n is None or "torch" not in kinds:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=64)
def _problem_kind(name: str, kwargs_json: str) -> str:
    try:
        return str(load_problem(name, json.loads(kwargs_json)).kind)
    except Exception:  # the batch itself will report the problem's error
        return "unknown"


def _dispatch(engine: Any, address: str | None) -> tuple[Any, Any]:
    """The engine module and the dispatcher (None: batches run here) that ``engine`` names."""
    if isinstance(engine, str):
        choice("engine", engine, ENGINES)
    if engine == "ray":
        from .ray_engine import RayDispatch

        return None, RayDispatch(address)
    if address is not None:
        raise ValueError(f"address is for engine 'ray', got engine {engine or 'local'!r}")
    return (None if engine == "local" else engine), None


@dataclass(frozen=True)
class Job:
    """One batch as plain data: what a worker needs to compute its traces."""

    problem: tuple[str, dict[str, Any]]  # (name, kwargs)
    settings: list[Any]  # the engine's Setting objects
    steps: int
    options: dict[str, Any]  # the engine's keyword arguments (batched, eval_every, ...)
    threads: int | None = None  # torch threads a worker should use (a torch problem)

    def run(self, engine: Any, progress: Callable[[int], None] | None = None) -> list[Any]:
        """The batch's traces, in the order of ``settings``."""
        traces = engine.run(
            self.problem, self.settings, self.steps, progress=progress, **self.options
        )
        if len(traces) != len(self.settings):
            raise RuntimeError(
                f"engine returned {len(traces)} traces for {len(self.settings)} settings"
            )
        return traces


def _job(s: _Session, configs: list[RunConfig]) -> Job:
    first = configs[0]
    settings = [
        s.engine.Setting(
            optimizer=c.optimizer,
            hyperparams=dict(c.hyperparams),
            schedule=c.schedule,
            schedule_kwargs=dict(c.schedule_kwargs),
            seed=c.seed,
        )
        for c in configs
    ]
    kwargs = dict(first.problem_kwargs)
    torch_problem = _problem_kind(first.problem, json.dumps(kwargs, sort_keys=True)) == "torch"
    threads = s.threads if torch_problem else None
    return Job((first.problem, kwargs), settings, first.steps, s.engine_kw, threads)


def _run_batches(s: _Session, batches: list[list[RunConfig]]) -> None:
    """Claim and compute ``batches``: one after another here, or all at once by the
    dispatcher's workers (results written here as they come back)."""
    if s.dispatch is None:
        for batch in batches:
            _run_batch(s, batch)
        return
    claimed = [configs for batch in batches if (configs := _claim(s, batch))]
    jobs = [_job(s, configs) for configs in claimed]
    with contextlib.closing(s.dispatch.map(s.engine, jobs, s.store.heartbeat)) as results:
        for i, result in results:
            _record(s, claimed[i], s.done, result)


def _claim(s: _Session, batch: list[RunConfig]) -> list[RunConfig]:
    """The runs of ``batch`` this process now holds (queued ones, claimed in the store)."""
    claimed = set(s.store.claim([c.run_id for c in batch]))
    return [c for c in batch if c.run_id in claimed]


def _run_batch(s: _Session, batch: list[RunConfig]) -> None:
    """Claim the batch's queued runs, compute them with the engine and store their traces
    (or mark them failed if the engine raised)."""
    configs = _claim(s, batch)
    if not configs:
        return
    start, last_beat = s.done, [time.monotonic()]

    def on_steps(n_steps: int) -> None:  # the engine's (setting, step) pairs done
        s.done = start + n_steps
        s.report()
        if time.monotonic() - last_beat[0] > 5.0:
            last_beat[0] = time.monotonic()
            s.store.heartbeat()

    try:
        result: list[Any] | Exception = _job(s, configs).run(s.engine, progress=on_steps)
    except Exception as exc:  # the engine failed on this batch: record it, go on with others
        result = exc
    _record(s, configs, start, result)


def _record(s: _Session, configs: list[RunConfig], start: int, result: Any) -> None:
    """Write a batch's traces (or mark its runs failed with the engine's error); ``start``
    is the progress count before the batch."""
    steps = configs[0].steps
    s.done = start + len(configs) * steps
    if isinstance(result, BaseException):
        message = f"{type(result).__name__}: {result}"
        s.store.fail([c.run_id for c in configs], message)
        s.counts.failed += len(configs)
        s.counts.errors.append(message)
        return
    results = {c.run_id: t for c, t in zip(configs, result, strict=True)}
    written = s.store.finish(results)
    s.counts.computed += len(written)
    s.counts.diverged += sum(results[r].status == "diverged" for r in written)
    s.report()


def _wait_for_others(s: _Session, stale_after: float, poll: float) -> None:
    """Runs that another process held when we got to them: wait for them, or take them
    over if that process dies."""
    run_ids = list(s.by_id)
    while True:
        status = s.store.status_of(run_ids)
        open_ids = [r for r, st in status.items() if st not in FINAL and st != "failed"]
        if not open_ids:
            break
        queued = [s.by_id[r] for r in open_ids if status[r] == "queued"]
        _run_batches(s, _batches(queued, s.max_batch))
        if not queued:
            time.sleep(poll)
            s.store.requeue_stale(stale_after)
    final = s.store.status_of(run_ids)
    counts = s.counts
    counts.by_others = max(
        0, sum(st in FINAL for st in final.values()) - counts.skipped - counts.computed
    )
    counts.failed_by_others = max(0, sum(st == "failed" for st in final.values()) - counts.failed)
    s.done = s.total
    s.report()
