"""The one place where torch sees a schedule: an ``LRScheduler`` whose state is the step.

Rule: the schedule gives the absolute learning rate. At scheduler step ``n`` (0 at
construction, +1 per ``scheduler.step()``) every param group gets ``lr = schedule(n)``;
the group's own ``lr`` is overwritten (pass one schedule per group for different rates,
or build the schedule with ``lr=`` the base rate). Resume is exact by construction: the
state dict holds the step and the repr of the schedule, and loading it sets the groups'
rates (and momentum) for that step at once, whatever order the optimizer is loaded in.

Momentum (``momentum_schedule``) goes where the optimizer keeps it. An optimlab optimizer
says so through its registry row: the rule's ``beta1`` (Adam-like, Lion) or ``momentum``
(SGD, RMSprop), under the torch argument that carries it (``spec.torch_key``: ``betas[0]``
for ``beta1``). Any other torch optimizer follows torch's conventions, as its
``OneCycleLR`` does: ``betas[0]`` if the group has ``betas``, else ``momentum`` (else a
group key ``beta1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..core import checks
from .base import Schedule

# the rule hyperparameters a momentum schedule drives, in order of preference
MOMENTUM_HYPERPARAMETERS = ("beta1", "momentum")
# torch's conventions for other optimizers: (group key, index in it or None)
TORCH_MOMENTUM_KEYS: tuple[tuple[str, int | None], ...] = (
    ("betas", 0),
    ("momentum", None),
    ("beta1", None),
)
Key = tuple[str, int | None]  # a group key, and the index into it for a tuple such as betas


def _per_group(name: str, value: Any, n_groups: int) -> list[Schedule]:
    items = list(value) if isinstance(value, Sequence) else [value] * n_groups
    if len(items) != n_groups:
        raise ValueError(
            f"{name} must be one schedule or one per param group ({n_groups}), got {len(items)}"
        )
    for s in items:
        if not isinstance(s, Schedule):
            raise TypeError(f"{name} must be an optimlab schedule, got {type(s).__name__}")
        if not isinstance(s(0), float):
            raise ValueError(f"{name} gives an array, not one number per step: {s!r}")
    return items


def _momentum_keys(optimizer: Optimizer) -> list[Key]:
    """Where each param group keeps its momentum (see the module docstring)."""
    spec = getattr(optimizer, "spec", None)  # optimlab optimizers carry their registry row
    groups = optimizer.param_groups
    if spec is not None and hasattr(spec, "torch_key"):
        hyper = next((h for h in MOMENTUM_HYPERPARAMETERS if h in spec.rule.names), None)
        if hyper is None:
            raise ValueError(
                f"momentum_schedule needs a momentum hyperparameter "
                f"({' or '.join(MOMENTUM_HYPERPARAMETERS)}); {spec.name} has "
                f"{', '.join(spec.rule.names)}"
            )
        return [spec.torch_key(hyper)] * len(groups)
    keys = []
    for index, group in enumerate(groups):
        key = next((k for k in TORCH_MOMENTUM_KEYS if k[0] in group), None)
        if key is None:
            raise ValueError(
                f"momentum_schedule needs param group {index} to have 'betas', 'momentum' or "
                f"'beta1'; it has {sorted(k for k in group if k != 'params')}"
            )
        keys.append(key)
    return keys


def _set_value(group: dict[str, Any], key: Key, value: float) -> None:
    """Set ``group[name]`` (or item ``index`` of it), in place for a tensor."""
    name, index = key
    current = group[name] if index is None else group[name][index]
    if isinstance(current, torch.Tensor):
        current.fill_(value)
    elif index is None:
        group[name] = value
    else:
        items = list(group[name])
        items[index] = value
        group[name] = tuple(items)


class ScheduleLR(LRScheduler):
    """An ``LRScheduler`` driven by optimlab schedules (see the module docstring for the rule).

    ``momentum_schedule`` (e.g. ``OneCycle(...).momentum()``) also sets each group's
    ``betas[0]`` (Adam-like), ``momentum`` (SGD-like) or ``beta1`` at every step.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule | Sequence[Schedule],
        momentum_schedule: Schedule | Sequence[Schedule] | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not a torch.optim.Optimizer")
        groups = optimizer.param_groups
        self.schedules = _per_group("schedule", schedule, len(groups))
        self.momentum_schedules: list[Schedule] | None = None
        self._momentum_keys: list[Key] = []
        if momentum_schedule is not None:
            self.momentum_schedules = _per_group(
                "momentum_schedule", momentum_schedule, len(groups)
            )
            self._momentum_keys = _momentum_keys(optimizer)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The rates at ``self.last_epoch``; also sets the momentum, as torch's cyclic ones do."""
        step = self.last_epoch
        if self.momentum_schedules is not None:
            for group, key, sched in zip(
                self.optimizer.param_groups,
                self._momentum_keys,
                self.momentum_schedules,
                strict=True,
            ):
                _set_value(group, key, sched(step))
        return [s(step) for s in self.schedules]

    def _identity(self) -> dict[str, Any]:
        moms = self.momentum_schedules
        return {
            "schedule": [repr(s) for s in self.schedules],
            "momentum_schedule": None if moms is None else [repr(s) for s in moms],
        }

    def state_dict(self) -> dict[str, Any]:
        """``{"step": n, "schedule": [repr per group], "momentum_schedule": ... or None}``."""
        return {"step": int(self.last_epoch), **self._identity()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue at the saved step; the saved schedules must equal this scheduler's."""
        missing = {"step", "schedule", "momentum_schedule"} - set(state_dict)
        if missing:
            raise ValueError(f"not a ScheduleLR state dict: missing {sorted(missing)}")
        for key, mine in self._identity().items():
            if state_dict[key] != mine:
                raise ValueError(
                    f"the saved {key} differs from this scheduler's: saved {state_dict[key]}, "
                    f"here {mine}"
                )
        self.last_epoch = checks.integer("step", state_dict["step"], 0)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            _set_value(group, ("lr", None), lr)
        self._last_lr = [
            g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
            for g in self.optimizer.param_groups
        ]


def to_torch(
    schedule: Schedule | Sequence[Schedule],
    optimizer: Optimizer,
    momentum_schedule: Schedule | Sequence[Schedule] | None = None,
) -> ScheduleLR:
    """A torch ``LRScheduler`` that sets ``lr = schedule(step)`` in every param group.

    >>> import torch
    >>> from optimlab import schedules
    >>> opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    >>> sched = schedules.to_torch(schedules.get("cosine", total_steps=10, lr=0.1), opt)
    >>> opt.param_groups[0]["lr"]
    0.1
    """
    return ScheduleLR(optimizer, schedule, momentum_schedule)
