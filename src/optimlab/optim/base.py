"""``RuleOptimizer``: one ``torch.optim.Optimizer`` whose ``step`` runs a pure rule.

Every generated class (``Adam``, ``Lion``, ...) is this base plus its ``Arguments``
(``arguments.py``: torch's argument names mapped to the rule's, and the signature).
``step`` lives here once: hyperparameters are read from each group at every step (so LR
schedulers and group edits work) and validated before anything changes; each group is
then handed to a *path* (``plain.PlainPath``, the per-tensor reference, or
``multi_tensor.MultiTensorPath``), which owns whatever layout it keeps between steps.
State is a plain dict per parameter (the rule's state fields, ``count`` first), so
``state_dict()`` holds only tensors, numbers and ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch

from ..rules.registry import OptimizerSpec
from . import state_dict as state_dicts
from .arguments import Arguments
from .multi_tensor import MultiTensorPath
from .plain import GroupStep, PlainPath

_SET_ERROR = (
    "optimizer parameters must be an ordered collection (a list), not a set: "
    "the order of a set changes between runs"
)


class RuleOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` driven by one of optimlab's rules.

    Subclasses are generated from the registry (``optimlab.optim``); each sets
    ``_arguments`` and its constructor takes the arguments of ``inspect.signature(cls)``.
    Per step and group: gradients are optionally negated (``maximize``), then
    ``delta, state = rule.update(grad, state, param, **hyperparams)`` and
    ``param += delta``. Parameters with ``grad is None`` are skipped (their state and
    count do not change). Complex parameters are optimized as their real view
    (``torch.view_as_real``) by elementwise rules; state is kept in the real view.
    """

    _arguments: ClassVar[Arguments]

    def __init__(self, params: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        try:
            bound = cls._arguments.signature.bind(params, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}(): {exc}") from None
        bound.apply_defaults()
        defaults = dict(bound.arguments)
        params = defaults.pop("params")
        if isinstance(params, set):
            raise TypeError(_SET_ERROR)
        self._arguments.validate(defaults)
        self._start_paths()
        super().__init__(params, defaults)

    def _start_paths(self) -> None:
        """The paths a group's step can take, and the cache of validated hyperparameters."""
        self._plain = PlainPath(self.spec.rule)
        self._multi_tensor = MultiTensorPath(self._plain)
        self._validated: dict[tuple, dict[str, Any]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickling, deepcopy and load_state_dict: new state, so fresh paths
        super().__setstate__(state)
        self._start_paths()

    @property
    def spec(self) -> OptimizerSpec:
        """The registry row this optimizer runs."""
        return self._arguments.spec

    # -- construction -------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its hyperparameters are validated before anything changes."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, torch.Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(_SET_ERROR)
        else:
            params = list(params)
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        names = [p[0] if isinstance(p, tuple) else None for p in params]
        self._check_params(tensors, names)
        self._arguments.validate({**self.defaults, **param_group})
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
            if p.is_complex() and not self.spec.rule.elementwise:
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
        work = [w for gi, group in enumerate(self.param_groups) if (w := self._work(gi, group))]
        for item in work:
            self._path(self.param_groups[item.index], item.hyperparams).step(self.state, item)
        return loss

    def _work(self, gi: int, group: dict[str, Any]) -> GroupStep | None:
        """A group's step, checked; None when no parameter of it has a gradient."""
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
        if not active:
            return None
        maximize = bool(group.get("maximize", False))
        return GroupStep(gi, active, group["params"], hp, maximize, group.get("state_dtype"))

    def _path(
        self, group: dict[str, Any], hyperparams: dict[str, Any]
    ) -> PlainPath | MultiTensorPath:
        """The plain rule with ``foreach=False`` or where the rule is not elementwise with
        these hyperparameters (Adam with ``cautious``), else the multi-tensor path."""
        if self.spec.rule.elementwise_with(hyperparams) and group.get("foreach") is not False:
            return self._multi_tensor
        return self._plain

    def _group_hyperparams(self, group: dict[str, Any]) -> dict[str, Any]:
        """The rule's validated hyperparameters for ``group`` (validation cached by value)."""
        raw = self._arguments.rule_kwargs(group)
        flags = tuple(group.get(f) for f in self._arguments.flags)
        values = (*raw.values(), *flags)
        key: tuple | None = None
        if not any(isinstance(v, torch.Tensor) for v in values):  # tensors can change in place
            key = tuple((type(v), v) for v in values)
            try:
                hash(key)
            except TypeError:  # an array or list value: validate every time
                key = None
        cache = self._validated
        if key is not None and key in cache:
            return cache[key]
        hp = self._arguments.validate(group)
        if key is not None:
            if len(cache) > 64:
                cache.clear()
            cache[key] = hp
        return hp

    @staticmethod
    def _label(group: dict[str, Any], gi: int, i: int) -> str:
        names = group.get("param_names")
        return repr(names[i]) if names else f"{i} of group {gi}"

    # -- state --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, plus each group's ``param_shapes`` (and ``param_names``).

        As in torch, tensors are the live state (``torch.save`` them, or clone).
        """
        return state_dicts.with_shapes(super().state_dict(), self.param_groups)

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
        groups, new_state = state_dicts.prepare_load(
            state_dict,
            self.param_groups,
            self.defaults,
            validate=self._arguments.validate,
            fields=self._plain.fields,
            owner=type(self).__name__,
            required=self._plain.required,
        )
        self.__setstate__({"state": new_state, "param_groups": groups})  # new paths too
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)
