"""Grouping settings that can run together, and validating them before anything runs.

A group is settings with one optimizer and equal non-numeric hyperparameters (flags such
as ``amsgrad``, and optional numbers left at ``None``); its numeric hyperparameters
become arrays with one entry per setting, and its schedules a table of learning rates
``(K, steps)``, so settings with different schedules still run together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.checks import integer, require
from ...rules.base import Rule
from ...rules.registry import get_rule
from ..record import Setting


@dataclass
class Group:
    """Settings run together, their positions in the caller's list and stacked values."""

    rule: Rule
    settings: list[Setting]
    positions: list[int]
    floats: dict[str, np.ndarray]  # numeric hyperparameters except lr, shape (K,)
    flags: dict[str, Any]  # bool/int hyperparameters and ``None`` options, equal over the group
    lr: np.ndarray  # (K, steps) learning rate at each step (base lr x schedule)

    @property
    def size(self) -> int:
        return len(self.settings)

    @property
    def seeds(self) -> list[int]:
        return [int(s.seed) for s in self.settings]

    def split(self) -> list[Group]:
        """One group per setting."""
        return [
            dataclasses.replace(
                self,
                settings=[setting],
                positions=[pos],
                floats={k: v[j : j + 1] for k, v in self.floats.items()},
                lr=self.lr[j : j + 1],
            )
            for j, (setting, pos) in enumerate(zip(self.settings, self.positions, strict=True))
        ]


def schedule_table(name: str | None, kwargs: Mapping[str, Any], steps: int) -> np.ndarray:
    """Multipliers ``s(0..steps-1)`` of ``schedules.get(name, total_steps=steps, **kwargs)``."""
    if name is None:
        return np.ones(steps)
    from ... import schedules

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
    require(
        np.isfinite(table).all() and (table >= 0).all(),
        f"schedule {name!r} gave a negative or non-finite multiplier",
    )
    return table


def _check(setting: Setting) -> tuple[Rule, dict[str, Any]]:
    """The setting's rule and its full, validated hyperparameters."""
    rule = get_rule(setting.optimizer)
    if not isinstance(setting.hyperparams, Mapping):
        raise ValueError(f"hyperparams must be a mapping, got {setting.hyperparams!r}")
    hp = rule.validate(**setting.hyperparams)
    integer("seed", setting.seed, 0)
    return rule, hp


def plan(settings: Sequence[Setting], steps: int) -> list[Group]:
    """Validate every setting (before anything runs) and group them."""
    tables: dict[str, np.ndarray] = {}
    keyed: dict[tuple[Any, ...], list[tuple[int, dict[str, Any], np.ndarray]]] = {}
    for pos, s in enumerate(settings):
        rule, hp = _check(s)
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
                settings=[settings[pos] for pos, _, _ in members],
                positions=[pos for pos, _, _ in members],
                floats={n: np.array([float(hp[n]) for _, hp, _ in members]) for n in float_names},
                flags=fixed,
                lr=np.stack([float(hp["lr"]) * table for _, hp, table in members]),
            )
        )
    return groups
