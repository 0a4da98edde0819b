"""The one place where teaching-API arguments meet a registered rule.

A step function names its rule, maps its argument names to the rule's (``beta`` is
SGD's ``momentum``, ``epsilon`` is ``eps``), passes the state slots it was given, and gets
back new parameters and slots. No algorithm math lives here: that is the rule's job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..rules.base import Hyper, Rule
from ..rules.registry import get_rule
from . import _tree

STEP_T = Hyper("t", 1, low=1, kind="int", doc="1-based step number")
MU_PRODUCT = Hyper("mu_product", 1.0, 0.0, 1.0, low_open=True, doc="NAdam's product of mu")


def hyperparams(rule: Rule, names: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate teaching arguments ``values`` (keyed by teaching name) for ``rule``.

    ``names`` maps a teaching name to the rule's name. Each value is checked against the
    rule's spec but reported under the teaching name (``beta must be in [0, 1], got 2``);
    then the rule's cross-field checks run. Returns the rule's full hyperparameters.
    """
    full = rule.defaults
    for teach, value in values.items():
        name = names.get(teach, teach)
        full[name] = _spec(rule, name, teach).check(value)
    try:
        for check in rule.checks:
            check(full)
    except ValueError as exc:
        aliases = ", ".join(f"{t} is the rule's {r}" for t, r in names.items() if t != r)
        raise ValueError(f"{exc} ({aliases})" if aliases else str(exc)) from None
    return full


_SPECS: dict[tuple[str, str, str], Hyper] = {}


def _spec(rule: Rule, name: str, teach: str) -> Hyper:
    """The rule's spec of ``name``, reporting errors as ``teach`` (cached: called per step)."""
    key = (rule.name, name, teach)
    spec = _SPECS.get(key)
    if spec is None:
        spec = _SPECS[key] = dataclasses.replace(rule.hyper(name), name=teach)
    return spec


def check_step(t: Any) -> int:
    """``t``, the 1-based step number, as an int (ValueError naming ``t`` otherwise)."""
    return STEP_T.check(t)


def apply(
    rule_name: str,
    params: Any,
    grads: Any,
    slots: Mapping[str, Any],
    hp: Mapping[str, Any],
    *,
    count: int = 0,
    shared: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """One step of a registered rule on a parameter container.

    ``slots`` maps state-slot names to containers shaped like ``params`` (``None``:
    zeros); ``shared`` maps slot names to one value used for every leaf
    (NAdam's ``mu_product``); ``count`` is the number of steps already taken.
    Returns ``(new_params, new_slots, new_shared)``; every returned array is new.
    """
    rule = get_rule(rule_name)
    layout, p_leaves = _tree.flatten(params, "params")
    g_leaves = _tree.leaves_like(layout, grads, "grads")
    s_leaves = {
        name: None if value is None else _tree.leaves_like(layout, value, name)
        for name, value in slots.items()
    }
    shared = dict(shared or {})
    new_params: list[Any] = []
    new_slots: dict[str, list[Any]] = {name: [] for name in slots}
    new_shared = dict(shared)
    for i, (p, g) in enumerate(zip(p_leaves, g_leaves, strict=True)):
        given = {
            n: np.zeros_like(p) if leaves is None else leaves[i] for n, leaves in s_leaves.items()
        }
        state = rule.init(p)._replace(count=count, **given, **shared)
        delta, new_state = rule.update(g, state, p, **hp)
        new_params.append(p + delta)
        for name in slots:
            new_slots[name].append(_fresh(getattr(new_state, name), given.get(name)))
        new_shared = {name: getattr(new_state, name) for name in shared}
    return (
        _tree.unflatten(layout, new_params),
        {name: _tree.unflatten(layout, leaves) for name, leaves in new_slots.items()},
        new_shared,
    )


def _fresh(value: Any, given: Any) -> Any:
    """``value``, copied if it is the very array the caller passed in (no aliasing)."""
    return np.array(value, copy=True) if value is given and value is not None else value
