"""The per-step scalars contract (``Rule.per_step``, ``update(..., scalars=...)``).

A fast path computes a rule's per-step scalars once per step, outside the elementwise
pass, and hands them to ``update``. Same operations on the same values, so bitwise:

- ``update(scalars=per_step(state, **hp))`` equals ``update()`` on every case, on NumPy
  and torch, one setting and batched (hyperparameter arrays);
- given ``scalars``, ``update`` reads only the tensor slots of the state: with the scalar
  slots (the count included) replaced by those of a fresh state, the tensors it returns
  are unchanged, and its new scalar slots are ``count + 1`` and the ``scalars`` keys of
  the same names (what the compiled path relies on to keep those slots in Python).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from cases import CASES, Case, randomized

from optimlab.rules.registry import get_rule

WITH_SCALARS = [c for c in CASES if get_rule(c.name).per_step is not None]


def _shape(case: Case) -> tuple[int, ...]:
    return (
        (3, 4)
        if get_rule(case.name).param_ndim == 2 or not get_rule(case.name).elementwise
        else (7,)
    )


def _extra(case: Case) -> dict[str, Any]:
    return {} if get_rule(case.name).elementwise_with(case.full()) else {"batch_ndim": 0}


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return np.array_equal(np.asarray(a), np.asarray(b))


def _scalar_slots(state: Any) -> dict[str, Any]:
    """The state's non-tensor slots that hold a value (None slots are tensors to be)."""
    return {
        k: v
        for k, v in state._asdict().items()
        if v is not None and getattr(v, "ndim", 0) == 0 and not isinstance(v, torch.Tensor)
    }


def _run(
    case: Case, hp: dict[str, Any], param: Any, grads: list, given: bool, batch_ndim: int = 0
) -> list:
    rule = get_rule(case.name)
    extra = {k: batch_ndim for k in _extra(case)}
    state = rule.init(param, **extra)
    out = []
    for g in grads:
        scalars = {"scalars": rule.per_step(state, **hp)} if given else {}
        delta, state = rule.update(g, state, param, **hp, **extra, **scalars)
        param = param + delta
        out.append((param, state))
    return out


@pytest.mark.parametrize("array", ["numpy", "torch"])
@pytest.mark.parametrize("case", WITH_SCALARS, ids=lambda c: c.id)
def test_given_scalars_change_nothing(case: Case, array: str) -> None:
    rng = np.random.default_rng(5)
    shape = _shape(case)
    param, grads = rng.standard_normal(shape), list(rng.standard_normal((25, *shape)))
    if array == "torch":
        param, grads = torch.from_numpy(param), [torch.from_numpy(g) for g in grads]
    hp = case.full()
    for (pa, sa), (pb, sb) in zip(
        _run(case, hp, param, grads, True), _run(case, hp, param, grads, False), strict=True
    ):
        assert _same(pa, pb)
        assert all(_same(x, y) for x, y in zip(sa, sb, strict=True))


@pytest.mark.parametrize("case", [c for c in WITH_SCALARS if get_rule(c.name).elementwise])
def test_given_scalars_batched(case: Case) -> None:
    """Hyperparameter arrays (K settings): the scalars are arrays, the result the same."""
    rng = np.random.default_rng(6)
    settings = [case] + [randomized(case, rng) for _ in range(2)]
    hp: dict[str, Any] = {}
    for key, first in case.full().items():
        if get_rule(case.name).hyper(key).kind != "float" or first is None:
            hp[key] = first
        else:
            hp[key] = np.array([s.full()[key] for s in settings]).reshape(3, 1)
    param, grads = rng.standard_normal((3, 5)), list(rng.standard_normal((20, 3, 5)))
    for (pa, _), (pb, _) in zip(
        _run(case, hp, param, grads, True, 1), _run(case, hp, param, grads, False, 1), strict=True
    ):
        assert _same(pa, pb)


@pytest.mark.parametrize("case", WITH_SCALARS, ids=lambda c: c.id)
def test_given_scalars_update_reads_only_tensor_slots(case: Case) -> None:
    rule = get_rule(case.name)
    rng = np.random.default_rng(7)
    shape = _shape(case)
    extra = _extra(case)
    hp = case.full()
    param = torch.from_numpy(rng.standard_normal(shape))
    state = rule.init(param, **extra)
    placeholders = _scalar_slots(state)
    for _ in range(8):  # a state well past its first steps
        g = torch.from_numpy(rng.standard_normal(shape))
        _, state = rule.update(g, state, param, **hp, **extra)
    g = torch.from_numpy(rng.standard_normal(shape))
    scalars = rule.per_step(state, **hp)
    delta, new = rule.update(g, state, param, **hp, **extra, scalars=scalars)
    blank = state._replace(**placeholders)
    delta_blank, new_blank = rule.update(g, blank, param, **hp, **extra, scalars=scalars)
    assert torch.equal(delta, delta_blank)
    for key, value in new._asdict().items():
        if key in placeholders:  # scalar slots: count + 1 and the scalars' values
            want = state.count + 1 if key == "count" else scalars[key]
            assert _same(value, want), key
        else:
            assert _same(value, new_blank._asdict()[key]), key
