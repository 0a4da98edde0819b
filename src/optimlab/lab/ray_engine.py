"""Sweeps on Ray: the lab's batches run as Ray tasks; this process writes every result.

``execute(..., engine="ray")`` (``optimlab sweep/compare --engine ray [--address ...]``)
hands each batch the runner has claimed (one optimizer and schedule on one problem,
learning rates, hyperparameters and seeds stacked) to :class:`RayDispatch`, which submits
them all at once as Ray tasks (one CPU each) and yields their traces as they come back.
A task is the same function the local engine runs (``runner.Job.run``), so a batch gives
the same records wherever it runs. SQLite is not shared across machines: workers only
return records, and the driver writes them to the store, so the store stays the single
source of truth and a rerun recomputes nothing that is in it.

Faults: a worker process that dies mid-task (killed, out of memory, its node lost) has
its task rerun on another worker by Ray (``max_retries``, 3 by default); an exception
raised by the engine is not retried and fails that batch's runs, as it would locally.
While tasks run, the driver heartbeats its claimed rows, so another process sharing the
folder does not take them over; if the driver dies, its rows are requeued as usual and
its tasks die with its Ray job.

Ray is an optional extra (``pip install 'optimlab[ray]'``). Workers import optimlab, so
every node of a cluster needs it installed (the same version as the driver).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

INSTALL = "pip install 'optimlab[ray]'"
TASK_NAME = "optimlab_batch"  # a worker running a batch is titled ray::optimlab_batch


def require_ray() -> Any:
    """The ``ray`` module, or an ImportError saying in one line how to install it."""
    try:
        import ray  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ImportError(f"engine 'ray' needs Ray, which is not installed: {INSTALL}") from None
    return ray


def optimlab_batch(engine: Any, job: Any) -> list[Any]:
    """A Ray task: one batch's traces (``job.run(engine)``), with ``job.threads`` torch
    threads when set (a torch problem; as ``--threads`` does locally)."""
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    return job.run(engine)


class RayDispatch:
    """Runs batches as Ray tasks on the cluster at ``address`` (``None``: the cluster in
    ``RAY_ADDRESS``, else a local one started on first use, with one task per CPU).

    ``map(engine, jobs, heartbeat)`` yields ``(index, traces or exception)`` per job as
    each finishes, calling ``heartbeat()`` at least every ``poll`` seconds while waiting.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        max_retries: int = 3,
        poll: float = 5.0,
    ) -> None:
        self.ray = require_ray()
        self.address, self.max_retries, self.poll = address, max_retries, poll

    def connect(self) -> None:
        """Join the cluster (or start a local one) unless this process already has."""
        ray = self.ray
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"logging_level": logging.WARNING}
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            options["include_dashboard"] = False  # a new local cluster: keep it light
        ray.init(address=self.address, **options)

    def map(
        self, engine: Any, jobs: Sequence[Any], heartbeat: Callable[[], None]
    ) -> Iterator[tuple[int, Any]]:
        """Submit every job; yield ``(index, traces)`` or ``(index, exception)`` as they end."""
        if not jobs:
            return
        ray = self.ray
        self.connect()
        task = ray.remote(optimlab_batch).options(
            name=TASK_NAME, num_cpus=1, max_retries=self.max_retries
        )
        pending = {task.remote(engine, job): i for i, job in enumerate(jobs)}
        try:
            last_beat = time.monotonic()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll)
                if time.monotonic() - last_beat >= self.poll:
                    heartbeat()
                    last_beat = time.monotonic()
                for ref in done:
                    yield pending.pop(ref), self._result(ref)
        finally:
            for ref in pending:  # interrupted: stop what is still running
                ray.cancel(ref, force=True)

    def _result(self, ref: Any) -> Any:
        """A task's traces, or the exception that ended it (the engine's own, unwrapped)."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            return cause if isinstance(cause, Exception) else exc
        except ray.exceptions.RayError as exc:  # the worker died more than max_retries times
            return exc
