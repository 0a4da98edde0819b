"""Torch's constructor arguments for a registry row, and their mapping to the rule's names.

A torch class takes ``betas=(0.9, 0.999)`` where the rule takes ``beta1`` and ``beta2``;
Adafactor's ``eps=(None, 1e-3)`` is the rule's ``eps1``/``eps2``. Everything else keeps its
name. Where the row names a ``torch.optim`` reference class, the signature (argument order,
positional/keyword kinds, torch-only flags) is read from that class so that ours can replace
it unchanged; the defaults always come from the registry row. Rule hyperparameters torch
lacks (Adam's ``bias_correction``, SGD's ``ema``) become extra keyword-only arguments.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..rules.registry import OptimizerSpec

P = inspect.Parameter

# Flags of torch's constructors that are not hyperparameters of the math. How each is
# treated (documented in docs/torch.md):
#   maximize        honoured: the gradient is negated before the rule, as torch does
#   foreach, fused  honoured as a choice of path: False (foreach) -> plain per-tensor rule,
#                   None/True -> our multi-tensor path; both True is an error, as in torch
#   capturable      accepted and ignored: per-step scalars are computed on the host
#   differentiable  only False: the step runs under no_grad, so True is refused
TORCH_FLAGS: dict[str, Any] = {
    "maximize": False,
    "foreach": None,
    "fused": None,
    "capturable": False,
    "differentiable": False,
}
# Flags every generated class takes, including those with no torch reference.
ALWAYS_FLAGS = ("maximize", "foreach")
# Our own keyword-only options, after torch's arguments in every class:
#   state_dtype     None: state in the parameter's dtype (as torch); a floating dtype:
#                   state created in it (fp32 moments for bf16 parameters)
EXTRA_FLAGS: dict[str, Any] = {"state_dtype": None}


@dataclass(frozen=True)
class Arg:
    """One constructor argument that carries hyperparameters: ``betas -> (beta1, beta2)``."""

    name: str
    targets: tuple[str, ...]
    default: Any

    @property
    def is_pair(self) -> bool:
        return len(self.targets) > 1


@dataclass(frozen=True)
class Adapter:
    """How one generated class maps torch-style arguments and group keys to its rule."""

    spec: OptimizerSpec
    args: tuple[Arg, ...]
    flags: tuple[str, ...]  # torch-only flags this class accepts (subset of TORCH_FLAGS)
    frozen: Mapping[str, Any]  # torch arguments the rule lacks: only their default is accepted
    signature: inspect.Signature  # without ``self``

    @property
    def class_name(self) -> str:
        return self.spec.torch_class

    def defaults(self, bound: Mapping[str, Any]) -> dict[str, Any]:
        """The group defaults from bound constructor arguments (``params`` excluded)."""
        return {k: v for k, v in bound.items() if k != "params"}

    def rule_kwargs(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """The rule's keyword arguments from a param group's (torch-named) values."""
        out: dict[str, Any] = {}
        for arg in self.args:
            value = group.get(arg.name, arg.default)
            if arg.is_pair:
                if not isinstance(value, tuple | list) or len(value) != len(arg.targets):
                    raise ValueError(
                        f"{arg.name} must be a pair ({', '.join(arg.targets)}), got {value!r}"
                    )
                out.update(zip(arg.targets, value, strict=True))
            else:
                out[arg.targets[0]] = value
        return out

    def check_flags(self, group: Mapping[str, Any]) -> None:
        """Validate the torch-only flags and frozen arguments of a group."""
        for name in ("maximize", "capturable", "differentiable"):
            if name in self.flags and not isinstance(group.get(name, False), bool):
                raise ValueError(f"{name} must be True or False, got {group[name]!r}")
        for name in ("foreach", "fused"):
            value = group.get(name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{name} must be None, True or False, got {value!r}")
        state_dtype = group.get("state_dtype")
        if state_dtype is not None and not (
            isinstance(state_dtype, torch.dtype) and state_dtype.is_floating_point
        ):
            raise ValueError(f"state_dtype must be None or a floating dtype, got {state_dtype!r}")
        if group.get("foreach") and group.get("fused"):
            raise ValueError("foreach and fused cannot both be True")
        if group.get("differentiable"):
            raise ValueError(
                f"{self.class_name}: differentiable=True is not supported (the step runs "
                "under torch.no_grad); use a functional optimizer to differentiate through it"
            )
        for name, default in self.frozen.items():
            if name in group and group[name] != default:
                raise ValueError(
                    f"{self.class_name} does not support {name}={group[name]!r} "
                    f"(only the default {default!r})"
                )

    def validate(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """Check a group's flags and hyperparameters; return the rule's validated kwargs."""
        self.check_flags(group)
        return self.spec.rule.validate(**self.rule_kwargs(group))


def _targets(torch_name: str, rule_names: tuple[str, ...]) -> tuple[str, ...] | None:
    """Rule names behind a torch argument: itself, or a pair ``beta1, beta2`` for ``betas``."""
    if torch_name in rule_names:
        return (torch_name,)
    for stem in (torch_name[:-1] if torch_name.endswith("s") else None, torch_name):
        if stem and f"{stem}1" in rule_names and f"{stem}2" in rule_names:
            return (f"{stem}1", f"{stem}2")
    return None


def _pairs(rule_names: tuple[str, ...]) -> dict[str, str]:
    """For a rule with no torch reference: ``beta1, beta2 -> betas``, ``eps1, eps2 -> eps``."""
    out = {}
    for name in rule_names:
        if name.endswith("1") and f"{name[:-1]}2" in rule_names:
            stem = name[:-1]
            out[name] = stem if stem.endswith("s") else f"{stem}s"
    return out


def _groups(spec: OptimizerSpec, names: tuple[str, ...]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """For a row with no torch reference: first rule name -> (torch argument, its rule
    names), from the row's ``torch_args``, else by the ``beta1, beta2 -> betas`` pattern."""
    if spec.torch_args:
        return {targets[0]: (arg, targets) for arg, targets in spec.torch_args.items()}
    return {name: (arg, (name, f"{name[:-1]}2")) for name, arg in _pairs(names).items()}


