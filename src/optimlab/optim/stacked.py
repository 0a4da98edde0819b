"""The compiled path for rules that reduce over a tensor (Adafactor's row and column
means, Muon's Newton-Schulz iteration, the norms of LAMB and MARS, cautious masks): the
rule compiled on each whole tensor, with small same-shape tensors stacked.

Such a rule cannot run over a flat buffer, so each tensor is one call of the compiled
rule, and each call costs ~0.1 ms of dynamo's wrappers: as much as the fused loops of a
250 x 250 matrix. Every such rule also takes a leading axis of settings (``batch_ndim=1``,
which the batched sweeps use), so the small parameters of one shape, dtype and device
whose state has the same layout and step count are stacked, ``(K, *shape)``, stepped by
one call with ``batch_ndim=1``, and copied back: parameters, and each state slot. The
copies move the stack's parameters, gradients and state once more; they are bounded to
small tensors (``STACK_NUMEL``), where the calls saved outweigh them, and stacks to
``STACK_MAX`` elements. Matrix products batch better too: 16 bfloat16 products of
250 x 250 matrices took 1.65-1.88 ms one by one and 1.32 ms as one ``bmm``, so Muon gains
the most (about 2x on 16 such matrices); Adafactor, bound by memory, about breaks even.

Only the compiled path stacks. The eager rule makes ~20 passes over its tensor, which
stay in cache for one small matrix and not for a stack: stacked eager Adafactor and LAMB
ran 1.1-2x slower than one tensor at a time (fp32 Muon no faster), so the eager paths
step these rules one tensor at a time.

A stack computes the rule with batched operations, so its results equal the plain rule's
within the numerics tolerance, not bitwise (tests/test_optim_stacked.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..rules.base import Rule
from .plain import GroupStep, PlainPath, States, grad_of, real, store

# Parameters up to STACK_NUMEL elements are stacked with their kind, in stacks of at most
# STACK_MAX elements (1 MB in float32, like the multi-tensor path's packs): 16 matrices of
# 250 x 250 took, compiled, per step, Adafactor 3.9 / 3.8 / 6.4 ms and Muon (bfloat16)
# 57-65 / 29-33 / 29-30 ms one at a time / in stacks of 4 / as one stack of 16; the large
# stack's copies (torch.stack of 4 MB: 0.54 ms each, 4 a step) cost more than they save.
STACK_NUMEL = 1 << 17
STACK_MAX = 1 << 18

# apply(rule, state_type, blank, maximize, (g, p, slots, hp, scalars)) -> created slots:
# the compiled path's ``run`` (given, since compiled.py imports this module)
Apply = Callable[[Rule, Any, dict[str, Any], bool, tuple], dict[str, torch.Tensor]]


def apply_rule(
    rule: Rule,
    state_type: Any,
    blank: dict[str, Any],
    maximize: bool,
    g: torch.Tensor,
    p: torch.Tensor,
    slots: dict[str, torch.Tensor | None],
    hp: dict[str, Any],
    scalars: dict[str, Any] | None,
) -> dict[str, torch.Tensor]:
    """One update of a tensor (a flat span, a parameter or a stack), in place: ``p +=
    delta`` and each state slot in ``slots`` overwritten by its new value. ``blank`` holds
    placeholders for the scalar slots (the rule reads none of them when given its
    ``scalars``). Returns the slots the rule created (those passed as None), for the
    caller to store."""
    if maximize:
        g = -g
    extra = {} if scalars is None else {"scalars": scalars}
    delta, new = rule.update(g, state_type(**blank, **slots), p, **hp, **extra)
    p.add_(delta)
    created = {}
    for key, old in slots.items():
        value = getattr(new, key)
        if old is None:
            if isinstance(value, torch.Tensor):
                created[key] = value
        elif value is not old:
            old.copy_(value)
    return created


def scalar_slots_after(
    blank: dict[str, Any], scalars: dict[str, Any] | None, count: int
) -> dict[str, Any]:
    """The scalar slots after a step from ``count``: ``count + 1`` and this step's values
    of the same names (``Rule.per_step``: NAdam's ``mu_product``)."""
    new = {k: scalars[k] for k in blank if scalars is not None and k in scalars}
    new["count"] = count + 1
    return new


def _kind(p: torch.Tensor, state: dict[str, Any]) -> tuple | None:
    """What a parameter must share with others to be stacked with them; None: stepped
    alone (large, empty, or not a matrix: inductor in torch 2.13 fails to compile
    Adafactor on a stack of vectors, ``KeyError`` in its scheduler, and a model's vectors
    are few and small)."""
    if p.dim() < 2 or not 0 < p.numel() <= STACK_NUMEL:
        return None
    layout = tuple(
        (k, (v.shape, v.dtype) if isinstance(v, torch.Tensor) else v) for k, v in state.items()
    )
    return (real(p).shape, p.dtype, p.device, grad_of(p).dtype, layout)


def _stacks(params: list[torch.Tensor], states: States) -> list[list[torch.Tensor]]:
    """``params`` as stacks of one kind (at most ``STACK_MAX`` elements) and singles."""
    kinds: dict[tuple, list[torch.Tensor]] = {}
    out: list[list[torch.Tensor]] = []
    for p in params:
        kind = _kind(p, states[p])
        if kind is None:
            out.append([p])
        else:
            kinds.setdefault(kind, []).append(p)
    for members in kinds.values():
        size = max(1, STACK_MAX // members[0].numel())
        out += [members[i : i + size] for i in range(0, len(members), size)]
    return out


def step_tensors(plain: PlainPath, states: States, work: GroupStep, apply: Apply) -> None:
    """One update of ``work.params`` by a rule that reduces over a tensor: each stack (or
    single parameter) is one ``apply`` of the rule; scalar slots stay in Python (``count
    + 1`` and the per-step values, made once per distinct count)."""
    rule, hp, fixed = plain.rule, work.hyperparams, plain.fresh_scalars
    for p in work.params:  # every state first: a refusal (Muon's shapes) changes nothing
        if not states[p]:
            states[p].update(plain.init_state(p, work.state_dtype))
    made: dict[tuple, dict[str, Any]] = {}
    for members in _stacks(work.params, states):
        kept = [states[p] for p in members]
        first = kept[0]
        tensors = [k for k, v in first.items() if v is None or isinstance(v, torch.Tensor)]
        blank = {k: fixed[k] for k in first if k not in tensors}
        scalars = None
        if rule.per_step:
            key = tuple(first[k] for k in blank)
            if key not in made:
                made[key] = rule.per_step(plain.state_type(**first), **hp)
            scalars = made[key]
        grads = [grad_of(p) for p in members]
        params = [real(p).detach() for p in members]
        alone = len(members) == 1
        if alone:
            slots = {k: first[k] for k in tensors}
            args = (real(grads[0]).detach(), params[0], slots, hp, scalars)
        else:
            slots = {
                k: None if first[k] is None else torch.stack([s[k] for s in kept]) for k in tensors
            }
            stacked = torch.stack(params)
            grad = torch.stack([real(g).detach() for g in grads])
            args = (grad, stacked, slots, {**hp, "batch_ndim": 1}, scalars)
        created = apply(rule, plain.state_type, blank, work.maximize, args)
        if not alone:  # the stack's new values back into each parameter and slot
            torch._foreach_copy_(params, list(stacked.unbind(0)))
            for k, value in slots.items():
                if value is not None:
                    torch._foreach_copy_([s[k] for s in kept], list(value.unbind(0)))
        # a stack's members share their count (their kind), so they share the new scalars
        new = scalar_slots_after(blank, scalars, first["count"])
        shared = () if alone else tuple(created.values())  # rows of these are copied out
        for i, (state, g, p) in enumerate(zip(kept, grads, members, strict=True)):
            if created:
                rows = created if alone else {k: v[i] for k, v in created.items()}
                store(state, rows, avoid=(g, p, *shared), dtype=work.state_dtype)
            state.update(new)
