"""Binding a teaching function's arguments to a registered rule: the one place where the
teaching API meets ``optimlab.rules``.

A step function names its rule and one mapping from its own names to the rule's, for
hyperparameters and state slots alike (``beta`` is SGD's ``momentum``, ``epsilon`` is
``eps``, ``velocity`` is the ``momentum_buffer`` slot). Values are checked against the
rule's specs but errors name the teaching argument (``velocity has shape (2,)``, never
the rule's slot). No algorithm math lives here: that is the rule's job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core import checks
from ..rules.base import Hyper, Rule
from ..rules.registry import get_rule
from . import _tree


def hyperparams(rule: Rule, names: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate teaching arguments ``values`` (keyed by teaching name) for ``rule``.

    ``names`` maps a teaching name to the rule's name. Each value is checked against the
    rule's spec but reported under the teaching name (``beta must be in [0, 1], got 2``);
    torch tensors are refused (this is the NumPy API). Then the rule's cross-field checks
    run. Returns the rule's full hyperparameters.
    """
    full = rule.defaults
    for teach, value in values.items():
        name = names.get(teach, teach)
        full[name] = _spec(rule, name, teach).check(value, tensors=False)
    try:
        for check in rule.checks:
            check(full)
    except ValueError as exc:
        aliases = ", ".join(
            f"{t} is the rule's {r}" for t, r in names.items() if t != r and t in values
        )
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
    return checks.integer("t", t, 1)


def apply(
    rule_name: str,
    params: Any,
    grads: Any,
    slots: Mapping[str, Any],
    hp: Mapping[str, Any],
    *,
    names: Mapping[str, str] | None = None,
    count: int = 0,
    shared: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """One step of a registered rule on a parameter container.

    ``slots`` maps teaching names of state slots to containers shaped like ``params``
    (``None``: zeros); ``names`` maps those to the rule's slot names; ``shared`` maps
    slot names to one value used for every leaf (NAdam's ``mu_product``); ``count`` is
    the number of steps already taken. Hyperparameter arrays must not change a
    parameter's shape. Returns ``(new_params, new_slots, new_shared)`` keyed as given;
    every returned array is new.
    """
    rule = get_rule(rule_name)
    names = names or {}
    layout, p_leaves = _tree.flatten(params, "params")
    g_leaves = _tree.leaves_like(layout, grads, "grads")
    s_leaves = {
        teach: None if value is None else _tree.leaves_like(layout, value, teach)
        for teach, value in slots.items()
    }
    shown = {rule_name: teach for teach, rule_name in names.items()}  # errors: teaching names
    for i, p in enumerate(p_leaves):
        keeps_shape({shown.get(k, k): v for k, v in hp.items()}, p.shape, layout.label("params", i))
    shared = dict(shared or {})
    new_params: list[Any] = []
    new_slots: dict[str, list[Any]] = {teach: [] for teach in slots}
    new_shared = dict(shared)
    for i, (p, g) in enumerate(zip(p_leaves, g_leaves, strict=True)):
        given = {
            names.get(teach, teach): np.zeros_like(p) if leaves is None else leaves[i]
            for teach, leaves in s_leaves.items()
        }
        state = rule.init(p)._replace(count=count, **given, **shared)
        delta, new_state = rule.update(g, state, p, **hp)
        new_params.append(p + delta)
        for teach in slots:
            slot = names.get(teach, teach)
            new_slots[teach].append(_fresh(getattr(new_state, slot), given[slot]))
        new_shared = {name: getattr(new_state, name) for name in shared}
    return (
        _tree.unflatten(layout, new_params),
        {teach: _tree.unflatten(layout, leaves) for teach, leaves in new_slots.items()},
        new_shared,
    )


def keeps_shape(hp: Mapping[str, Any], shape: tuple[int, ...], label: str) -> None:
    """Refuse hyperparameter arrays that would broadcast a parameter to another shape
    (``lr`` of shape ``(2, 3)`` on weights of shape ``(3,)``)."""
    arrays = {k: np.shape(v) for k, v in hp.items() if np.ndim(v) > 0}
    if not arrays:
        return
    try:
        same = np.broadcast_shapes(shape, *arrays.values()) == tuple(shape)
    except ValueError:
        same = False
    if not same:
        listed = ", ".join(f"{k} {s}" for k, s in arrays.items())
        raise ValueError(
            f"hyperparameter arrays must broadcast to the shape of {label} {tuple(shape)}, "
            f"got {listed}"
        )


def _fresh(value: Any, given: Any) -> Any:
    """``value``, copied if it is the very array the caller passed in (no aliasing)."""
    return np.array(value, copy=True) if value is given and value is not None else value
