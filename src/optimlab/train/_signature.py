"""What must match to resume from a checkpoint, and a readable list of what differs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPONENTS = ("model", "optimizer", "scheduler", "scaler", "trainer")


def signature(components: Mapping[str, Any]) -> dict[str, Any]:
    """What must match to resume: parameter names/shapes/dtypes and component types."""
    model = components["model"]
    names = {id(p): n for n, p in model.named_parameters()}
    optimizer = components["optimizer"]
    return {
        "tensors": {k: [list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()},
        "param_groups": [
            [names.get(id(p), f"<unnamed {i}>") for i, p in enumerate(g["params"])]
            for g in optimizer.param_groups
        ],
        "types": {n: _qualname(components.get(n)) for n in COMPONENTS},
        "precision": getattr(components.get("trainer"), "precision", None),
    }


def differences(
    manifest: dict[str, Any], config: dict[str, Any], current: dict[str, Any]
) -> list[str]:
    saved = manifest["signature"]
    out = []
    for name in COMPONENTS:
        was, now = saved["types"].get(name), current["types"][name]
        if was != now:
            out.append(f"{name} is {was or 'absent'} in the checkpoint but {now or 'absent'} here")
    out += _dict_diff("parameter", saved["tensors"], current["tensors"], "shape/dtype")
    if saved.get("precision") != current["precision"]:
        out.append(
            f"precision is {saved.get('precision')!r} in the checkpoint but "
            f"{current['precision']!r} here"
        )
    if saved["param_groups"] != current["param_groups"]:
        out.append(
            f"param groups are {saved['param_groups']} in the checkpoint but "
            f"{current['param_groups']} here"
        )
    out += _dict_diff("config", manifest["config"], config, "value")
    return out


def _dict_diff(what: str, saved: dict[str, Any], now: dict[str, Any], field: str) -> list[str]:
    out = []
    for key in sorted(set(saved) | set(now)):
        if key not in now:
            out.append(f"{what} {key!r} is in the checkpoint but not here")
        elif key not in saved:
            out.append(f"{what} {key!r} is here but not in the checkpoint")
        elif saved[key] != now[key]:
            out.append(
                f"{what} {key!r} {field} is {saved[key]} in the checkpoint but {now[key]} here"
            )
    return out


def _qualname(obj: Any) -> str | None:
    return None if obj is None else f"{type(obj).__module__}.{type(obj).__qualname__}"
