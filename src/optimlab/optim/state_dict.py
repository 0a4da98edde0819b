"""Loading a saved state dict: checked against the optimizer, copied, dtypes kept.

Loading checks the saved parameter names and shapes against the optimizer's and raises
naming both on a mismatch (torch maps state by position silently), copies every tensor
(no aliasing of the given dict) and keeps each tensor's saved dtype (torch casts state to
the parameter's dtype). Saving adds each group's ``param_shapes`` to torch's state dict.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class GroupRule:
    """What loading needs of the rule that steps a param group: its registry name, the
    group defaults (for keys an older state dict lacks), its validation and the state
    fields it keeps."""

    name: str
    defaults: Mapping[str, Any]
    validate: Callable[[Mapping[str, Any]], Any]
    fields: tuple[str, ...]
    required: tuple[str, ...]  # the fields a parameter's non-empty saved state must have


def with_shapes(state_dict: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """torch's ``state_dict()`` plus each group's ``param_shapes``; per-parameter state
    as plain dicts."""
    for packed, group in zip(state_dict["param_groups"], groups, strict=True):
        packed["param_shapes"] = [list(p.shape) for p in group["params"]]
    state_dict["state"] = {k: dict(v) for k, v in state_dict["state"].items()}
    return state_dict


def _where(names: list[str] | None, shapes: list[Any] | None, i: int) -> str:
    shape = list(shapes[i]) if shapes is not None and i < len(shapes) else "?"
    return f"{names[i]!r} (shape {shape})" if names else f"parameter {i} (shape {shape})"


def _check_group(gi: int, group: dict[str, Any], saved: dict[str, Any]) -> None:
    params = group["params"]
    if len(params) != len(saved["params"]):
        raise ValueError(
            f"loaded state dict's param group {gi} has {len(saved['params'])} parameters, "
            f"this optimizer's has {len(params)}"
        )
    names, saved_names = group.get("param_names"), saved.get("param_names")
    shapes = [list(p.shape) for p in params]
    saved_shapes = saved.get("param_shapes")
    for i in range(len(params)):
        name_bad = names and saved_names and names[i] != saved_names[i]
        shape_bad = saved_shapes is not None and list(saved_shapes[i]) != shapes[i]
        if name_bad or shape_bad:
            raise ValueError(
                f"loaded state dict does not match this optimizer in param group {gi}: "
                f"the state dict has {_where(saved_names, saved_shapes, i)}, "
                f"the optimizer has {_where(names, shapes, i)}"
            )


def _copy_value(key: str, value: Any, param: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        if key == "count":
            return int(value.item())
        return value.detach().to(device=param.device, copy=True)
    return copy.deepcopy(value)


def prepare_load(
    state_dict: Mapping[str, Any],
    groups: list[dict[str, Any]],
    *,
    describe: Callable[[dict[str, Any]], GroupRule],
    owner: str,
) -> tuple[list[dict[str, Any]], defaultdict[Any, dict[str, Any]]]:
    """Checked, copied param groups and state to replace ``groups`` and their state.

    ``describe(group)`` gives the rule of a group (a group may name another registered
    optimizer, see ``routing``): a saved group must be stepped by the same rule, its
    defaults fill keys missing from saved groups (older state dicts), its ``validate``
    checks the group, its ``fields`` are the state keys allowed and its ``required``
    those a parameter's non-empty state must have. ``owner`` names the optimizer class in
    errors. Raises before anything is changed: a torch.optim state dict (``step``,
    ``exp_avg``, or SGD's lone ``momentum_buffer``) is refused here, not at ``step()``.
    """
    if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError("an optimizer state dict needs the keys 'state' and 'param_groups'")
    saved_groups = state_dict["param_groups"]
    if len(groups) != len(saved_groups):
        raise ValueError(
            f"loaded state dict has {len(saved_groups)} parameter groups, "
            f"this optimizer has {len(groups)}"
        )
    new_groups, fields, required = [], {}, {}
    for gi, (group, saved) in enumerate(zip(groups, saved_groups, strict=True)):
        _check_group(gi, group, saved)
        rule, saved_rule = describe(group), describe(dict(saved))
        if rule.name != saved_rule.name:
            raise ValueError(
                f"loaded state dict's param group {gi} is optimized by {saved_rule.name}, "
                f"this optimizer's by {rule.name}"
            )
        new = {k: copy.deepcopy(v) for k, v in saved.items() if k not in ("params", "param_shapes")}
        for key, default in rule.defaults.items():
            new.setdefault(key, default)
        rule.validate(new)
        fields.update({id(p): rule.fields for p in group["params"]})
        required.update({id(p): rule.required for p in group["params"]})
        new["params"] = group["params"]
        if "param_names" in group and "param_names" not in new:
            new["param_names"] = group["param_names"]
        new_groups.append(new)
    id_map = {
        k: p
        for saved, group in zip(saved_groups, groups, strict=True)
        for k, p in zip(saved["params"], group["params"], strict=True)
    }
    state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
    for k, value in state_dict["state"].items():
        if k not in id_map:
            state[k] = copy.deepcopy(value)
            continue
        p = id_map[k]
        unknown = sorted(set(value) - set(fields[id(p)]))
        if unknown:
            raise ValueError(
                f"saved state of parameter {k} has {unknown[0]!r}, which "
                f"{owner} does not keep (its state: {', '.join(fields[id(p)])}); "
                "was it saved by another optimizer?"
            )
        missing = [f for f in required[id(p)] if value and f not in value]
        if missing:
            raise ValueError(
                f"saved state of parameter {k} lacks {missing[0]!r}, which {owner} keeps "
                f"(its state: {', '.join(fields[id(p)])}); was it saved by another optimizer?"
            )
        state[p] = {key: _copy_value(key, v, p) for key, v in value.items()}
    return new_groups, state
