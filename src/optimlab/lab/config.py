"""What one run of the lab is, in canonical form, and how grids of runs are spelled.

A :class:`RunConfig` is everything that determines a run's result: the problem and its
keyword arguments, the optimizer with every hyperparameter (defaults filled in), the
schedule, the seed and the step budget. Its ``run_id`` hashes that canonical form plus the
code version, so the same request always maps to the same row of the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.checks import integer, real, require
from ..core.specs import parse_value, split_top
from ..core.version import __version__
from ..rules.registry import get_rule

CODE_VERSION = f"optimlab-{__version__}"

LrSpec = str | float | Sequence[float]


@dataclass(frozen=True)
class RunConfig:
    """One run: problem x optimizer x hyperparameters x schedule x seed, for ``steps`` steps."""

    problem: str
    optimizer: str
    hyperparams: Mapping[str, Any]
    steps: int
    seed: int = 0
    schedule: str | None = None
    schedule_kwargs: Mapping[str, Any] = field(default_factory=dict)
    problem_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lr(self) -> float:
        return float(self.hyperparams["lr"])

    def canonical(self) -> dict[str, Any]:
        """The configuration as plain JSON data with sorted keys (what is hashed and stored)."""
        return {
            "problem": self.problem,
            "problem_kwargs": _plain(self.problem_kwargs),
            "optimizer": self.optimizer,
            "hyperparams": _plain(self.hyperparams),
            "schedule": self.schedule,
            "schedule_kwargs": _plain(self.schedule_kwargs),
            "seed": int(self.seed),
            "steps": int(self.steps),
        }

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        text = self.canonical_json() + "|" + CODE_VERSION
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def group_key(self) -> str:
        """The setting without its seed: runs that differ only by seed share this key."""
        d = self.canonical()
        d.pop("seed")
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_canonical(cls, d: Mapping[str, Any]) -> RunConfig:
        return cls(
            problem=d["problem"],
            optimizer=d["optimizer"],
            hyperparams=dict(d["hyperparams"]),
            steps=int(d["steps"]),
            seed=int(d["seed"]),
            schedule=d.get("schedule"),
            schedule_kwargs=dict(d.get("schedule_kwargs") or {}),
            problem_kwargs=dict(d.get("problem_kwargs") or {}),
        )


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(mapping):
        out[str(key)] = _plain_value(str(key), mapping[key])
    return out


def _plain_value(key: str, value: Any) -> Any:
    """A number, bool, string or None, or a list of them (a tuple becomes a list)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list | tuple):
        return [_plain_value(key, v) for v in value]
    if not isinstance(value, str | int | float | bool | type(None)):
        raise ValueError(
            f"{key} must be a number, bool or string (or a list of them), got {value!r}"
        )
    return value


def parse_lrs(spec: LrSpec) -> list[float]:
    """Learning rates from a list, a number, ``"1e-3,1e-2"`` or a log range ``"lo:hi:n"``.

    ``"1e-4:1:9"`` is 9 rates evenly spaced in log10 from 1e-4 to 1 (both included).

    >>> parse_lrs("1e-3:1e-1:3")
    [0.001, 0.01, 0.1]
    """
    if isinstance(spec, str) and ":" in spec:
        parts = spec.strip().split(":")
        if len(parts) != 3:
            raise ValueError(f"lrs range must be 'lo:hi:n' (e.g. 1e-4:1:9), got {spec!r}")
        lo, hi = (_lr(p) for p in parts[:2])
        n = integer("lrs count", parse_value(parts[2]), 1)
        require(lo <= hi, f"lrs range needs 0 < lo <= hi, got {spec!r}")
        values = [lo] if n == 1 else list(np.logspace(math.log10(lo), math.log10(hi), n))
        return [_round(v) for v in values]
    if isinstance(spec, str):
        items: list[Any] = split_top(spec, "lrs")
    elif isinstance(spec, list | tuple | np.ndarray):
        items = list(spec)
    else:
        items = [spec]
    if not items:
        raise ValueError(f"lrs must name at least one learning rate, got {spec!r}")
    return sorted({_round(_lr(v)) for v in items})


def _lr(value: Any) -> float:
    """One learning rate (a number > 0, or its text, e.g. ``"1e-3"`` or ``"nan"``)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)  # "nan" and "inf" too, so that the check names them
    return float(real("lrs", value, 0, low_open=True))


def _round(x: float) -> float:
    """12 significant digits: ``logspace`` noise must not change a run's id."""
    return float(f"{float(x):.12g}")


def parse_seeds(spec: int | str | Sequence[int]) -> list[int]:
    """Seeds from a count (``3`` -> 0, 1, 2), ``"0,5,7"`` or a list (sorted, unique)."""
    if isinstance(spec, str):
        items = [parse_value(p) for p in split_top(spec, "seeds")]
        if len(items) == 1 and "," not in spec:  # a count
            return list(range(integer("seeds", items[0], 1)))
    elif isinstance(spec, list | tuple | np.ndarray):
        items = list(spec)
    else:
        return list(range(integer("seeds", spec, 1)))
    if not items:
        raise ValueError(f"seeds must name at least one seed, got {spec!r}")
    return sorted({integer("seeds", v, 0) for v in items})


