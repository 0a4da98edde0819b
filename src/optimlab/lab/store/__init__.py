"""The results store: one SQLite file per results folder, safe to share and to kill.

SQLite in WAL mode with a busy timeout. A run's row is keyed by ``run_id`` (the hash of its
canonical configuration and the code version) and inserted idempotently; its status goes
``queued -> running (owner, pid, heartbeat) -> finished | diverged | failed``. Claiming is
one ``BEGIN IMMEDIATE`` transaction, so two processes never run the same row; a result (the
engine's ``Trace``) is written in one transaction and only by the claim's owner, so a
finished run is never overwritten and a kill leaves either the whole result or none. Rows
left ``running`` by a dead process are requeued on start. Only tidy data is stored
(numbers and JSON text); nothing is ever unpickled.

``opening`` opens the file and checks its schema, ``lifecycle`` moves runs through their
statuses and writes results, ``reading`` queries them.
"""

from __future__ import annotations

from ..record import FINAL
from .lifecycle import RunLifecycle
from .opening import DB_NAME, METRIC_COLUMNS, RUN_COLUMNS, SCHEMA_VERSION, STATUSES, StoreError
from .reading import RunReading

__all__ = [
    "DB_NAME",
    "FINAL",
    "METRIC_COLUMNS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Store",
    "StoreError",
]


class Store(RunLifecycle, RunReading):
    """The SQLite store of a results folder (created if missing; ``create=False`` refuses
    a folder without one). Use as a context manager, or call ``close()``."""
