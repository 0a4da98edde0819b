"""The registry: every optimizer optimlab knows, as one explicit table.

A row names a rule, optionally with other defaults and with settings fixed (``momentum``
is SGD with ``momentum=0.9``; ``adamw`` is Adam with decoupled weight decay), plus what
the torch layer needs: the class name in ``optimlab.optim``, torch's own class with the
same algorithm, and which torch constructor arguments carry several of the rule's
hyperparameters (``betas=(beta1, beta2)``). Adding an optimizer is one rule file and one
row here (docs/contributing.md).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.names import unknown_name
from . import (
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    ademamix,
    asgd,
    lamb,
    lion,
    lookahead,
    mars,
    muon,
    nadam,
    prodigy,
    radam,
    rmsprop,
    rprop,
    schedulefree,
    sgd,
)
from .base import Rule


@dataclass(frozen=True)
class OptimizerSpec:
    """One registered optimizer.

    ``rule`` is the effective rule: its defaults are this row's and fixed settings are
    bound into ``update`` (so they are neither validated nor settable by users).
    ``torch_class`` is the class name exported by ``optimlab.optim``; ``torch_reference``
    the ``torch.optim`` class with the same algorithm (None where torch has none).
    ``torch_args`` maps a torch constructor argument to the rule hyperparameters it
    carries, only where the names differ: ``{"betas": ("beta1", "beta2")}``. Every other
    hyperparameter is a torch argument of its own name. The generated torch class, the
    memory accounting of live optimizers and the LR scheduler adapter all read this one
    mapping.
    """

    rule: Rule
    torch_class: str
    torch_reference: str | None = None
    torch_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        carried = [h for targets in self.torch_args.values() for h in targets]
        unknown = sorted(set(carried) - set(self.rule.names))
        if unknown or len(carried) != len(set(carried)):
            raise ValueError(
                f"torch_args of {self.rule.name} must map torch arguments to distinct "
                f"hyperparameters of its rule ({', '.join(self.rule.names)}), "
                f"got {dict(self.torch_args)}"
            )

    @property
    def name(self) -> str:
        return self.rule.name

    def torch_key(self, hyper: str) -> tuple[str, int | None]:
        """Where a rule hyperparameter sits among torch-style arguments: ``("betas", 0)``
        for ``beta1``, ``("lr", None)`` for ``lr`` (an argument of its own name)."""
        for arg, targets in self.torch_args.items():
            if hyper in targets:
                return arg, targets.index(hyper)
        return hyper, None

    def from_torch(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The rule hyperparameters among torch-named ``values`` (a param group):
        ``betas=(0.9, 0.99)`` gives ``beta1=0.9, beta2=0.99``; other keys are left out."""
        out = {k: v for k, v in values.items() if k in self.rule.names}
        for arg, targets in self.torch_args.items():
            if arg in values:
                out.update(zip(targets, values[arg], strict=True))
        return out


def derive(
    base: Rule,
    name: str,
    summary: str,
    defaults: Mapping[str, Any] = {},
    fixed: Mapping[str, Any] = {},
) -> Rule:
    """``base`` under another name, with other defaults and some settings fixed.

    The fixed settings are bound into ``update``, which keeps ``base.update``'s docstring
    (the math) and shows the signature without them.
    """
    hyperparams = tuple(
        dataclasses.replace(h, default=defaults.get(h.name, h.default))
        for h in base.hyperparams
        if h.name not in fixed
    )
    fixed = dict(fixed)

    def state_numel(shape: tuple[int, ...], hp: Mapping[str, Any]) -> int:
        return base.state_numel(shape, {**hp, **fixed})

    return dataclasses.replace(
        base,
        name=name,
        summary=summary,
        update=_bind(base.update, fixed) if fixed else base.update,
        hyperparams=hyperparams,
        state_numel=state_numel,
        checks=tuple(functools.partial(_with_fixed, c, fixed) for c in base.checks),
    )


def _bind(update: Any, fixed: dict[str, Any]) -> Any:
    """``update`` with the keyword arguments ``fixed`` bound, documented as ``update``."""

    def bound(grad: Any, state: Any, param: Any, **hp: Any) -> Any:
        return update(grad, state, param, **hp, **fixed)

    functools.update_wrapper(bound, update)
    signature = inspect.signature(update)
    bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name not in fixed]
    )
    return bound


def _with_fixed(check: Any, fixed: dict[str, Any], hp: Mapping[str, Any]) -> None:
    check({**hp, **fixed})


_BETAS = {"betas": ("beta1", "beta2")}

