"""Drop-in ``torch.optim`` optimizers, one per registered rule, generated from the registry.

>>> import torch
>>> from optimlab.optim import AdamW
>>> w = torch.nn.Parameter(torch.ones(3))
>>> opt = AdamW([w], lr=0.1)            # torch.optim.AdamW's signature and defaults
>>> w.sum().backward(); opt.step()
>>> [round(x, 4) for x in w.tolist()]    # first Adam step: lr, plus decay lr * wd * w
[0.899, 0.899, 0.899]

Each class (``SGD, Momentum, Nesterov, Adam, AdamW, Adagrad, RMSprop, NAdam, RAdam,
Adafactor, Lion``, and any row added later) is ``RuleOptimizer`` plus an adapter from
torch's argument names to the rule's; ``create_optimizer(name, params, **hp)`` builds one
by registry name and also accepts the rule's own names (``beta1`` for ``betas[0]``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ..rules.registry import REGISTRY, OptimizerSpec, get_spec
from ._adapter import Adapter, build_adapter
from .base import RuleOptimizer

__all__ = ["RuleOptimizer", "create_optimizer", "optimizer_class", "CLASSES"]


def _class_doc(spec: OptimizerSpec, adapter: Adapter) -> str:
    rule = spec.rule
    ref = (
        f"Same algorithm and signature as ``{spec.torch_reference}``."
        if (spec.torch_reference)
        else "torch has no equivalent."
    )
    lines = [f"{rule.summary}", "", f"Generated from the ``{rule.name}`` rule. {ref}", ""]
    lines.append("Arguments (torch name -> rule hyperparameter):")
    for arg in adapter.args:
        docs = "; ".join(rule.hyper(t).doc for t in arg.targets)
        target = ", ".join(arg.targets)
        lines.append(f"    {arg.name}={arg.default!r} -> {target}: {docs}")
    lines.append(
        f"Flags: {', '.join(adapter.flags)} (maximize negates the gradient; foreach=False "
        "runs the plain per-tensor rule; fused is accepted, capturable ignored, "
        "differentiable must be False; state_dtype sets the dtype of new state)."
    )
    # the rule's doctest examples call the NumPy rule: keep only its math here
    math = (rule.update.__doc__ or "").split(">>>")[0].rstrip()
    lines += ["", "Update rule (from the rule's docstring):", "", math]
    if rule.paper:
        lines += ["", rule.paper]
    return "\n".join(lines)


def _make_class(spec: OptimizerSpec) -> type[RuleOptimizer]:
    adapter = build_adapter(spec)
    signature = adapter.signature

    def __init__(self: RuleOptimizer, *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{spec.torch_class}(): {exc}") from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        RuleOptimizer.__init__(self, values.pop("params"), values)

    self_param = signature.parameters["params"].replace(name="self")
    __init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *signature.parameters.values()]
    )
    __init__.__qualname__ = f"{spec.torch_class}.__init__"
    namespace = {
        "__init__": __init__,
        "_adapter": adapter,
        "__doc__": _class_doc(spec, adapter),
        "__module__": __name__,
        "__qualname__": spec.torch_class,
    }
    return type(spec.torch_class, (RuleOptimizer,), namespace)


CLASSES: dict[str, type[RuleOptimizer]] = {spec.name: _make_class(spec) for spec in REGISTRY}
for _spec in REGISTRY:
    globals()[_spec.torch_class] = CLASSES[_spec.name]
    __all__.append(_spec.torch_class)


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
    adapter = cls._adapter
    kwargs = dict(hyperparams)
    for arg in adapter.args:
        if arg.is_pair and any(t in kwargs for t in arg.targets):
            if arg.name in kwargs:
                raise ValueError(f"give either {arg.name} or {', '.join(arg.targets)}, not both")
            kwargs[arg.name] = tuple(
                kwargs.pop(t, d) for t, d in zip(arg.targets, arg.default, strict=True)
            )
    known = [n for n in adapter.signature.parameters if n != "params"]
    for key in kwargs:
        if key not in known:
            rule_names = [t for a in adapter.args for t in a.targets]
            close = difflib.get_close_matches(key, known + rule_names, n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"{name} has no hyperparameter {key!r}{hint} (known: {', '.join(known)})"
            )
    return cls(params, **kwargs)