def full_hyperparams(optimizer: str, hp: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyperparameter of ``optimizer`` (defaults filled in), validated."""
    rule = get_rule(optimizer)
    full = rule.validate(**hp)
    # a float hyperparameter given as an int (``--hp weight_decay=0``) is the same run as
    # the float: store (and hash) it as a float
    floats = {h.name for h in rule.hyperparams if h.kind == "float"}
    return {
        k: (
            float(v)
            if isinstance(v, float)
            or (k in floats and isinstance(v, int) and not isinstance(v, bool))
            else v
        )
        for k, v in full.items()
    }


def expand_grid(
    problem: str,
    optimizers: Iterable[str],
    lrs: LrSpec | Mapping[str, LrSpec],
    steps: int,
    seeds: int | str | Sequence[int],
    *,
    hyperparams: Mapping[str, Mapping[str, Any | Sequence[Any]]] | None = None,
    schedules: Sequence[tuple[str | None, Mapping[str, Any]]] = ((None, {}),),
    problem_kwargs: Mapping[str, Any] | None = None,
) -> list[RunConfig]:
    """The full grid: optimizer x its lrs x its other hyperparameter values x schedule x seed.

    ``lrs`` is one spec for every optimizer or a mapping optimizer -> spec (a missing
    optimizer uses the ``"default"`` entry). ``hyperparams`` maps an optimizer (or ``"*"``
    for all) to values, each a single value or a list of values to sweep.
    """
    steps = integer("steps", steps, 1)
    seed_list = parse_seeds(seeds)
    configs: list[RunConfig] = []
    for opt_name, spec, axes in _grid_axes(optimizers, lrs, hyperparams):
        names = sorted(axes)
        for lr in parse_lrs(spec):
            for combo in itertools.product(*(axes[n] for n in names)):
                hp = full_hyperparams(opt_name, {"lr": lr, **dict(zip(names, combo, strict=True))})
                for sched, skw in schedules:
                    for seed in seed_list:
                        configs.append(
                            RunConfig(
                                problem=problem,
                                optimizer=opt_name,
                                hyperparams=hp,
                                steps=int(steps),
                                seed=seed,
                                schedule=sched,
                                schedule_kwargs=dict(skw),
                                problem_kwargs=dict(problem_kwargs or {}),
                            )
                        )
    if not configs:
        raise ValueError("optimizers must name at least one optimizer, got none")
    return list({c.run_id: c for c in configs}.values())


def grid_size(
    optimizers: Iterable[str],
    lrs: LrSpec | Mapping[str, LrSpec],
    seeds: int | str | Sequence[int],
    *,
    hyperparams: Mapping[str, Mapping[str, Any | Sequence[Any]]] | None = None,
    schedules: Sequence[tuple[str | None, Mapping[str, Any]]] = ((None, {}),),
) -> int:
    """How many runs :func:`expand_grid` makes for one problem (at most: repeated
    settings count once there), without making them, so a huge grid is refused at once."""
    n_seeds, n_schedules = len(parse_seeds(seeds)), len(schedules)
    return sum(
        len(parse_lrs(spec)) * math.prod(len(v) for v in axes.values()) * n_schedules * n_seeds
        for _, spec, axes in _grid_axes(optimizers, lrs, hyperparams)
    )


def _grid_axes(
    optimizers: Iterable[str],
    lrs: LrSpec | Mapping[str, LrSpec],
    hyperparams: Mapping[str, Mapping[str, Any | Sequence[Any]]] | None,
) -> Iterator[tuple[str, LrSpec, dict[str, list[Any]]]]:
    """Per optimizer (registry name): its lr spec and its other axes as lists of values."""
    if isinstance(optimizers, str):  # one name, not its letters
        optimizers = [optimizers]
    hyperparams = {_opt_key(k): v for k, v in (hyperparams or {}).items()}
    if isinstance(lrs, Mapping):
        lrs = {_opt_key(k) if k != "default" else k: v for k, v in lrs.items()}
    for opt in dict.fromkeys(optimizers):
        opt_name = get_rule(opt).name
        spec = _lr_spec_for(lrs, opt_name)
        given = {**hyperparams.get("*", {}), **hyperparams.get(opt_name, {})}
        axes = {k: (list(v) if isinstance(v, list | tuple) else [v]) for k, v in given.items()}
        if "lr" in axes:
            raise ValueError("hyperparams must not contain 'lr'; give learning rates as lrs")
        for k, values in axes.items():
            if not values:  # an empty axis would make an empty grid
                raise ValueError(
                    f"hyperparams for {opt_name}: {k} must list at least one value, got []"
                )
        yield opt_name, spec, axes


def _opt_key(name: str) -> str:
    return name if name == "*" else get_rule(name).name


def _lr_spec_for(lrs: LrSpec | Mapping[str, LrSpec], optimizer: str) -> LrSpec:
    if isinstance(lrs, Mapping):
        if optimizer in lrs:
            return lrs[optimizer]
        if "default" in lrs:
            return lrs["default"]
        raise ValueError(f"lrs has no entry for optimizer {optimizer!r} and no 'default'")
    return lrs
