"""The evaluation point of the torch classes: ``opt.eval()`` and ``opt.train()``.

Some rules step one point and guarantee the loss of another (``Rule.eval_point``):
schedule-free methods hold ``y`` in the parameters and evaluate the average ``x``, ASGD
evaluates its running average, Lookahead its slow weights. As with the ``schedulefree``
package, ``opt.eval()`` puts every parameter of such a group at that point and
``opt.train()`` puts the training point back, here exactly: the training point is kept
in the parameter's state under ``"train_point"`` while in eval mode (so a state dict
saved in eval mode holds it, and loading restores the mode), and copied back bitwise.
Groups in eval mode carry ``"train_mode": False``; ``step`` refuses to run then.
Rules without an evaluation point ignore both calls.
"""

from __future__ import annotations

from typing import Any

import torch

from ..rules.base import Rule
from .plain import real

# ``opt`` below is a ``base.RuleOptimizer`` (typed ``Any``: base imports this module)

TRAIN_POINT = "train_point"


def extra_fields(rule: Rule) -> tuple[str, ...]:
    """State keys beyond the rule's fields that a parameter of ``rule`` may hold."""
    return (TRAIN_POINT,) if rule.eval_point is not None else ()


@torch.no_grad()
def to_eval(opt: Any) -> None:
    """Every parameter of a group whose rule has an evaluation point moves there (the
    training point is kept); groups already in eval mode are left as they are."""
    for group in opt.param_groups:
        rule = opt.group_rule(group)
        if rule.eval_point is None or group.get("train_mode", True) is False:
            continue
        state_type = opt._paths_of(rule)[0].state_type
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:  # never stepped: the point is the parameter itself
                continue
            point = rule.evaluation_point(real(p), state_type(**state))
            state[TRAIN_POINT] = p.detach().clone()
            real(p).copy_(point)
        group["train_mode"] = False


@torch.no_grad()
def to_train(opt: Any) -> None:
    """Every parameter kept by :func:`to_eval` gets its training point back, bitwise."""
    for group in opt.param_groups:
        if group.get("train_mode", True) is not False:
            continue
        for p in group["params"]:
            state = opt.state.get(p)
            if state and TRAIN_POINT in state:
                p.copy_(state.pop(TRAIN_POINT))
        del group["train_mode"]


def check_training(opt: Any) -> None:
    """Refuse to step while a group is at its evaluation point."""
    if any(group.get("train_mode", True) is False for group in opt.param_groups):
        raise RuntimeError(
            f"{type(opt).__name__} is in eval mode (its parameters hold the evaluation "
            "point): call opt.train() before opt.step()"
        )
