"""Planning a run: validate settings, group the ones that can run together, record traces.

A group is settings with one optimizer and equal non-numeric hyperparameters (flags such
as ``amsgrad``); its numeric hyperparameters become arrays with one entry per setting,
and its schedules a table of learning rates ``(K, steps)``, so settings with different
schedules still run together.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..rules.base import Rule
from ..rules.registry import get_rule

LOSS_FLOOR = 1e-2  # divergence threshold = factor * max(|initial loss|, LOSS_FLOOR)


@dataclass
class Group:
    """Settings run together: positions in the caller's list and their stacked values."""

    rule: Rule
    positions: list[int]
    seeds: list[int]
    floats: dict[str, np.ndarray]  # numeric hyperparameters except lr, shape (K,)
    flags: dict[str, Any]  # bool/int hyperparameters and ``None`` options, equal over the group
    lr: np.ndarray  # (K, steps) learning rate at each step (base lr x schedule)

    @property
    def size(self) -> int:
        return len(self.positions)

    def split(self) -> list[Group]:
        """One group per setting."""
        return [
            dataclasses.replace(
                self,
                positions=[pos],
                seeds=[seed],
                floats={k: v[j : j + 1] for k, v in self.floats.items()},
                lr=self.lr[j : j + 1],
            )
            for j, (pos, seed) in enumerate(zip(self.positions, self.seeds, strict=True))
        ]


def schedule_table(name: str | None, kwargs: Mapping[str, Any], steps: int) -> np.ndarray:
    """Multipliers ``s(0..steps-1)`` of ``schedules.get(name, total_steps=steps, **kwargs)``."""
    if name is None:
        return np.ones(steps)
    from .. import schedules

    if "total_steps" in kwargs:
        raise ValueError(
            "schedule_kwargs must not set total_steps: the run's steps are used "
            f"(got total_steps={kwargs['total_steps']!r})"
        )
    sched = schedules.get(name, total_steps=steps, **dict(kwargs))
    probe = np.unique(np.linspace(0, steps - 1, min(steps, 65)).astype(int))
    try:  # one vectorized call where the schedule takes arrays, checked against scalar calls
        table = np.asarray(sched(np.arange(steps)), dtype=np.float64)
        scalar = np.array([float(sched(int(i))) for i in probe])
        if table.shape != (steps,) or not np.allclose(table[probe], scalar, rtol=1e-12, atol=0):
            raise TypeError
    except (TypeError, ValueError):  # scalar-only schedules (Python `if` on the step)
        table = np.array([float(sched(i)) for i in range(steps)])
    if not np.isfinite(table).all() or (table < 0).any():
        raise ValueError(f"schedule {name!r} gave a negative or non-finite multiplier")
    return table


def plan(settings: Sequence[Any], steps: int) -> list[Group]:
    """Validate every setting (before anything runs) and group them."""
    tables: dict[str, np.ndarray] = {}
    keyed: dict[tuple[Any, ...], list[tuple[int, dict[str, Any], np.ndarray]]] = {}
    for pos, s in enumerate(settings):
        rule = get_rule(s.optimizer)
        if not isinstance(s.hyperparams, Mapping):
            raise ValueError(f"hyperparams must be a mapping, got {s.hyperparams!r}")
        hp = rule.validate(**s.hyperparams)
        if isinstance(s.seed, bool) or not isinstance(s.seed, int | np.integer) or s.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {s.seed!r}")
        key_s = repr((s.schedule, sorted(dict(s.schedule_kwargs).items())))
        if key_s not in tables:
            tables[key_s] = schedule_table(s.schedule, s.schedule_kwargs, steps)
        # flags (bool/int) and optional numbers left at None must agree within a group
        flags = tuple(
            (h.name, hp[h.name])
            for h in rule.hyperparams
            if h.kind != "float" or hp[h.name] is None
        )
        keyed.setdefault((rule.name, flags), []).append((pos, hp, tables[key_s]))
    groups = []
    for (name, flags), members in keyed.items():
        rule = get_rule(name)
        fixed = dict(flags)
        float_names = [
            h.name
            for h in rule.hyperparams
            if h.kind == "float" and h.name != "lr" and h.name not in fixed
        ]
        groups.append(
            Group(
                rule=rule,
                positions=[pos for pos, _, _ in members],
                seeds=[int(settings[pos].seed) for pos, _, _ in members],
                floats={n: np.array([float(hp[n]) for _, hp, _ in members]) for n in float_names},
                flags=fixed,
                lr=np.stack([float(hp["lr"]) * table for _, hp, table in members]),
            )
        )
    return groups


