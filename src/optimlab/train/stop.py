"""Stop cleanly on SIGTERM or Ctrl+C: finish the current step, save, exit non-zero.

::

    with StopOnSignal() as stop:
        while train_step.step_count < total:
            train_step.step(next_batch())
            if stop.requested:
                checkpoints.save()
                print(f"stopped by {stop.signal_name} at step {train_step.step_count}; "
                      "run the same command again to resume", file=sys.stderr)
                raise SystemExit(stop.exit_code)

A second signal while a stop is pending is not deferred: the previous handler runs (a
second Ctrl+C interrupts at once).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any


class StopOnSignal:
    """Turn the given signals into a ``requested`` flag while the ``with`` block runs."""

    def __init__(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals = tuple(signals)
        if not self.signals:
            raise ValueError("signals must name at least one signal, got none")
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    @property
    def signal_name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a signal: 128 + its number (1 if none was received)."""
        return 1 if self.received is None else 128 + self.received

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # a second signal: let the previous handler act
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            if callable(previous):
                previous(signum, frame)
            else:
                signal.raise_signal(signum)
            return
        self.received = signum

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("StopOnSignal must be entered in the main thread")
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous.clear()
