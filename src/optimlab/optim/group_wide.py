"""The group-wide path: a rule whose sums span a whole param group (``Rule.group_wide``).

Prodigy estimates one step size ``d`` from sums over every parameter of a group. This
path hands the rule the group's parameters with a gradient as one flat vector (their
real views flattened and concatenated in group order), then cuts the update and the new
state back into the parameters. Each parameter's state keeps the rule's fields: the
*per-element* slots (those ``init`` makes shaped like the parameter) hold that
parameter's slice, shaped like it; the other fields (``count``, ``d``, ...) are the
group's, stored as Python numbers in every stepped parameter's state. When some parameters have no
gradient at a step they keep their state, and the next step reads the group's fields
from a parameter with the highest ``count`` (one stepped last).
"""

from __future__ import annotations

from typing import Any

import torch

from .plain import GroupStep, PlainPath, States, grad_of, real, store


class GroupWidePath:
    """The rule over each group's parameters as one flat vector."""

    def __init__(self, plain: PlainPath) -> None:
        self.plain = plain
        self.rule = plain.rule
        probe = torch.zeros((2, 3))
        state = self.rule.init(probe, batch_ndim=0)
        self.per_element = tuple(
            f
            for f, v in zip(state._fields, state, strict=True)
            if isinstance(v, torch.Tensor) and v.shape == probe.shape
        )

    @property
    def fields(self) -> tuple[str, ...]:
        return self.plain.fields

    def step(self, states: States, work: GroupStep) -> None:
        """One update of the group's parameters that have a gradient, together."""
        params = work.params
        for p in params:
            if not states[p]:
                states[p].update(self.plain.init_state(p, work.state_dtype))
        latest = max(params, key=lambda p: states[p]["count"])
        values = [real(p) for p in params]
        sizes = [v.numel() for v in values]
        flat_param = torch.cat([v.reshape(-1) for v in values])
        flat_grad = torch.cat([real(grad_of(p)).reshape(-1) for p in params])
        if work.maximize:
            flat_grad = -flat_grad
        state = {
            f: torch.cat([states[p][f].reshape(-1) for p in params])
            if f in self.per_element
            else states[latest][f]
            for f in self.fields
        }
        delta, new = self.rule.update(
            flat_grad, self.plain.state_type(**state), flat_param, batch_ndim=0, **work.hyperparams
        )
        new_state: dict[str, Any] = {  # the group's numbers as Python numbers (prodigyopt's)
            f: v.item() if f not in self.per_element and isinstance(v, torch.Tensor) else v
            for f, v in new._asdict().items()
        }
        pieces = {f: new_state[f].split(sizes) for f in self.per_element}
        for i, (p, value, step) in enumerate(zip(params, values, delta.split(sizes), strict=True)):
            value.add_(step.view_as(value))
            mine = {
                f: pieces[f][i].view_as(value) if f in self.per_element else v
                for f, v in new_state.items()
            }
            store(states[p], mine, avoid=(p.grad, p), dtype=work.state_dtype)
