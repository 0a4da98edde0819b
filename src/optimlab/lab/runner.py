"""Orchestration: turn a list of run configurations into stored results.

The runner inserts every run in the store (idempotently), requeues runs a dead process
left ``running``, then claims and computes the queued ones batch by batch with the
engine, writing each batch's results in one transaction. Finished runs are never
recomputed; runs another live process holds are waited for, so the returned results
are complete. Interrupting (Ctrl+C, SIGTERM) gives the claimed runs back to the queue.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ._plan import check_divergence_factor
from .config import RunConfig
from .store import FINAL, RunResult, Store

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


def _load_engine(engine: ModuleType | None) -> ModuleType:
    return engine if engine is not None else importlib.import_module("optimlab.lab.engine")


def load_problem(name: str, kwargs: dict[str, Any]) -> Any:
    """The problem object for a name and its keyword arguments."""
    problems = importlib.import_module("optimlab.problems")
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
    engine: ModuleType | None = None,
    torch_threads: int | None = None,
) -> RunCounts:
    """Compute every run of ``configs`` not yet in the store of folder ``out``.

    ``torch_threads`` sets torch's intra-op threads while torch problems run (restored
    after): the lab's models are small, and one thread per process avoids the
    oversubscription that makes tiny matmuls several times slower on a busy machine.
    """
    _check_args(torch_threads=torch_threads, max_batch=max_batch, eval_every=eval_every)
    check_divergence_factor(divergence_factor)
    eng = _load_engine(engine)
    counts = RunCounts(requested=len(configs))
    by_id = {c.run_id: c for c in configs}
    total = sum(c.steps for c in by_id.values())
    done_units = [0]
    with Store(out) as store:
        counts.requeued_stale = store.requeue_stale(stale_after)
        added = store.add(by_id.values())
        counts.skipped = added["done"]
        status = store.status_of(list(by_id))
        done_units[0] = sum(by_id[r].steps for r, s in status.items() if s in FINAL)
        if progress:
            progress(done_units[0], total)
        try:
            todo = [c for c in by_id.values() if status.get(c.run_id) not in FINAL]
            with _threads(torch_threads, todo):
                for batch in _batches(todo, max_batch):
                    _run_batch(
                        store,
                        eng,
                        batch,
                        counts,
                        done_units,
                        total,
                        progress,
                        batched=batched,
                        eval_every=eval_every,
                        divergence_factor=divergence_factor,
                    )
                _wait_for_others(
                    store,
                    eng,
                    by_id,
                    counts,
                    done_units,
                    total,
                    progress,
                    batched=batched,
                    eval_every=eval_every,
                    divergence_factor=divergence_factor,
                    max_batch=max_batch,
                    stale_after=stale_after,
                    poll=poll,
                )
        except BaseException:
            store.release()
            raise
    return counts


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


def _check_args(**optional_ints: Any) -> None:
    """Each must be None or an integer >= 1 (checked before anything runs)."""
    for name, value in optional_ints.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")


def _run_batch(
    store: Store,
    eng: ModuleType,
    batch: list[RunConfig],
    counts: RunCounts,
    done_units: list[int],
    total: int,
    progress: ProgressFn | None,
    **engine_kw: Any,
) -> None:
    claimed = set(store.claim([c.run_id for c in batch]))
    configs = [c for c in batch if c.run_id in claimed]
    if not configs:
        return
    start_units = done_units[0]
    last_beat = [time.monotonic()]

    def on_steps(n_steps: int) -> None:
        if progress:
            done_units[0] = start_units + n_steps  # engine: (setting, step) pairs done
            progress(min(done_units[0], total), total)
        if time.monotonic() - last_beat[0] > 5.0:
            last_beat[0] = time.monotonic()
            store.heartbeat()

    first = configs[0]
    try:
        problem = load_problem(first.problem, dict(first.problem_kwargs))
        settings = [
            eng.Setting(
                optimizer=c.optimizer,
                hyperparams=dict(c.hyperparams),
                schedule=c.schedule,
                schedule_kwargs=dict(c.schedule_kwargs),
                seed=c.seed,
            )
            for c in configs
        ]
        traces = eng.run(problem, settings, first.steps, progress=on_steps, **engine_kw)
        if len(traces) != len(configs):
            raise RuntimeError(f"engine returned {len(traces)} traces for {len(configs)} settings")
    except Exception as exc:  # the engine failed on this batch: record it, go on with others
        message = f"{type(exc).__name__}: {exc}"
        store.fail([c.run_id for c in configs], message)
        counts.failed += len(configs)
        counts.errors.append(message)
        done_units[0] = start_units + len(configs) * first.steps
        return
    results = [_to_result(c, t) for c, t in zip(configs, traces, strict=True)]
    written = set(store.finish(results))
    counts.computed += len(written)
    counts.diverged += sum(r.status == "diverged" for r in results if r.run_id in written)
    done_units[0] = start_units + len(configs) * first.steps
    if progress:
        progress(min(done_units[0], total), total)


def _to_result(cfg: RunConfig, trace: Any) -> RunResult:
    return RunResult(
        run_id=cfg.run_id,
        status=str(trace.status),
        loss=trace.loss,
        lr=trace.lr,
        grad_norm=trace.grad_norm,
        update_norm=trace.update_norm,
        time=trace.time,
        evals=list(trace.evals or ()),
        trajectory=trace.trajectory,
        diverged_step=None if trace.diverged_step is None else int(trace.diverged_step),
    )


def _wait_for_others(
    store: Store,
    eng: ModuleType,
    by_id: dict[str, RunConfig],
    counts: RunCounts,
    done_units: list[int],
    total: int,
    progress: ProgressFn | None,
    *,
    max_batch: int | None,
    stale_after: float,
    poll: float,
    **engine_kw: Any,
) -> None:
    """Runs that another process held when we got to them: wait for them, or take them
    over if that process dies."""
    while True:
        status = store.status_of(list(by_id))
        open_ids = [r for r, s in status.items() if s not in FINAL and s != "failed"]
        if not open_ids:
            break
        queued = [by_id[r] for r in open_ids if status[r] == "queued"]
        for batch in _batches(queued, max_batch):
            _run_batch(store, eng, batch, counts, done_units, total, progress, **engine_kw)
        if not queued:
            time.sleep(poll)
            store.requeue_stale(stale_after)
    final = store.status_of(list(by_id))
    n_final = sum(s in FINAL for s in final.values())
    counts.by_others = max(0, n_final - counts.skipped - counts.computed)
    counts.failed_by_others = max(0, sum(s == "failed" for s in final.values()) - counts.failed)
    if progress:
        progress(total, total)
