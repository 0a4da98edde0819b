"""The results store: one SQLite file per results folder, safe to share and to kill.

SQLite in WAL mode with a busy timeout. A run's row is keyed by ``run_id`` (the hash of its
canonical configuration and the code version) and inserted idempotently; its status goes
``queued -> running (owner, pid, heartbeat) -> finished | diverged | failed``. Claiming is
one ``BEGIN IMMEDIATE`` transaction, so two processes never run the same row; a result (the
engine's ``Trace``) is written in one transaction and only by the claim's owner, so a
finished run is never overwritten and a kill leaves either the whole result or none. Rows
left ``running`` by a dead process are requeued on start. Only tidy data is stored
(numbers and JSON text); nothing is ever unpickled.

Faults of the environment (a full disk, an I/O error, a read-only folder, a corrupted
file, a lock held too long) raise one :class:`StoreFault` naming the file and what to do,
and never lose a finished run; a file that is not an optimlab store raises
:class:`StoreError` and is left byte-identical. ``Store(folder, readonly=True)`` reads
without writing anything, also in a read-only folder.

``opening`` opens the file and checks its schema, ``lifecycle`` moves runs through their
statuses and writes results, ``reading`` queries them.
"""

from __future__ import annotations

from ..record import FINAL
from .faults import StoreFault
from .lifecycle import RunLifecycle
from .opening import (
    DB_NAME,
    METRIC_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    STATUSES,
    StoreError,
)
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
    "StoreFault",
]


class Store(RunLifecycle, RunReading):
    """The SQLite store of a results folder (created if missing; ``create=False`` refuses
    a folder without one; ``readonly=True`` only reads, and never writes anything). Use
    as a context manager, or call ``close()``."""
