"""Orchestration: turn a list of run configurations into stored results.

The runner inserts every run in the store (idempotently), requeues runs a dead process
left ``running``, then claims and computes the queued ones batch by batch with the
engine, writing each batch's traces in one transaction. Finished runs are never
recomputed; runs another live process holds are waited for, so the returned results
are complete. Interrupting (Ctrl+C, SIGTERM) gives the claimed runs back to the queue.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.checks import integer, real
from . import engine as default_engine
from .config import RunConfig
from .store import FINAL, Store, StoreFault

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
    torch_threads: int | None = None,
) -> RunCounts:
    """Compute every run of ``configs`` not yet in the store of folder ``out``.

    ``torch_threads`` sets torch's intra-op threads while torch problems run (restored
    after): the lab's models are small, and one thread per process avoids the
    oversubscription that makes tiny matmuls several times slower on a busy machine.
    ``engine`` replaces ``optimlab.lab.engine`` (tests inject failures with it).
    """
    for name, value in (("torch_threads", torch_threads), ("max_batch", max_batch)):
        integer(name, value, 1, optional=True)
    engine_kw = {
        "batched": batched,
        "eval_every": integer("eval_every", eval_every, 1, optional=True),
        "divergence_factor": real("divergence_factor", divergence_factor, 1, low_open=True),
    }
    by_id = {c.run_id: c for c in configs}
    with Store(out) as store:
        s = _Session(store, engine or default_engine, by_id, engine_kw, progress, max_batch)
        s.counts.requested = len(configs)
        s.counts.requeued_stale = store.requeue_stale(stale_after)
        s.counts.skipped = store.add(by_id.values())["done"]
        status = store.status_of(list(by_id))
        s.done = sum(by_id[r].steps for r, st in status.items() if st in FINAL)
        s.report()
        try:
            todo = [c for c in by_id.values() if status.get(c.run_id) not in FINAL]
            with _threads(torch_threads, todo):
                for batch in _batches(todo, max_batch):
                    _run_batch(s, batch)
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


def _run_batch(s: _Session, batch: list[RunConfig]) -> None:
    """Claim the batch's queued runs, compute them with the engine and store their traces
    (or mark them failed if the engine raised)."""
    claimed = set(s.store.claim([c.run_id for c in batch]))
    configs = [c for c in batch if c.run_id in claimed]
    if not configs:
        return
    start, last_beat = s.done, [time.monotonic()]

    def on_steps(n_steps: int) -> None:  # the engine's (setting, step) pairs done
        s.done = start + n_steps
        s.report()
        if time.monotonic() - last_beat[0] > 5.0:
            last_beat[0] = time.monotonic()
            s.store.heartbeat()

    first = configs[0]
    try:
        problem = (first.problem, dict(first.problem_kwargs))  # plain data: a spec
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
        traces = s.engine.run(problem, settings, first.steps, progress=on_steps, **s.engine_kw)
        if len(traces) != len(configs):
            raise RuntimeError(f"engine returned {len(traces)} traces for {len(configs)} settings")
    except Exception as exc:  # the engine failed on this batch: record it, go on with others
        message = f"{type(exc).__name__}: {exc}"
        s.store.fail([c.run_id for c in configs], message)
        s.counts.failed += len(configs)
        s.counts.errors.append(message)
        s.done = start + len(configs) * first.steps
        return
    results = {c.run_id: t for c, t in zip(configs, traces, strict=True)}
    written = s.store.finish(results)
    s.counts.computed += len(written)
    s.counts.diverged += sum(results[r].status == "diverged" for r in written)
    s.done = start + len(configs) * first.steps
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
        for batch in _batches(queued, s.max_batch):
            _run_batch(s, batch)
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
