"""``RuleOptimizer``: one ``torch.optim.Optimizer`` whose ``step`` runs a pure rule.

Every generated class (``Adam``, ``Lion``, ...) is this base plus an ``Adapter`` that maps
torch's argument names to the rule's. ``step`` lives here once: hyperparameters are read
from each group at every step (so LR schedulers and group edits work), state is created
lazily by the rule's ``init`` and kept as a plain dict per parameter (the rule's state
fields, ``count`` first), so ``state_dict()`` holds only tensors, numbers and ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch

from ..rules.registry import OptimizerSpec
from . import _fast, _state
from ._adapter import Adapter


class RuleOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` driven by one of optimlab's rules.

    Subclasses are generated from the registry (see ``optimlab.optim``); each sets
    ``_adapter``. Per step and group: gradients are optionally negated (``maximize``),
    then ``delta, state = rule.update(grad, state, param, **hyperparams)`` and
    ``param += delta``. Parameters with ``grad is None`` are skipped (their state and
    count do not change). Complex parameters are optimized as their real view
    (``torch.view_as_real``) by elementwise rules; state is kept in the real view.
    """

    _adapter: ClassVar[Adapter]

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if isinstance(params, set):
            raise TypeError(
                "optimizer parameters must be an ordered collection (a list), not a set: "
                "the order of a set changes between runs"
            )
        self._adapter.validate(defaults)
        super().__init__(params, defaults)

    @property
    def spec(self) -> OptimizerSpec:
        """The registry row this optimizer runs."""
        return self._adapter.spec

    def rule_hyperparams(self, group: dict[str, Any]) -> dict[str, Any]:
        """A param group's values under the rule's names (``betas`` -> ``beta1, beta2``)."""
        return self._adapter.rule_kwargs(group)

    # -- construction -------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its hyperparameters are validated before anything changes."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, torch.Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters must be an ordered collection (a list), not a set: "
                "the order of a set changes between runs"
            )
        else:
            params = list(params)
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        names = [p[0] if isinstance(p, tuple) else None for p in params]
        self._check_params(tensors, names)
        self._adapter.validate({**self.defaults, **param_group})
        super().add_param_group({**param_group, "params": params})

    def _check_params(self, tensors: list[Any], names: list[str | None]) -> None:
        seen: dict[int, int] = {}
        for i, p in enumerate(tensors):
            if not isinstance(p, torch.Tensor):
                continue  # torch's own check raises the TypeError
            label = repr(names[i]) if names[i] is not None else f"at position {i}"
            if id(p) in seen:
                raise ValueError(
                    f"parameter {label} appears twice in one param group "
                    f"(also at position {seen[id(p)]})"
                )
            seen[id(p)] = i
            if p.is_complex() and not self._adapter.spec.rule.elementwise:
                raise ValueError(
                    f"{type(self).__name__} does not support complex parameters "
                    f"(parameter {label} is {p.dtype}); optimize torch.view_as_real(p) instead"
                )
            if p.layout != torch.strided:
                raise ValueError(f"parameter {label} is sparse; sparse parameters are unsupported")

    # -- stepping -------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Check everything (hyperparameters, sparse gradients) before changing anything.
        work = []
        for gi, group in enumerate(self.param_groups):
            hp = self._group_hyperparams(group)
            active = []
            for i, p in enumerate(group["params"]):
                grad = p.grad
                if grad is None:
                    continue
                if grad.layout != torch.strided:  # COO, CSR, ...
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients "
                        f"(parameter {self._label(group, gi, i)})"
                    )
                active.append(p)
            if active:
                work.append((gi, group, hp, active))
        for gi, group, hp, active in work:
            maximize = bool(group.get("maximize", False))
            state_dtype = group.get("state_dtype")
            if self._adapter.spec.rule.elementwise_with(hp) and group.get("foreach") is not False:
                _fast.step_params(self, gi, active, hp, maximize, state_dtype)
            else:
                for p in active:
                    self._step_param(p, hp, maximize, state_dtype)
        return loss

    def _group_hyperparams(self, group: dict[str, Any]) -> dict[str, Any]:
        """The rule's validated hyperparameters for ``group`` (validation cached by value)."""
        raw = self._adapter.rule_kwargs(group)
        flags = tuple(group.get(f) for f in self._adapter.flags)
        values = (*raw.values(), *flags)
        key: tuple | None = None
        if not any(isinstance(v, torch.Tensor) for v in values):  # tensors can change in place
            key = tuple((type(v), v) for v in values)
            try:
                hash(key)
            except TypeError:  # an array or list value: validate every time
                key = None
        cache = self.__dict__.setdefault("_hp_cache", {})
        if key is not None and key in cache:
            return cache[key]
        hp = self._adapter.validate(group)
        if key is not None:
            if len(cache) > 64:
                cache.clear()
            cache[key] = hp
        return hp

    def _step_param(
        self, p: torch.Tensor, hp: dict[str, Any], maximize: bool, state_dtype: Any = None
    ) -> None:
        """The plain rule on one parameter: the reference every fast path is tested against."""
        state = self.state[p]
        if not state:
            state.update(self._init_state(p, state_dtype))
        grad = p.grad
        param = torch.view_as_real(p) if p.is_complex() else p
        g = torch.view_as_real(grad) if grad.is_complex() else grad
        if maximize:
            g = -g
        delta, new = self._adapter.spec.rule.update(g, self._state_tuple(state), param, **hp)
        param.add_(delta)
        _state.store(state, new._asdict(), avoid=(grad, p), dtype=state_dtype)

    def _init_state(self, p: torch.Tensor, state_dtype: Any = None) -> dict[str, Any]:
        param = torch.view_as_real(p) if p.is_complex() else p
        st = self._adapter.spec.rule.init(param.detach())
        type(self)._state_cls = type(st)
        state = dict(st._asdict())
        if state_dtype is not None:
            for k, v in state.items():
                if isinstance(v, torch.Tensor):
                    state[k] = v.to(state_dtype)
        return state

    def _state_tuple(self, state: dict[str, Any]) -> Any:
        return self._state_type()(**state)

    def _state_type(self) -> Any:
        cls = type(self).__dict__.get("_state_cls")
        if cls is None:
            cls = type(self._adapter.spec.rule.init(torch.zeros((1, 1))))
            type(self)._state_cls = cls
        return cls

    @staticmethod
    def _label(group: dict[str, Any], gi: int, i: int) -> str:
        names = group.get("param_names")
        return repr(names[i]) if names else f"{i} of group {gi}"

    # -- state --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, plus each group's ``param_shapes`` (and ``param_names``).

        As in torch, tensors are the live state (``torch.save`` them, or clone).
        """
        sd = super().state_dict()
        for packed, group in zip(sd["param_groups"], self.param_groups, strict=True):
            packed["param_shapes"] = [list(p.shape) for p in group["params"]]
        sd["state"] = {k: dict(v) for k, v in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load state: checked against names and shapes, copied (never aliased), dtypes kept.

        Unlike torch, state tensors keep their saved dtype (fp32 state on bf16 params stays
        fp32) and are copied, so the given dict is never modified by later steps. Groups
        missing keys (older state dicts) get this optimizer's defaults.
        """
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        groups, new_state = _state.prepare_load(self, state_dict)
        self.__dict__.pop("_plans", None)  # the fast path's layouts refer to the old state
        self.__setstate__({"state": new_state, "param_groups": groups})
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)
