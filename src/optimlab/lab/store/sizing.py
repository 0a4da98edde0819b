"""How much a grid will write into the store, and the guard against asking for far too much.

A run stores one row (its configuration and final numbers), one row of metrics per step
and, on 2-D test functions, one trajectory point per step. Measured on SQLite stores of
50 to 1000 steps (``benchmarks/report_memory.py`` builds such stores), that is about
``BYTES_PER_RUN + steps * (BYTES_PER_STEP + BYTES_PER_POINT)`` bytes, within about 10%.
A typo such as ``--lrs 1e-3:1:100000`` asks for millions of runs: above
``MAX_STORE_BYTES`` a sweep is refused before anything is computed or written, unless the
caller confirms (``max_store_bytes=None`` in Python, ``--yes`` on the command line).
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_RUN = 1500  # the run's row: configuration JSON, statuses, final numbers, indexes
BYTES_PER_STEP = 85  # one row of per-step metrics, keyed by the run id
BYTES_PER_POINT = 52  # one point of a 2-D trajectory
MAX_STORE_BYTES = 1e9  # the default guard: 1 GB of results


def run_bytes(steps: int, trajectory: bool) -> float:
    """About how many bytes one run of ``steps`` steps takes in the store."""
    return BYTES_PER_RUN + steps * (BYTES_PER_STEP + (BYTES_PER_POINT if trajectory else 0))


def human(nbytes: float) -> str:
    """``"12 MB"``, ``"1.4 GB"``, ``"640 GB"``: a size in decimal units."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.2g} {unit}"
    return f"{nbytes:.0f} bytes"


@dataclass(frozen=True)
class SizeEstimate:
    """A grid's number of runs and about how many bytes of results they write."""

    runs: int
    bytes: float

    def text(self) -> str:
        return f"{self.runs:,} runs, about {human(self.bytes)} of results"


class StoreTooLarge(ValueError):
    """A grid whose results would exceed the size guard (see :func:`check_size`)."""

    def __init__(self, estimate: SizeEstimate, limit: float, folder: str | None) -> None:
        self.estimate, self.limit, self.folder = estimate, limit, folder
        super().__init__(self.message("max_store_bytes=None"))

    def message(self, confirm: str) -> str:
        """The refusal, telling how to confirm with ``confirm`` (an argument or a flag)."""
        where = f" in {self.folder!r}" if self.folder else ""
        return (
            f"this grid has {self.estimate.runs:,} runs, about {human(self.estimate.bytes)} "
            f"of results{where}, over the {human(self.limit)} guard: check the grid "
            f"(learning rates, seeds, hyperparameter lists), or pass {confirm} to run it anyway"
        )


def check_size(estimate: SizeEstimate, limit: float | None, folder: str | None) -> None:
    """Refuse (:class:`StoreTooLarge`) a grid above ``limit`` bytes; None means no limit."""
    if limit is not None and estimate.bytes > limit:
        raise StoreTooLarge(estimate, limit, folder)
