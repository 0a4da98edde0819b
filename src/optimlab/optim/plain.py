"""The plain path: a rule applied to one parameter at a time, the reference for every other.

Per parameter with a gradient: the state is created on first use by the rule's ``init``
(in ``state_dtype`` if given), the gradient is negated with ``maximize``, then
``delta, new_state = rule.update(grad, state, param, **hyperparams)``, ``param += delta``
and the new state is stored. State is a plain dict per parameter holding the rule's state
fields (``count`` first), so ``torch.save`` / ``torch.load(weights_only=True)``
round-trip it. Complex parameters are optimized as their real view
(``torch.view_as_real``); their state lives in that view.

A *path* is an object with ``step(states, work)``: the optimizer picks one per group
(``PlainPath`` here, ``MultiTensorPath`` in ``multi_tensor``) and hands it the
optimizer's ``state`` mapping and a :class:`GroupStep`; whatever a path keeps between
steps is its own, and the optimizer makes new paths whenever its state is replaced
(``load_state_dict``, ``deepcopy``, unpickling). Faster paths must leave parameters and
every state slot exactly as this one does (tests/test_optim_fast.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from ..rules.base import Rule

States = MutableMapping[torch.Tensor, dict[str, Any]]  # an optimizer's ``state``


@dataclass(frozen=True)
class GroupStep:
    """What one step of one param group needs, whatever the path.

    ``index`` is the group's position (a path may keep a layout per group); ``params``
    the group's parameters that have a gradient, ``group_params`` all of them;
    ``hyperparams`` the rule's validated keyword arguments.

    ``unchanged`` is a token for what the optimizer has checked this step: two steps that
    carry the same token have every parameter of ``params`` at the same place in memory
    and the same gradient objects (flat storage checks both before each step,
    ``flat.FlatStorage.token``). A path may then skip re-checking them. Only flat storage
    issues tokens, so a group that carries one holds plain tensors (no ``DTensor``).
    ``None`` (the default, and for any other ``params``) promises nothing.
    """

    index: int
    params: list[torch.Tensor]
    group_params: list[torch.Tensor]
    hyperparams: dict[str, Any]
    maximize: bool
    state_dtype: torch.dtype | None
    unchanged: int | None = None

    @cached_property
    def ids(self) -> tuple[int, ...]:
        """The ``id`` of each parameter of ``params`` (computed once per step)."""
        return tuple(map(id, self.params))


def param_label(names: Sequence[Any] | None, group_index: int, i: int) -> str:
    """How messages name parameter ``i`` of a group: its name (``param_names``), else its
    place."""
    name = names[i] if names and i < len(names) else None
    return repr(name) if name is not None else f"{i} of group {group_index}"


def real(t: torch.Tensor) -> torch.Tensor:
    """A complex tensor as its real view ``(..., 2)``; a real tensor unchanged."""
    return torch.view_as_real(t) if t.is_complex() else t


def grad_of(p: torch.Tensor) -> torch.Tensor:
    """The gradient of a parameter the optimizer steps (one that has a gradient)."""
    grad = p.grad
    assert grad is not None, "only parameters with a gradient are stepped"
    return grad


def _storage_ptr(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def store(
    state: dict[str, Any],
    new: Mapping[str, Any],
    avoid: Iterable[Any] = (),
    dtype: torch.dtype | None = None,
) -> None:
    """Put a rule's new state into ``state``; existing slots keep their dtype, new ones
    get ``dtype`` if given.

    A new slot that shares memory with a tensor in ``avoid`` (the gradient, which the next
    backward may accumulate into, or the parameter) is copied: SGD's first momentum buffer
    is the gradient itself.
    """
    avoided = {_storage_ptr(t) for t in avoid if isinstance(t, torch.Tensor)}
    for key, value in new.items():
        if isinstance(value, torch.Tensor):
            old = state.get(key)
            want = old.dtype if isinstance(old, torch.Tensor) else dtype
            if want is not None and value.dtype != want:
                value = value.to(want)
            if value.numel() and _storage_ptr(value) in avoided:
                value = value.clone()
        state[key] = value


class PlainPath:
    """The rule on each parameter in turn: the reference every faster path equals."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        fresh = rule.init(torch.zeros((1, 1)))
        # the rule's state NamedTuple, to rebuild it from the per-parameter dicts
        self.state_type: Any = type(fresh)
        # a fresh state's scalar slots (count 0, NAdam's mu_product 1, ...): what the
        # compiled kernel sees in place of the real ones, so it never depends on them
        self.fresh_scalars = {
            k: v for k, v in fresh._asdict().items() if not isinstance(v, torch.Tensor)
        }

    @property
    def fields(self) -> tuple[str, ...]:
        """The rule's state fields (``count`` first): the keys of each parameter's state."""
        return tuple(self.state_type._fields)

    @property
    def required(self) -> tuple[str, ...]:
        """The state fields without a default (``count`` first): a saved state needs them."""
        return tuple(f for f in self.fields if f not in self.state_type._field_defaults)

    def init_state(self, p: torch.Tensor, state_dtype: torch.dtype | None) -> dict[str, Any]:
        """A new parameter's state, as a dict of the rule's state fields."""
        state = dict(self.rule.init(real(p).detach())._asdict())
        if state_dtype is not None:
            for k, v in state.items():
                if isinstance(v, torch.Tensor):
                    state[k] = v.to(state_dtype)
        return state

    def step_param(self, state: dict[str, Any], p: torch.Tensor, work: GroupStep) -> None:
        """One update of parameter ``p`` whose state dict is ``state`` (created if empty)."""
        if not state:
            state.update(self.init_state(p, work.state_dtype))
        grad = grad_of(p)
        param, g = real(p), real(grad)
        if work.maximize:
            g = -g
        delta, new = self.rule.update(g, self.state_type(**state), param, **work.hyperparams)
        param.add_(delta)
        store(state, new._asdict(), avoid=(grad, p), dtype=work.state_dtype)

    def step(self, states: States, work: GroupStep) -> None:
        """One update of every parameter in ``work.params``."""
        for p in work.params:
            self.step_param(states[p], p, work)
