"""The constructor arguments of a generated class, and how they map to the rule's names.

Two sources, both data: the registry row's ``torch_args`` (``betas -> (beta1, beta2)``,
Adafactor's ``eps -> (eps1, eps2)``; every other hyperparameter keeps its name) and, where
the row names a ``torch.optim`` reference class, that class's signature (argument order,
positional/keyword kinds, torch-only flags), read at import so that ours can replace it
unchanged. Defaults always come from the registry row. Rule hyperparameters torch lacks
(Adam's ``bias_correction``, SGD's ``ema``) become extra keyword-only arguments; without a
reference class the arguments follow the rule's order.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..core import checks
from ..rules.registry import OptimizerSpec, get_spec

P = inspect.Parameter

# Flags of torch's constructors that are not hyperparameters of the math. How each is
# treated (documented in docs/torch.md):
#   maximize        honoured: the gradient is negated before the rule, as torch does
#   foreach, fused  honoured as a choice of path: foreach=False -> the plain per-tensor rule;
#                   fused=True -> the compiled rule (compiled.py); foreach=True or
#                   fused=False -> the eager multi-tensor path; both None (default) -> the
#                   compiled rule for large groups, else multi-tensor; both True is an error
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
ALWAYS_FLAGS = ("maximize", "foreach", "fused")
# Our own keyword-only options, after torch's arguments in every class:
#   state_dtype     None: state in the parameter's dtype (as torch); a floating dtype:
#                   state created in it (fp32 moments for bf16 parameters)
#   flat            False; True: the group's parameters and gradients become views of one
#                   flat buffer per (device, dtype) (flat.py)
EXTRA_FLAGS: dict[str, Any] = {"state_dtype": None, "flat": False}


@dataclass(frozen=True)
class Arg:
    """One constructor argument that carries hyperparameters: ``betas -> (beta1, beta2)``."""

    name: str
    targets: tuple[str, ...]
    default: Any

    @property
    def is_group(self) -> bool:
        """Whether the argument is a tuple of several hyperparameters."""
        return len(self.targets) > 1


@dataclass(frozen=True)
class Arguments:
    """How one generated class maps torch-style arguments and group keys to its rule."""

    spec: OptimizerSpec
    args: tuple[Arg, ...]
    flags: tuple[str, ...]  # torch-only flags this class accepts (subset of TORCH_FLAGS)
    frozen: Mapping[str, Any]  # torch arguments the rule lacks: only their default is accepted
    signature: inspect.Signature  # without ``self``

    @property
    def class_name(self) -> str:
        return self.spec.torch_class

    def rule_kwargs(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """The rule's keyword arguments from a param group's (torch-named) values."""
        out: dict[str, Any] = {}
        for arg in self.args:
            value = group.get(arg.name, arg.default)
            if arg.is_group:
                if not (isinstance(value, tuple | list) and len(value) == len(arg.targets)):
                    n = len(arg.targets)
                    what = "a pair" if n == 2 else f"a tuple of {n}"
                    raise ValueError(
                        f"{arg.name} must be {what} ({', '.join(arg.targets)}), got {value!r}"
                    )
                out.update(zip(arg.targets, value, strict=True))
            else:
                out[arg.targets[0]] = value
        return out

    def check_flags(self, group: Mapping[str, Any]) -> None:
        """Validate the torch-only flags and frozen arguments of a group."""
        for name in ("maximize", "capturable", "differentiable", "flat"):
            if name in self.flags:
                checks.flag(name, group.get(name, False))
        for name in ("foreach", "fused"):
            value = group.get(name)
            checks.require(
                value is None or isinstance(value, bool),
                f"{name} must be None, True or False, got {value!r}",
            )
        state_dtype = group.get("state_dtype")
        checks.require(
            state_dtype is None
            or (isinstance(state_dtype, torch.dtype) and state_dtype.is_floating_point),
            f"state_dtype must be None or a floating dtype, got {state_dtype!r}",
        )
        checks.require(
            not (group.get("foreach") and group.get("fused")),
            "foreach and fused cannot both be True",
        )
        checks.require(
            not group.get("differentiable"),
            f"{self.class_name}: differentiable=True is not supported (the step runs "
            "under torch.no_grad); use a functional optimizer to differentiate through it",
        )
        for name, default in self.frozen.items():
            checks.require(
                name not in group or group[name] == default,
                f"{self.class_name} does not support {name}={group.get(name)!r} "
                f"(only the default {default!r})",
            )

    def validate(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """Check a group's flags and hyperparameters; return the rule's validated kwargs.

        As in torch.optim, a group has one value per hyperparameter: a number or a
        1-element tensor, never an array or a larger tensor (which would apply another
        value per coordinate, or fail in the middle of a step)."""
        self.check_flags(group)
        return self.spec.rule.checked(self.rule_kwargs(group), arrays=False, tensors=True)


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


def _rule_args(spec: OptimizerSpec) -> dict[str, Arg]:
    """Every constructor argument that carries hyperparameters, in the rule's order (an
    argument carrying several sits where its first hyperparameter is)."""
    defaults = spec.rule.defaults
    carrier = {h: arg for arg, targets in spec.torch_args.items() for h in targets}
    out: dict[str, Arg] = {}
    for name in spec.rule.names:
        arg = carrier.get(name, name)
        if arg not in out:
            targets = tuple(spec.torch_args.get(arg, (name,)))
            default = tuple(defaults[t] for t in targets) if len(targets) > 1 else defaults[name]
            out[arg] = Arg(arg, targets, default)
    return out


def build_arguments(spec: OptimizerSpec) -> Arguments:
    """The constructor signature and name mapping of ``spec``'s generated class."""
    rule_args = _rule_args(spec)
    used: list[Arg] = []
    flags: list[str] = []
    frozen: dict[str, Any] = {}
    sig: list[inspect.Parameter] = [P("params", P.POSITIONAL_OR_KEYWORD)]
    reference = _reference_parameters(spec.torch_reference)
    for ref in reference or []:
        if ref.name in TORCH_FLAGS:
            flags.append(ref.name)
            default = TORCH_FLAGS[ref.name]
        elif ref.name in rule_args:
            used.append(rule_args[ref.name])
            default = rule_args[ref.name].default
        else:  # an argument of torch's the rule does not have: only torch's default
            default = frozen[ref.name] = ref.default
        sig.append(P(ref.name, ref.kind, default=default))
    # the rule's own arguments: after torch's (keyword-only), or all of them in the
    # rule's order when there is no reference class
    taken = {a.name for a in used}
    rest = [a for a in rule_args.values() if a.name not in taken]
    kind = P.KEYWORD_ONLY if reference is not None else P.POSITIONAL_OR_KEYWORD
    always = [P(f, P.KEYWORD_ONLY, default=TORCH_FLAGS[f]) for f in ALWAYS_FLAGS if f not in flags]
    flags += [p.name for p in always]
    own = [P(a.name, kind, default=a.default) for a in rest]
    extra = [*always, *own] if reference is not None else [*own, *always]
    for flag, default in EXTRA_FLAGS.items():
        flags.append(flag)
        extra.append(P(flag, P.KEYWORD_ONLY, default=default))
    args = (*used, *rest)
    return Arguments(spec, args, tuple(flags), frozen, inspect.Signature([*sig, *extra]))


@functools.cache
def arguments_for(name: str) -> Arguments:
    """The ``Arguments`` of the registered optimizer ``name`` (a param group that names
    another rule is validated and stepped with these)."""
    return build_arguments(get_spec(name))


def group_defaults(arguments: Arguments) -> dict[str, Any]:
    """Every constructor default of a generated class but ``params``: what a param
    group of that class holds when nothing is given."""
    return {
        name: p.default for name, p in arguments.signature.parameters.items() if name != "params"
    }
