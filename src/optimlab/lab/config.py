"""What one run of the lab is, in canonical form, and how grids of runs are spelled.

A :class:`RunConfig` is everything that determines a run's result: the problem and its
keyword arguments, the optimizer with every hyperparameter (defaults filled in), the
schedule, the seed and the step budget. Its ``run_id`` hashes that canonical form plus the
code version, so the same request always maps to the same row of the store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
        value = mapping[key]
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, str | int | float | bool | type(None)):
            raise ValueError(f"{key} must be a number, bool or string, got {value!r}")
        out[str(key)] = value
    return out


def parse_lrs(spec: LrSpec) -> list[float]:
    """Learning rates from a list, a number, ``"1e-3,1e-2"`` or a log range ``"lo:hi:n"``.

    ``"1e-4:1:9"`` is 9 rates evenly spaced in log10 from 1e-4 to 1 (both included).

    >>> parse_lrs("1e-3:1e-1:3")
    [0.001, 0.01, 0.1]
    """
    if isinstance(spec, str):
        text = spec.strip()
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError(f"lrs range must be 'lo:hi:n' (e.g. 1e-4:1:9), got {spec!r}")
            lo, hi = _number("lrs", parts[0], spec), _number("lrs", parts[1], spec)
            try:
                n = int(parts[2])
            except ValueError:
                raise ValueError(f"lrs count must be an integer >= 1, got {parts[2]!r}") from None
            if n < 1:
                raise ValueError(f"lrs count must be an integer >= 1, got {n}")
            if not (0 < lo <= hi):
                raise ValueError(f"lrs range needs 0 < lo <= hi, got {spec!r}")
            values = [lo] if n == 1 else list(np.logspace(math.log10(lo), math.log10(hi), n))
            return [_round(v) for v in values]
        values = [_number("lrs", p, spec) for p in text.split(",") if p.strip()]
    elif isinstance(spec, int | float) and not isinstance(spec, bool):
        values = [float(spec)]
    else:
        try:
            items = list(spec)
        except TypeError:
            raise ValueError(f"lrs must be a number, a list or 'lo:hi:n', got {spec!r}") from None
        values = [_number("lrs", v, spec) for v in items]
    if not values:
        raise ValueError(f"lrs must name at least one learning rate, got {spec!r}")
    for v in values:
        if not v > 0:
            raise ValueError(f"lrs must be > 0, got {v!r}")
    return sorted({_round(v) for v in values})


def _number(name: str, text: Any, spec: Any) -> float:
    if isinstance(text, bool):
        raise ValueError(f"{name} must be numbers, got {spec!r}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {spec!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {spec!r}")
    return value


def _round(x: float) -> float:
    """12 significant digits: ``logspace`` noise must not change a run's id."""
    return float(f"{float(x):.12g}")


def parse_seeds(spec: int | str | Sequence[int]) -> list[int]:
    """Seeds from a count (``3`` -> 0, 1, 2), ``"0,5,7"`` or a list."""
    if isinstance(spec, bool):
        raise ValueError(f"seeds must be a count or a list of integers, got {spec!r}")
    if isinstance(spec, int | np.integer):
        if spec < 1:
            raise ValueError(f"seeds must be >= 1, got {spec}")
        return list(range(int(spec)))
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"seeds must be integers, got {spec!r}") from None
        if len(values) == 1 and "," not in spec:
            return parse_seeds(values[0])
    else:
        try:
            values = [_seed(v) for v in spec]
        except (TypeError, ValueError):
            raise ValueError(f"seeds must be a count or a list of integers, got {spec!r}") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"seeds must be non-negative integers, got {spec!r}")
    return sorted(set(values))


def _seed(v: Any) -> int:
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise TypeError(v)
    return int(v)


def parse_kwargs(text: str, what: str = "argument") -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` -> ``(name, {key: value})`` with numbers parsed."""
    name, _, rest = text.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{what} options must be key=value, got {item!r} in {text!r}")
        kwargs[key.strip()] = parse_value(value.strip())
    return name.strip(), kwargs


def parse_value(text: str) -> Any:
    """A CLI value: bool, int, float, or the string itself."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


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
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    seed_list = parse_seeds(seeds)
    if isinstance(optimizers, str):  # one name, not its letters
        optimizers = [optimizers]
    hyperparams = {_opt_key(k): v for k, v in (hyperparams or {}).items()}
    if isinstance(lrs, Mapping):
        lrs = {_opt_key(k) if k != "default" else k: v for k, v in lrs.items()}
    configs: list[RunConfig] = []
    for opt in dict.fromkeys(optimizers):
        opt_name = get_rule(opt).name
        spec = _lr_spec_for(lrs, opt_name)
        axes = {**hyperparams.get("*", {}), **hyperparams.get(opt_name, {})}
        axes = {k: (list(v) if isinstance(v, list | tuple) else [v]) for k, v in axes.items()}
        if "lr" in axes:
            raise ValueError("hyperparams must not contain 'lr'; give learning rates as lrs")
        for k, values in axes.items():
            if not values:  # an empty axis would make an empty grid
                raise ValueError(
                    f"hyperparams for {opt_name}: {k} must list at least one value, got []"
                )
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
