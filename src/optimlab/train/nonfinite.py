"""What to do when a gradient holds NaN or inf: raise, skip the step, or let it through.

Usable on its own around any ``torch.optim.Optimizer``::

    loss.backward()
    took_step = guarded_step(optimizer, policy="skip")   # False: nothing changed

``"skip"`` leaves parameters, optimizer state and any step counter untouched (the optimizer's
``step`` is simply not called); ``"raise"`` raises :class:`NonFiniteGradientError` before
anything changes; ``"propagate"`` steps anyway, as plain torch would.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, cast

from ..core import checks

if TYPE_CHECKING:
    import torch

Policy = Literal["raise", "skip", "propagate"]
POLICIES: tuple[str, ...] = ("raise", "skip", "propagate")


class NonFiniteGradientError(FloatingPointError):
    """A gradient (or its norm) is NaN or infinite and the policy is ``"raise"``."""


def check_policy(policy: object, name: str = "nonfinite") -> Policy:
    """Return ``policy`` if it is one of ``"raise"``, ``"skip"``, ``"propagate"``."""
    return cast(Policy, checks.choice(name, policy, POLICIES))


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every parameter of every group, in order."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def grads_finite(params: Iterable[torch.Tensor]) -> bool:
    """Whether every existing gradient is finite (``None`` gradients count as finite)."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    # One fused reduction per tensor, then a single host sync.
    flags = torch.stack([torch.isfinite(g).all() for g in grads])
    return bool(flags.all())


def resolve(finite: bool, policy: Policy, what: str = "gradient") -> bool:
    """Apply ``policy`` to a finiteness verdict: True means "take the step"."""
    check_policy(policy)
    if finite or policy == "propagate":
        return True
    if policy == "raise":
        raise NonFiniteGradientError(
            f"non-finite {what} (NaN or inf); parameters left unchanged "
            "(use nonfinite='skip' to skip such steps)"
        )
    return False


def guarded_step(optimizer: torch.optim.Optimizer, policy: Policy = "skip") -> bool:
    """``optimizer.step()`` unless a gradient is non-finite; returns whether it stepped."""
    check_policy(policy)
    if resolve(grads_finite(optimizer_params(optimizer)), policy):
        optimizer.step()
        return True
    return False