REGISTRY: tuple[OptimizerSpec, ...] = (
    OptimizerSpec(sgd.SGD, "SGD", "torch.optim.SGD"),
    OptimizerSpec(
        derive(sgd.SGD, "momentum", "SGD with heavy-ball momentum 0.9.", {"momentum": 0.9}),
        "Momentum",
        "torch.optim.SGD",
    ),
    OptimizerSpec(
        derive(
            sgd.SGD,
            "nesterov",
            "SGD with Nesterov momentum 0.9.",
            {"momentum": 0.9, "nesterov": True},
        ),
        "Nesterov",
        "torch.optim.SGD",
    ),
    OptimizerSpec(adam.ADAM, "Adam", "torch.optim.Adam", torch_args=_BETAS),
    OptimizerSpec(
        derive(
            adam.ADAM,
            "adamw",
            "Adam with decoupled weight decay.",
            {"weight_decay": 1e-2},
            {"decoupled_weight_decay": True},
        ),
        "AdamW",
        "torch.optim.AdamW",
        torch_args=_BETAS,
    ),
    OptimizerSpec(adagrad.ADAGRAD, "Adagrad", "torch.optim.Adagrad"),
    OptimizerSpec(rmsprop.RMSPROP, "RMSprop", "torch.optim.RMSprop"),
    OptimizerSpec(nadam.NADAM, "NAdam", "torch.optim.NAdam", torch_args=_BETAS),
    OptimizerSpec(radam.RADAM, "RAdam", "torch.optim.RAdam", torch_args=_BETAS),
    OptimizerSpec(
        adafactor.ADAFACTOR,
        "Adafactor",
        "torch.optim.Adafactor",
        torch_args={"eps": ("eps1", "eps2")},
    ),
    OptimizerSpec(lion.LION, "Lion", None, torch_args=_BETAS),
    # torch.optim's remaining algorithms (issue 13); LBFGS and SparseAdam: see rules/__init__
    OptimizerSpec(adamax.ADAMAX, "Adamax", "torch.optim.Adamax", torch_args=_BETAS),
    OptimizerSpec(adadelta.ADADELTA, "Adadelta", "torch.optim.Adadelta"),
    OptimizerSpec(
        rprop.RPROP,
        "Rprop",
        "torch.optim.Rprop",
        torch_args={
            "etas": ("eta_minus", "eta_plus"),
            "step_sizes": ("step_size_min", "step_size_max"),
        },
    ),
    OptimizerSpec(asgd.ASGD, "ASGD", "torch.optim.ASGD"),
    OptimizerSpec(
        muon.MUON,
        "Muon",
        "torch.optim.Muon",
        torch_args={"ns_coefficients": ("ns_a", "ns_b", "ns_c")},
    ),
    # the methods compared in recent LLM-training studies (issue 13)
    OptimizerSpec(schedulefree.SGD_SCHEDULEFREE, "SGDScheduleFree"),
    OptimizerSpec(schedulefree.ADAMW_SCHEDULEFREE, "AdamWScheduleFree", torch_args=_BETAS),
    OptimizerSpec(ademamix.ADEMAMIX, "AdEMAMix", torch_args={"betas": ("beta1", "beta2", "beta3")}),
    OptimizerSpec(mars.MARS, "MARS", torch_args=_BETAS),
    OptimizerSpec(lamb.LAMB, "LAMB", torch_args=_BETAS),
    OptimizerSpec(prodigy.PRODIGY, "Prodigy", torch_args=_BETAS),
)
# a wrapper around another row (issue 13): Lookahead around AdamW
REGISTRY += (
    OptimizerSpec(
        lookahead.lookahead(
            next(s.rule for s in REGISTRY if s.name == "adamw"),
            "lookahead",
            "Lookahead around AdamW: every k steps, slow weights move alpha towards the fast.",
        ),
        "Lookahead",
        torch_args=_BETAS,
    ),
)

_BY_NAME = {spec.name: spec for spec in REGISTRY}


def list_optimizers() -> list[str]:
    """Names of every registered optimizer, sorted."""
    return sorted(_BY_NAME)


def get_spec(name: str) -> OptimizerSpec:
    """The registry row for ``name``; unknown names suggest the closest known ones."""
    key = name.lower() if isinstance(name, str) else name
    try:
        return _BY_NAME[key]
    except (KeyError, TypeError):
        raise unknown_name("optimizer", name, _BY_NAME, match=str(name).lower()) from None


def get_rule(name: str) -> Rule:
    """The rule of a registered optimizer, with its hyperparameter specs."""
    return get_spec(name).rule
