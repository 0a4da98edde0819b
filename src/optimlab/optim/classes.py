"""One ``torch.optim`` class per registry row, built by one function from the row alone.

``make_class(spec)`` gives ``RuleOptimizer`` a name (``spec.torch_class``), the row's
``Arguments`` (its signature, shown by ``inspect.signature`` and ``help``) and a docstring
carrying the rule's math. Adding a registry row adds its class: nothing here names an
algorithm.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from ..core.names import unknown_keyword
from ..rules.registry import REGISTRY, OptimizerSpec, get_spec
from .arguments import Arguments, build_arguments
from .base import RuleOptimizer


def class_doc(spec: OptimizerSpec, arguments: Arguments) -> str:
    """The docstring of a generated class: summary, arguments, flags, the rule's math."""
    rule = spec.rule
    ref = (
        f"Same algorithm and signature as ``{spec.torch_reference}``."
        if spec.torch_reference
        else "torch has no equivalent."
    )
    lines = [f"{rule.summary}", "", f"Generated from the ``{rule.name}`` rule. {ref}", ""]
    lines.append("Arguments (torch name -> rule hyperparameter):")
    for arg in arguments.args:
        docs = "; ".join(rule.hyper(t).doc for t in arg.targets)
        target = ", ".join(arg.targets)
        lines.append(f"    {arg.name}={arg.default!r} -> {target}: {docs}")
    lines.append(
        f"Flags: {', '.join(arguments.flags)} (maximize negates the gradient; foreach=False "
        "runs the plain per-tensor rule, foreach=True the eager multi-tensor path, "
        "fused=True the compiled rule, neither the fastest for the group's size; "
        "capturable is ignored, differentiable must be False; state_dtype sets the dtype "
        "of new state; flat=True keeps parameters and gradients in one flat buffer)."
    )
    # the rule's doctest examples call the NumPy rule: keep only its math here
    math = (inspect.getdoc(rule.update) or "").split(">>>")[0].rstrip()
    lines += ["", "Update rule (from the rule's docstring):", "", math]
    if rule.paper:
        lines += ["", rule.paper]
    return "\n".join(lines)


def make_class(spec: OptimizerSpec) -> type[RuleOptimizer]:
    """The ``torch.optim.Optimizer`` subclass of a registry row."""
    arguments = build_arguments(spec)
    namespace = {
        "_arguments": arguments,
        "__doc__": class_doc(spec, arguments),
        "__module__": "optimlab.optim",
        "__qualname__": spec.torch_class,
        # what inspect.signature(cls) and help(cls) show: torch's constructor arguments
        "__signature__": arguments.signature,
    }
    return type(spec.torch_class, (RuleOptimizer,), namespace)


CLASSES: dict[str, type[RuleOptimizer]] = {spec.name: make_class(spec) for spec in REGISTRY}
BY_CLASS_NAME: dict[str, type[RuleOptimizer]] = {c.__name__: c for c in CLASSES.values()}


def optimizer_class(name: str) -> type[RuleOptimizer]:
    """The generated class of a registered optimizer (``"adamw"`` -> ``AdamW``)."""
    return CLASSES[get_spec(name).name]


def create_optimizer(name: str, params: Iterable[Any], **hyperparams: Any) -> RuleOptimizer:
    """Build the optimizer registered as ``name`` over ``params``.

    Hyperparameters use torch's names (``betas=(0.9, 0.99)``) or the rule's
    (``beta1=0.9``); unknown names raise ``ValueError`` suggesting the closest.

    >>> import torch
    >>> opt = create_optimizer("adam", [torch.nn.Parameter(torch.zeros(2))], beta1=0.8)
    >>> opt.param_groups[0]["betas"]
    (0.8, 0.999)
    """
    cls = optimizer_class(name)
    arguments = cls._arguments
    kwargs = dict(hyperparams)
    for arg in arguments.args:
        if arg.is_group and any(t in kwargs for t in arg.targets):
            if arg.name in kwargs:
                raise ValueError(f"give either {arg.name} or {', '.join(arg.targets)}, not both")
            kwargs[arg.name] = tuple(
                kwargs.pop(t, d) for t, d in zip(arg.targets, arg.default, strict=True)
            )
    known = [n for n in arguments.signature.parameters if n != "params"]
    carried = [t for a in arguments.args if a.is_group for t in a.targets]
    for key in kwargs:
        if key not in known:
            raise unknown_keyword(name, key, [*known, *carried], "hyperparameter")
    return cls(params, **kwargs)
