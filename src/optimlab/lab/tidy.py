"""A stored run as a flat record, and the labels tables give studies and settings."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .config import RunConfig

Record = dict[str, Any]


def study_key(r: Record) -> tuple[str, str, int]:
    return (r["problem"], json.dumps(r["problem_kwargs"], sort_keys=True), int(r["steps"]))


def study_label(problem: str, problem_kwargs: Mapping[str, Any]) -> str:
    if not problem_kwargs:
        return problem
    return f"{problem}({', '.join(f'{k}={v}' for k, v in sorted(problem_kwargs.items()))})"


def setting_label(r: Record, *, with_lr: bool = True, without: str | None = None) -> str:
    """``adam lr=0.01 beta1=0.8 + cosine`` listing only what differs from the defaults
    (``without``: leave out that hyperparameter, or ``"schedule"``)."""
    from ..rules.registry import get_rule

    defaults = get_rule(r["optimizer"]).defaults
    parts = [r["optimizer"]]
    if with_lr:
        parts.append(f"lr={r['lr']:.3g}")
    for k, v in sorted(r["hyperparams"].items()):
        if k not in ("lr", without) and v != defaults.get(k):
            parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    if r["schedule"] and without != "schedule":
        parts.append("+ " + schedule_label(r))
    return " ".join(parts)


def schedule_label(r: Record) -> str:
    """``cosine``, ``warmup_cosine(warmup_steps=30)`` or ``constant``."""
    if not r["schedule"]:
        return "constant"
    kw = ",".join(f"{k}={v}" for k, v in sorted(r["schedule_kwargs"].items()))
    return r["schedule"] + (f"({kw})" if kw else "")


def flatten(row: Mapping[str, Any]) -> Record:
    """A store row as a flat record (hyperparameters and final evaluations included)."""
    cfg = RunConfig.from_canonical(row["config"])
    keys = ("run_id", "problem", "optimizer", "lr", "seed", "steps", "status")
    rec: Record = {k: row[k] for k in keys}
    for k in ("initial_loss", "final_loss", "min_loss", "diverged_step", "wall_time"):
        rec[k] = row[k]
    rec["schedule"] = cfg.schedule
    rec["schedule_kwargs"] = dict(cfg.schedule_kwargs)
    rec["problem_kwargs"] = dict(cfg.problem_kwargs)
    rec["hyperparams"] = dict(cfg.hyperparams)
    rec["setting"] = row["group_key"]
    rec["variant"] = _variant_key(cfg)
    for k, v in (row.get("final_evals") or {}).items():
        rec[f"eval_{k}"] = math.nan if v is None else v
    return rec


def _variant_key(cfg: RunConfig) -> str:
    """The setting without lr and seed: one LR-sensitivity curve per variant."""
    hp = {k: v for k, v in cfg.hyperparams.items() if k != "lr"}
    return json.dumps([cfg.optimizer, hp, cfg.schedule, dict(cfg.schedule_kwargs)], sort_keys=True)