def check_args(steps: Any, eval_every: Any, divergence_factor: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if eval_every is not None and (
        isinstance(eval_every, bool)
        or not isinstance(eval_every, int | np.integer)
        or eval_every < 1
    ):
        raise ValueError(f"eval_every must be None or an integer >= 1, got {eval_every!r}")
    check_divergence_factor(divergence_factor)


def check_divergence_factor(divergence_factor: Any) -> None:
    if (
        isinstance(divergence_factor, bool)
        or not isinstance(divergence_factor, int | float)
        or not (math.isfinite(divergence_factor) and divergence_factor > 1)
    ):
        raise ValueError(
            f"divergence_factor must be a finite number > 1, got {divergence_factor!r}"
        )


def eval_steps(steps: int, eval_every: int | None) -> set[int]:
    """Steps (0 = before any update) at which to evaluate: every ``eval_every`` and the end."""
    marks = set(range(0, steps + 1, eval_every)) if eval_every else set()
    return marks | {steps}


@dataclass
class Recorder:
    """Per-step records of one group, ``(steps, K)`` arrays filled as rows advance.

    Learning rates are not recorded per step: they are the group's table ``lr``. A row's
    record ends at ``steps`` unless it diverged (then at its divergence step, included).
    """

    steps: int
    size: int
    dim: int | None = None  # record the trajectory of (dim,) points when set
    loss: np.ndarray = field(init=False)
    grad_norm: np.ndarray = field(init=False)
    update_norm: np.ndarray = field(init=False)
    dt: np.ndarray = field(init=False)
    diverged: list[int | None] = field(init=False)
    evals: list[list[tuple[int, dict[str, float]]]] = field(init=False)
    trajectory: np.ndarray | None = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.steps, self.size)
        self.loss, self.grad_norm, self.update_norm, self.dt = (
            np.full(shape, np.nan) for _ in range(4)
        )
        self.diverged = [None] * self.size
        self.evals = [[] for _ in range(self.size)]
        self.trajectory = (
            np.full((self.steps + 1, self.size, self.dim), np.nan) if self.dim is not None else None
        )

    def step(self, t: int, rows: np.ndarray, loss: Any, gnorm: Any, unorm: Any, dt: float) -> None:
        """Record step ``t`` for ``rows`` (all rows when ``rows`` is the full range)."""
        idx = slice(None) if len(rows) == self.size else rows
        self.loss[t, idx], self.grad_norm[t, idx], self.update_norm[t, idx] = loss, gnorm, unorm
        self.dt[t, idx] = dt

    def diverge(self, t: int, rows: np.ndarray, loss: Any, gnorm: Any) -> None:
        """Rows that tripped the divergence rule at step ``t``: their last record, no update."""
        self.loss[t, rows], self.grad_norm[t, rows], self.dt[t, rows] = loss, gnorm, 0.0
        for r in rows:
            self.diverged[int(r)] = t

    def add_evals(self, t: int, rows: np.ndarray, metrics: Mapping[str, Any]) -> None:
        values = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in metrics.items()}
        for i, r in enumerate(rows):
            self.evals[int(r)].append((t, {k: float(v[i]) for k, v in values.items()}))

    def traces(
        self, settings: Sequence[Any], group: Group, trace_cls: Callable[..., Any]
    ) -> list[tuple[int, Any]]:
        out = []
        for j, pos in enumerate(group.positions):
            div = self.diverged[j]
            n = self.steps if div is None else div + 1
            traj = (
                None if self.trajectory is None else self.trajectory[: n + (div is None), j].copy()
            )
            out.append(
                (
                    pos,
                    trace_cls(
                        setting=settings[pos],
                        status="finished" if div is None else "diverged",
                        loss=self.loss[:n, j].copy(),
                        lr=group.lr[j, :n].copy(),
                        grad_norm=self.grad_norm[:n, j].copy(),
                        update_norm=self.update_norm[:n, j].copy(),
                        time=np.cumsum(self.dt[:n, j]),
                        evals=self.evals[j],
                        trajectory=traj,
                        diverged_step=div,
                    ),
                )
            )
        return out


def take(tree: Any, keep: Any, size: int) -> Any:
    """Rows ``keep`` of every array in ``tree`` whose leading axis has length ``size``."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(take(v, keep, size) for v in tree))
    if isinstance(tree, tuple | list):
        return type(tree)(take(v, keep, size) for v in tree)
    if isinstance(tree, dict):
        return {k: take(v, keep, size) for k, v in tree.items()}
    shape = getattr(tree, "shape", None)
    if shape is not None and len(shape) >= 1 and shape[0] == size:
        return tree[keep]
    return tree