def _reference_parameters(reference: str | None) -> list[inspect.Parameter] | None:
    """The reference class's constructor arguments; None if there is no such class (this
    torch predates it: torch.optim.Adafactor is 2.5+), so the rule's order is used."""
    if reference is None:
        return None
    module_name, _, cls_name = reference.rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name, None)
    if cls is None:
        return None
    params = list(inspect.signature(cls.__init__).parameters.values())
    return [p for p in params if p.name not in ("self", "params")]


def build_adapter(spec: OptimizerSpec) -> Adapter:
    """The constructor signature and name mapping of ``spec``'s generated class."""
    rule = spec.rule
    names, defaults = rule.names, rule.defaults
    args: list[Arg] = []
    flags: list[str] = []
    frozen: dict[str, Any] = {}
    sig: list[inspect.Parameter] = [P("params", P.POSITIONAL_OR_KEYWORD)]
    used: set[str] = set()
    reference = _reference_parameters(spec.torch_reference)
    if reference is not None:
        for ref in reference:
            targets = spec.torch_args.get(ref.name) or _targets(ref.name, names)
            if ref.name in TORCH_FLAGS:
                flags.append(ref.name)
                default = TORCH_FLAGS[ref.name]
            elif targets is not None:
                default = (
                    tuple(defaults[t] for t in targets)
                    if len(targets) > 1
                    else (defaults[targets[0]])
                )
                args.append(Arg(ref.name, targets, default))
                used.update(targets)
            else:  # an argument of torch's the rule does not have: only torch's default
                default = frozen[ref.name] = ref.default
            sig.append(P(ref.name, ref.kind, default=default))
        for flag in ALWAYS_FLAGS:
            if flag not in flags:
                flags.append(flag)
                sig.append(P(flag, P.KEYWORD_ONLY, default=TORCH_FLAGS[flag]))
        kind = P.KEYWORD_ONLY
    else:
        kind = P.POSITIONAL_OR_KEYWORD
    extra: list[inspect.Parameter] = []
    groups = _groups(spec, names) if reference is None else {}
    for name in names:
        if name in used:
            continue
        if name in groups:
            arg_name, targets = groups[name]
            default = tuple(defaults[t] for t in targets)
            args.append(Arg(arg_name, targets, default))
            used.update(targets)
            extra.append(P(arg_name, kind, default=default))
        else:
            args.append(Arg(name, (name,), defaults[name]))
            used.add(name)
            extra.append(P(name, kind, default=defaults[name]))
    if reference is None:
        for flag in ALWAYS_FLAGS:
            flags.append(flag)
            extra.append(P(flag, P.KEYWORD_ONLY, default=TORCH_FLAGS[flag]))
    for flag, default in EXTRA_FLAGS.items():
        flags.append(flag)
        extra.append(P(flag, P.KEYWORD_ONLY, default=default))
    sig.extend(extra)
    return Adapter(spec, tuple(args), tuple(flags), frozen, inspect.Signature(sig))
