"""``RuleOptimizer``: one ``torch.optim.Optimizer`` whose ``step`` runs a pure rule.

Every generated class (``Adam``, ``Lion``, ...) is this base plus its ``Arguments``
(``arguments.py``: torch's argument names mapped to the rule's, and the signature).
``step`` lives here once: hyperparameters are read from each group at every step (so LR
schedulers and group edits work) and validated before anything changes; each group is
then handed to a *path* (``plain.PlainPath``, the per-tensor reference,
``multi_tensor.MultiTensorPath``, ``compiled.CompiledPath`` or, for a group-wide rule,
``group_wide.GroupWidePath``), which owns whatever layout it keeps between steps;
``DTensor`` parameters (FSDP2) reach it as their local shards (``sharded.ShardedStep``).
Groups with ``flat=True`` keep their parameters and gradients in flat buffers
(``flat.FlatStorage``), kept up before every step.
State is a plain dict per parameter (the rule's state fields, ``count`` first), so
``state_dict()`` holds only tensors, numbers and ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import compress, repeat
from operator import attrgetter, is_not
from typing import Any, ClassVar, NamedTuple

import torch

from ..rules.base import Rule
from ..rules.registry import OptimizerSpec, get_spec
from . import compiled, evaluation
from . import state_dict as state_dicts
from .arguments import EXTRA_FLAGS, TORCH_FLAGS, Arguments, arguments_for, group_defaults
from .compiled import CompiledPath
from .flat import FlatStorage
from .group_wide import GroupWidePath
from .multi_tensor import MultiTensorPath
from .plain import GroupStep, PlainPath, param_label
from .sharded import ShardedStep, is_dtensor

Path = PlainPath | MultiTensorPath | CompiledPath | GroupWidePath


class RulePaths(NamedTuple):
    """One rule's ways to step a group: the plain reference, the multi-tensor path (or
    the group-wide one for Prodigy), the compiled path, and the step of DTensor parameters
    (local shards) over them."""

    plain: PlainPath
    fast: MultiTensorPath | GroupWidePath
    compiled: CompiledPath
    sharded: ShardedStep


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
        self._flat = FlatStorage.of(self.param_groups)

    def _start_paths(self) -> None:
        """The paths a group's step can take (made per rule on first use), and the cache
        of validated hyperparameters."""
        self._paths: dict[str, RulePaths] = {}
        self._validated: dict[tuple, dict[str, Any]] = {}

    def _paths_of(self, rule: Rule) -> RulePaths:
        """The plain path of ``rule``, its faster one (group-wide for Prodigy) and the step
        of DTensor parameters over them."""
        if rule.name not in self._paths:
            plain = PlainPath(rule)
            fast = GroupWidePath(plain) if rule.group_wide else MultiTensorPath(plain)
            self._paths[rule.name] = RulePaths(plain, fast, CompiledPath(plain), ShardedStep(plain))
        return self._paths[rule.name]

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickling, deepcopy and load_state_dict: new state, so fresh paths (and for a
        # new optimizer object, its own flat storage)
        super().__setstate__(state)
        self._start_paths()
        if not hasattr(self, "_flat"):
            self._flat = FlatStorage.of(self.param_groups)

    @property
    def spec(self) -> OptimizerSpec:
        """The registry row this optimizer runs."""
        return self._arguments.spec

    def group_arguments(self, group: dict[str, Any]) -> Arguments:
        """The arguments of the rule that steps ``group``: this class's, or those of the
        registered optimizer the group names under ``"optimizer"`` (``routing``)."""
        other = group.get("optimizer")
        return self._arguments if other is None else arguments_for(other)

    def group_rule(self, group: dict[str, Any]) -> Rule:
        """The rule that steps ``group``."""
        return self.group_arguments(group).spec.rule

    # -- evaluation point -------------------------------------------------------------

    def eval(self) -> None:
        """Put every parameter at its rule's evaluation point (``Rule.eval_point``:
        schedule-free's average ``x``, ASGD's average, Lookahead's slow weights), keeping
        the training point to restore; call before evaluating or saving the model. A
        no-op for rules that evaluate where they step. ``step`` refuses to run until
        :meth:`train`."""
        evaluation.to_eval(self)

    def train(self) -> None:
        """Put the training points back exactly (bitwise) after :meth:`eval`."""
        evaluation.to_train(self)

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
        param_group = {**param_group, "params": params}
        defaults = self._defaults_for(param_group)
        arguments = self.group_arguments(param_group)
        self._check_params(tensors, names, arguments.spec.rule)
        arguments.validate({**defaults, **param_group})
        given = set(param_group)
        super().add_param_group({**defaults, **param_group})
        added = self.param_groups[-1]
        for key in set(self.defaults) - set(defaults) - given:  # this class's own keys
            del added[key]
        if hasattr(self, "_flat"):  # a group added after construction: flatten again
            self._flat = FlatStorage.of(self.param_groups)

    def _defaults_for(self, group: dict[str, Any]) -> dict[str, Any]:
        """The defaults of a new group: this optimizer's, or, for a group naming another
        registered optimizer, that one's (its rule's defaults, this optimizer's flags).
        The name is checked and stored canonically; naming this optimizer's own rule is
        the same as naming none."""
        other = group.get("optimizer")
        if other is None:
            return self.defaults
        name = get_spec(other).name  # an unknown name raises, suggesting the closest
        if name == self.spec.name:
            del group["optimizer"]
            return self.defaults
        group["optimizer"] = name
        shared = {*TORCH_FLAGS, *EXTRA_FLAGS} & set(self.defaults)
        own = group_defaults(arguments_for(name))
        return {**own, **{k: self.defaults[k] for k in shared if k in own}}

    def _check_params(self, tensors: list[Any], names: list[str | None], rule: Rule) -> None:
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
            if p.is_complex() and not rule.elementwise:
                raise ValueError(
                    f"{type(self).__name__} does not support complex parameters "
                    f"(parameter {label} is {p.dtype}); optimize torch.view_as_real(p) instead"
                )
            if p.layout != torch.strided:
                raise ValueError(f"parameter {label} is sparse; sparse parameters are unsupported")
            if rule.group_wide and is_dtensor(p):
                raise ValueError(
                    f"{rule.name} sums over every parameter of its group, which sharded "
                    f"(DTensor) parameters would split across ranks: parameter {label} is a "
                    "DTensor; give FSDP-sharded parameters to another optimizer"
                )

    # -- stepping -------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns the closure's loss."""
        evaluation.check_training(self)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._flat is not None:  # parameters in place, gradients in the flat buffer
            self._flat.prepare()
        # Check everything (hyperparameters, sparse gradients) before changing anything.
        work = [w for gi, group in enumerate(self.param_groups) if (w := self._work(gi, group))]
        for item in work:
            group = self.param_groups[item.index]
            paths = self._paths_of(self.group_rule(group))
            path = self._path(group, item, paths)
            paths.sharded.step(path, self.state, item, group.get("param_names") or [])
        return loss

    def _work(self, gi: int, group: dict[str, Any]) -> GroupStep | None:
        """A group's step, checked; None when no parameter of it has a gradient."""
        hp = self._group_hyperparams(group)
        params = group["params"]
        maximize = bool(group.get("maximize", False))
        flat = self._flat
        if flat is not None and flat.clean:  # every gradient already checked: the flat views
            work = GroupStep(
                gi, list(params), params, hp, maximize, group.get("state_dtype"), flat.token
            )
            if flat.covers(gi, work.ids):
                return work
        # C-level loops (map, compress): a group may hold thousands of tensors
        grads = list(map(attrgetter("grad"), params))
        has_grad = list(map(is_not, grads, repeat(None)))
        active = list(params) if all(has_grad) else list(compress(params, has_grad))
        if not active:
            return None
        if set(map(attrgetter("layout"), compress(grads, has_grad))) != {torch.strided}:
            i = next(i for i, g in enumerate(grads) if g is not None and g.layout != torch.strided)
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients "
                f"(parameter {param_label(group.get('param_names'), gi, i)})"
            )
        return GroupStep(gi, active, group["params"], hp, maximize, group.get("state_dtype"))

    def _path(self, group: dict[str, Any], work: GroupStep, paths: RulePaths) -> Path:
        """The group-wide path for a group-wide rule (Prodigy); else the plain rule with
        ``foreach=False``; the compiled rule with ``fused=True``, and by default (both
        None) for a group large enough to repay the compile
        (``compiled.COMPILE_MIN_NUMEL``, or ``COMPILE_MIN_NUMEL_REDUCING`` for a rule that
        is not elementwise); else the multi-tensor path, or the plain rule where the rule
        is not elementwise with these hyperparameters (Adafactor, Adam with ``cautious``).
        Where compiling fails, the path it would take otherwise."""
        rule = paths.plain.rule
        if rule.group_wide:
            return paths.fast
        foreach, fused = group.get("foreach"), group.get("fused")
        if foreach is False:
            return paths.plain
        if fused and compiled.available():
            return paths.compiled
        if foreach is None and fused is None and paths.compiled.worthwhile(work):
            return paths.compiled
        return paths.fast if rule.elementwise_with(work.hyperparams) else paths.plain

    def _group_hyperparams(self, group: dict[str, Any]) -> dict[str, Any]:
        """The rule's validated hyperparameters for ``group`` (validation cached by value)."""
        arguments = self.group_arguments(group)
        values = (*arguments.rule_kwargs(group).values(), *map(group.get, arguments.flags))
        key: tuple | None = None
        # tensors can change in place; types tell 1 from 1.0 and True
        if not any(map(isinstance, values, repeat(torch.Tensor))):
            key = (arguments.spec.name, values, tuple(map(type, values)))
            try:
                hash(key)
            except TypeError:  # an array or list value: validate every time
                key = None
        cache = self._validated
        if key is not None and key in cache:
            return cache[key]
        hp = arguments.validate(group)
        if key is not None:
            if len(cache) > 64:
                cache.clear()
            cache[key] = hp
        return hp

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's ``zero_grad``; with flat storage and ``set_to_none=False``, each flat
        gradient buffer is zeroed in one pass (the gradients stay its views)."""
        if self._flat is None or set_to_none:
            super().zero_grad(set_to_none)
        else:
            self._flat.zero_grad(p for g in self.param_groups for p in g["params"])

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
            state_dict, self.param_groups, describe=self._describe, owner=type(self).__name__
        )
        self.__setstate__({"state": new_state, "param_groups": groups})  # new paths too
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def _describe(self, group: dict[str, Any]) -> state_dicts.GroupRule:
        """What loading needs to know of the rule of a (saved) param group."""
        defaults = self._defaults_for(dict(group))
        arguments = self.group_arguments(group)
        rule = arguments.spec.rule
        plain = self._paths_of(rule).plain
        fields = plain.fields + evaluation.extra_fields(rule)
        return state_dicts.GroupRule(
            rule.name, defaults, arguments.validate, fields, plain.required
        )
