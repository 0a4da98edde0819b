"""Before a grid runs: the seeds worth running on each problem, and the size guard (the
number of runs and the size of their results, refused above a limit before anything is
made)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .config import parse_seeds
from .store.sizing import SizeEstimate, check_size, run_bytes
from .tidy import study_label


def honest_seeds(
    problems: dict[str, Any], seeds: int | str | Sequence[int]
) -> tuple[dict[str, list[int]], list[str]]:
    """Per problem (by label) the seeds worth running, and a note for each problem on
    which seeds cannot change anything (there only the first seed runs)."""
    seed_list = parse_seeds(seeds)
    out: dict[str, list[int]] = {}
    notes = []
    for label, problem in problems.items():
        changes = tuple(problem.seed_changes)
        out[label] = seed_list if changes or len(seed_list) == 1 else seed_list[:1]
        if not changes and len(seed_list) > 1:
            hint = (
                "; add start=random to draw the start from the seed"
                if problem.kind == "function"
                else ""
            )
            notes.append(
                f"{label}: seeds change nothing here, so one run per setting (seed "
                f"{seed_list[0]}) instead of {len(seed_list)} identical ones{hint}"
            )
    return out, notes


def guard_size(
    grids: Sequence[tuple[Any, int]],
    steps: int,
    out: str | None,
    max_store_bytes: float | None,
    on_estimate: Callable[[SizeEstimate], None] | None,
) -> None:
    """The size guard: ``grids`` pairs each problem with its number of runs. Above
    ``max_store_bytes`` (None: no limit) the grid is refused with :class:`StoreTooLarge`,
    before any run or store is made; else the estimate goes to ``on_estimate``."""
    total = 0.0
    for p, runs in grids:
        trajectory = p.kind == "function" and getattr(p, "dim", 0) == 2
        total += runs * run_bytes(steps, trajectory)
    estimate = SizeEstimate(sum(runs for _, runs in grids), total)
    check_size(estimate, max_store_bytes, out)
    if on_estimate is not None:
        on_estimate(estimate)


def plan(
    specs: list[tuple[str, dict[str, Any]]],
    seeds: int | str | Sequence[int],
    steps: int,
    out: str | None,
    max_store_bytes: float | None,
    on_estimate: Callable[[SizeEstimate], None] | None,
    runs: Callable[[list[int]], int],
) -> tuple[dict[str, list[int]], list[str]]:
    """The seeds worth running per problem and their notes (:func:`honest_seeds`), after
    the size guard passed on the grid: ``runs(seeds)`` counts one problem's runs."""
    from .. import problems as registry

    built = {study_label(name, kwargs): registry.get(name, **kwargs) for name, kwargs in specs}
    seed_lists, notes = honest_seeds(built, seeds)
    grids = [(problem, runs(seed_lists[label])) for label, problem in built.items()]
    guard_size(grids, steps, out, max_store_bytes, on_estimate)
    return seed_lists, notes
