"""StopOnSignal: a signal becomes a flag inside the block; handlers restored after."""

from __future__ import annotations

import os
import signal

import pytest

from optimlab.train import StopOnSignal


def test_signal_sets_the_flag_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert not stop.requested and stop.exit_code == 1
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        assert stop.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_goes_to_the_previous_handler() -> None:
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        with StopOnSignal([signal.SIGUSR1]) as stop:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert stop.requested and seen == []
            os.kill(os.getpid(), signal.SIGUSR1)
            assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_no_signals_is_refused() -> None:
    with pytest.raises(ValueError, match="signals must name at least one signal"):
        StopOnSignal([])
