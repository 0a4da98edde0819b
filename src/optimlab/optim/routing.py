"""Parameter routing: which rule optimizes each parameter of a model, with or without decay.

Matrix methods such as Muon are meant for the 2-D weights of hidden layers only; the
embeddings, the output head, biases and norm gains go to an element-wise method (AdamW),
and weight decay is customarily off for biases, norms and embeddings. :func:`plan` decides
this once per parameter from the model's structure (module types and shapes, never
parameter names); :func:`param_groups` turns the plan into torch param groups; and
:func:`table` prints the plan as a dry run::

    >>> import torch
    >>> from optimlab.optim import Muon, routing
    >>> model = torch.nn.Sequential(
    ...     torch.nn.Embedding(10, 8), torch.nn.Linear(8, 8), torch.nn.LayerNorm(8),
    ...     torch.nn.Linear(8, 10))
    >>> print(routing.table(routing.plan(model, "muon")))
    parameter  shape    role       optimizer  weight decay
    0.weight   (10, 8)  embedding  adamw      off
    1.weight   (8, 8)   matrix     muon       on
    1.bias     (8,)     bias       adamw      off
    2.weight   (8,)     norm       adamw      off
    2.bias     (8,)     norm       adamw      off
    3.weight   (10, 8)  head       adamw      on
    3.bias     (10,)    bias       adamw      off
    >>> opt = Muon(routing.param_groups(model, "muon", lr=0.02))   # one optimizer
    >>> [(g.get("optimizer", "muon"), len(g["params"])) for g in opt.param_groups]
    [('muon', 1), ('adamw', 1), ('adamw', 5)]

Roles, from the module that owns the parameter: ``embedding`` (an ``nn.Embedding`` or
``nn.EmbeddingBag``), ``norm`` (weight and bias of a normalisation layer: LayerNorm,
RMSNorm, GroupNorm, BatchNorm, InstanceNorm, LocalResponseNorm), ``bias`` (an attribute
named ``bias``), ``head`` (the output layer: by default the last 2-D weight of a module
that is not an embedding, in registration order), ``matrix`` (any other 2-D weight),
``tensor`` (more than two axes: convolution kernels) and ``vector`` (any other parameter
with fewer than two axes). A parameter shared by several modules (tied weights) takes
the role of its first owner.

Where each role goes: ``matrix`` to ``optimizer``; every other role too if that rule
takes parameters of any shape (``Rule.param_ndim is None``), else to ``fallback``;
``tensor`` goes to ``optimizer`` only if the rule takes its number of axes. Weight decay
is on for ``matrix``, ``head`` and ``tensor``, off for ``embedding``, ``norm``, ``bias``
and ``vector``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..core import checks
from ..rules.registry import get_spec

ROLES = ("matrix", "head", "tensor", "embedding", "norm", "bias", "vector")
DECAYED = frozenset({"matrix", "head", "tensor"})

_EMBEDDINGS = (torch.nn.Embedding, torch.nn.EmbeddingBag)
_NORMS: tuple[type, ...] = (
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.LocalResponseNorm,
    torch.nn.modules.batchnorm._NormBase,  # BatchNorm*d, InstanceNorm*d
    *((torch.nn.RMSNorm,) if hasattr(torch.nn, "RMSNorm") else ()),
)


@dataclass(frozen=True)
class Route:
    """Where one parameter goes: its role, the registered optimizer that steps it, and
    whether weight decay applies to it."""

    name: str
    shape: tuple[int, ...]
    role: str
    optimizer: str
    decay: bool


def _owned(model: torch.nn.Module) -> list[tuple[str, str, torch.nn.Module, torch.Tensor]]:
    """``(full name, attribute, owning module, parameter)`` for each trainable parameter,
    in ``named_parameters`` order, tied parameters once (under their first name)."""
    out, seen = [], set()
    for prefix, module in model.named_modules():
        for attr, p in module.named_parameters(prefix="", recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            out.append((f"{prefix}.{attr}" if prefix else attr, attr, module, p))
    order = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    return sorted(out, key=lambda item: order.get(item[0], math.inf))


def _role(attr: str, module: torch.nn.Module, p: torch.Tensor) -> str:
    if isinstance(module, _EMBEDDINGS):
        return "embedding"
    if isinstance(module, _NORMS):
        return "norm"
    if attr == "bias":
        return "bias"
    if p.ndim == 2:
        return "matrix"
    return "tensor" if p.ndim > 2 else "vector"


def _heads(owned: list[tuple[str, str, Any, Any]], roles: list[str], head: Any) -> set[str]:
    """Names of the head parameters: ``"auto"`` (the last matrix), None, or names."""
    if head is None:
        return set()
    if head == "auto":
        matrices = [name for (name, *_), role in zip(owned, roles, strict=True) if role == "matrix"]
        return set(matrices[-1:])
    names = {head} if isinstance(head, str) else set(head)
    known = {name for name, *_ in owned}
    unknown = sorted(names - known)
    checks.require(
        not unknown,
        f"head must name parameters of the model, got {unknown[0]!r}"
        if unknown
        else "head must name parameters of the model",
    )
    return names


def plan(
    model: torch.nn.Module,
    optimizer: str = "muon",
    *,
    fallback: str = "adamw",
    head: str | Sequence[str] | None = "auto",
) -> list[Route]:
    """The route of every trainable parameter of ``model`` (see the module docstring).

    ``optimizer`` and ``fallback`` are registered names; ``fallback`` must take
    parameters of any shape. ``head`` is ``"auto"`` (the last 2-D weight that is not an
    embedding), ``None`` (no head: every such weight is a hidden matrix) or the names of
    the head's parameters.
    """
    rule = get_spec(optimizer).rule
    back = get_spec(fallback)
    checks.require(
        back.rule.param_ndim is None,
        f"fallback must be an optimizer that takes parameters of any shape, got {fallback!r}",
    )
    owned = _owned(model)
    roles = [_role(attr, module, p) for _, attr, module, p in owned]
    heads = _heads(owned, roles, head)
    routes = []
    for (name, _, _, p), role in zip(owned, roles, strict=True):
        if name in heads:
            role = "head"
        takes = rule.param_ndim is None or (
            role in ("matrix", "tensor") and p.ndim == rule.param_ndim
        )
        routes.append(
            Route(name, tuple(p.shape), role, rule.name if takes else back.name, role in DECAYED)
        )
    return routes


def param_groups(
    model: torch.nn.Module,
    optimizer: str = "muon",
    *,
    fallback: str = "adamw",
    head: str | Sequence[str] | None = "auto",
    lr: float | None = None,
    weight_decay: float | None = None,
    fallback_hyperparams: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Torch param groups from :func:`plan`, for ``optimlab.optim`` classes of ``optimizer``.

    One group per (optimizer, decay) that has parameters, each holding ``(name, param)``
    pairs (so state dicts record names): the ``optimizer``'s groups first, without an
    ``"optimizer"`` key; groups for ``fallback`` carry ``"optimizer": fallback`` and
    ``fallback_hyperparams`` (torch names, e.g. ``{"lr": 3e-3, "betas": (0.9, 0.95)}``).
    ``lr`` and ``weight_decay``, where given, are set in every group (decayed groups;
    the others get ``weight_decay=0``); unset values are each rule's defaults.
    """
    routes = plan(model, optimizer, fallback=fallback, head=head)
    params = dict(model.named_parameters())
    main = get_spec(optimizer).name
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for r in routes:
        key = (r.optimizer, r.decay)
        if key not in groups:
            group: dict[str, Any] = {"params": []}
            if r.optimizer != main:
                group["optimizer"] = r.optimizer
                group.update(fallback_hyperparams or {})
            if lr is not None:
                group["lr"] = lr
            if "weight_decay" in get_spec(r.optimizer).rule.names:  # Rprop has none
                if not r.decay:
                    group["weight_decay"] = 0.0
                elif weight_decay is not None:
                    group["weight_decay"] = weight_decay
            groups[key] = group
        groups[key]["params"].append((r.name, params[r.name]))
    order = sorted(groups, key=lambda k: (k[0] != main, not k[1]))
    return [groups[k] for k in order]


def table(routes: Sequence[Route]) -> str:
    """The plan as aligned text columns: parameter, shape, role, optimizer, weight decay."""
    rows = [("parameter", "shape", "role", "optimizer", "weight decay")]
    rows += [
        (r.name, str(r.shape), r.role, r.optimizer, "on" if r.decay else "off") for r in routes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
