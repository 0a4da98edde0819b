"""Which rule steps which parameters of a torch model, for one group of settings.

A group's rule steps every parameter with the group's hyperparameters. An elementwise
rule (``Rule.elementwise_with`` its options) steps them all as one flat vector per
setting: each element's update needs only that element, so this is the arithmetic of one
update per tensor in a dozen ops per step instead of a dozen per tensor (what a sweep of a
small model spends most of its update time on). Two cases differ:

- A rule for matrices only (``Rule.param_ndim``: Muon) gets the parameters that
  ``optimlab.optim.routing.plan`` sends to it (hidden 2-D weights); the others (the
  embeddings, the output head, biases, norms) go to AdamW with its default betas and eps,
  the setting's learning rate (so its schedule too) and the setting's ``weight_decay``
  where decay applies (``0`` for embeddings, norms and biases): one learning rate and
  one decay for the whole model, as in Liu et al. (2025), whose ``match_rms_adamw``
  scaling makes Muon's steps the size of AdamW's.
- A group-wide rule (``Rule.group_wide``: Prodigy) steps all its parameters together as
  one flat vector per setting, as the torch classes do with a param group.

A :class:`Stepper` holds the rule states of these *units* and gives each step's updates
and the evaluation point (``Rule.eval_point``: schedule-free's ``x``) by parameter name,
for K stacked settings (``batched``: hyperparameters as ``(K, 1, ...)`` tensors, a
leading config axis on every parameter) or for one setting on the model's own tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...optim import routing
from ...rules.base import Rule
from ...rules.registry import get_rule
from .grouping import Group
from .loop import take

FALLBACK = "adamw"  # where a matrix rule's other parameters go


@dataclass
class Unit:
    """Parameters stepped by one rule with one set of hyperparameters: one tensor, or
    several as one flat vector (``flat``: an elementwise or a group-wide rule)."""

    names: list[str]
    rule: Rule
    floats: dict[str, np.ndarray]  # (K,) per float hyperparameter (lr is the step's)
    flags: dict[str, Any]
    flat: bool = False


def _fallback(group: Group, decay: bool) -> tuple[Rule, dict[str, np.ndarray], dict[str, Any]]:
    """AdamW for a matrix rule's other parameters: its defaults, the setting's decay."""
    rule = get_rule(FALLBACK)
    k = group.size
    floats = {
        h.name: np.full(k, float(h.default))
        for h in rule.hyperparams
        if h.kind == "float" and h.name != "lr" and h.default is not None
    }
    if not decay:
        floats["weight_decay"] = np.zeros(k)
    elif "weight_decay" in group.floats:
        floats["weight_decay"] = group.floats["weight_decay"].copy()
    flags = {h.name: h.default for h in rule.hyperparams if h.kind != "float"}
    return rule, floats, flags


def units(group: Group, model: torch.nn.Module, names: list[str]) -> list[Unit]:
    """The units of ``group``'s rule over the trainable parameters ``names`` of ``model``."""
    rule = group.rule
    if rule.group_wide or _one_vector(group, model, names):
        return [Unit(list(names), rule, group.floats, group.flags, flat=True)]
    if rule.param_ndim is None:
        return [Unit([n], rule, group.floats, group.flags) for n in names]
    routes = {r.name: r for r in routing.plan(model, rule.name, fallback=FALLBACK)}
    out = []
    for n in names:
        route = routes[n]
        if route.optimizer == rule.name:
            out.append(Unit([n], rule, group.floats, group.flags))
        else:
            out.append(Unit([n], *_fallback(group, route.decay)))
    return out


def _one_vector(group: Group, model: torch.nn.Module, names: list[str]) -> bool:
    """Whether the group's rule can step ``names`` as one flat vector: it is elementwise
    with the group's options, takes any shape, and the parameters share dtype and device."""
    rule = group.rule
    if rule.param_ndim is not None or not rule.elementwise_with(group.flags):
        return False
    params = dict(model.named_parameters())
    return len({(params[n].dtype, params[n].device) for n in names}) == 1


class Stepper:
    """The rule states of a model's units, and each step's updates by parameter name.

    ``params`` maps names to tensors: stacked ``(K, *shape)`` if ``batched``, else the
    model's own (detached) tensors, one setting.
    """

    def __init__(self, unit_list: list[Unit], params: Mapping[str, torch.Tensor], batched: bool):
        self.units, self.batched = unit_list, batched
        self.extra = [  # the config axis, for rules that reduce (Adam's cautious mask too)
            {"batch_ndim": 1} if batched and not u.rule.elementwise_with(u.flags) else {}
            for u in unit_list
        ]
        self.hp: list[dict[str, Any]] = []
        for u in unit_list:
            like = self._gather(u, params)
            if batched:
                self.hp.append({k: _column(v, like) for k, v in u.floats.items()})
            else:
                self.hp.append({k: float(v[0]) for k, v in u.floats.items()})
        self.state = [
            u.rule.init(self._gather(u, params), **extra)
            for u, extra in zip(unit_list, self.extra, strict=True)
        ]

    def _gather(self, unit: Unit, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The unit's tensor: its one parameter, or all of them flattened together."""
        if not unit.flat:
            return tensors[unit.names[0]]
        lead = 1 if self.batched else 0
        return torch.cat([tensors[n].flatten(lead) for n in unit.names], dim=lead)

    def _scatter(self, unit: Unit, flat: torch.Tensor, like: Mapping[str, torch.Tensor]):
        """``flat`` cut back into the unit's parameters, views shaped like ``like``'s
        (batched: each with ``flat``'s number of rows)."""
        if not unit.flat:
            return {unit.names[0]: flat}
        lead = 1 if self.batched else 0
        sizes = [like[n][0].numel() if self.batched else like[n].numel() for n in unit.names]
        pieces = flat.split(sizes, dim=lead)
        return {
            n: piece.reshape(flat.shape[:lead] + like[n].shape[lead:])
            for n, piece in zip(unit.names, pieces, strict=True)
        }

    @property
    def whole(self) -> Unit | None:
        """The unit, where one flat unit steps every parameter: its owner may then keep
        the parameters as one flat tensor (:meth:`flat`, :meth:`split`, :meth:`delta`)."""
        return self.units[0] if len(self.units) == 1 and self.units[0].flat else None

    def flat(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The whole unit's parameters as one flat tensor (``(K, N)`` batched)."""
        assert self.whole is not None
        return self._gather(self.whole, tensors)

    def split(self, flat: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict:
        """``flat`` (the whole unit's) as views shaped like ``like``'s tensors."""
        assert self.whole is not None
        return self._scatter(self.whole, flat, like)

    def delta(self, p: torch.Tensor, g: torch.Tensor, lr: Any) -> torch.Tensor:
        """The whole unit's update of flat parameters ``p`` with flat gradients ``g``."""
        return self._delta(0, p, g, lr, {})

    def deltas(
        self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor], lr: Any
    ) -> dict[str, torch.Tensor]:
        """One update of every unit; ``lr`` is a float, or a ``(K,)`` float64 tensor."""
        out: dict[str, torch.Tensor] = {}
        # the step's learning rate and per-step scalars (Rule.per_step) are the same for
        # every tensor of one kind that one rule steps with one set of hyperparameters
        per_kind: dict[tuple, tuple[Any, dict[str, Any]]] = {}
        for i, u in enumerate(self.units):
            p, g = self._gather(u, params), self._gather(u, grads)
            out.update(self._scatter(u, self._delta(i, p, g, lr, per_kind), params))
        return out

    def _delta(
        self, i: int, p: torch.Tensor, g: torch.Tensor, lr: Any, per_kind: dict
    ) -> torch.Tensor:
        """Unit ``i``'s update; its learning rate and scalars are kept in ``per_kind``."""
        u = self.units[i]
        kind = (u.rule.name, id(u.floats), p.ndim, p.dtype, p.device)
        if kind not in per_kind:
            lr_u = lr
            if self.batched:
                lr_u = lr.to(device=p.device, dtype=p.dtype).reshape(
                    (len(lr),) + (1,) * (p.ndim - 1)
                )
            kw = {**self.hp[i], **u.flags, **self.extra[i]}
            step = u.rule.per_step
            scalars = {} if step is None else {"scalars": step(self.state[i], lr=lr_u, **kw)}
            per_kind[kind] = lr_u, scalars
        lr_u, scalars = per_kind[kind]
        delta, self.state[i] = u.rule.update(
            g, self.state[i], p, lr=lr_u, **self.hp[i], **u.flags, **self.extra[i], **scalars
        )
        return delta

    @property
    def moves_evaluation(self) -> bool:
        """Whether some unit evaluates elsewhere than at its parameters."""
        return any(u.rule.eval_point is not None for u in self.units)

    def evaluation_params(self, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The parameters to evaluate the model at (``Rule.evaluation_point`` per unit)."""
        out = dict(params)
        for u, state in zip(self.units, self.state, strict=True):
            if u.rule.eval_point is not None:
                point = u.rule.evaluation_point(self._gather(u, params), state)
                out.update(self._scatter(u, point, params))
        return out

    def keep(self, index: torch.Tensor, size: int) -> None:
        """Keep rows ``index`` of every state and hyperparameter (batched only)."""
        self.state, self.hp = take((self.state, self.hp), index, size)


def _column(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``(K,)`` values as a ``(K, 1, ...)`` tensor that broadcasts against ``like``."""
    shape = (len(values),) + (1,) * (like.ndim - 1)
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(shape)
