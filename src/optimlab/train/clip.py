"""Gradient clipping by global norm or by value, with a non-finite policy.

Unlike ``torch.nn.utils.clip_grad_norm_``, a non-finite norm never multiplies NaN into
the gradients: the gradients are left exactly as they are and the policy decides
(``"raise"``, ``"skip"`` or ``"propagate"``, see :mod:`optimlab.train.nonfinite`). The
clip coefficient is ``max_norm / norm`` with no epsilon, so a clipped gradient has norm
``max_norm`` up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..core import checks
from .nonfinite import Policy, check_policy, resolve

if TYPE_CHECKING:
    import torch


def _grads(params: torch.Tensor | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    import torch

    if isinstance(params, torch.Tensor):
        params = [params]
    return [p.grad for p in params if p.grad is not None]


def _norm_type(value: object) -> float:
    """``norm_type``: a number >= 1, or ``inf`` (the max norm)."""
    if isinstance(value, float) and value == math.inf:
        return value
    try:
        return float(checks.real("norm_type", value, 1.0))
    except ValueError:  # the same check, naming the one non-finite value allowed
        raise ValueError(f"norm_type must be >= 1 or inf, got {checks.show(value)}") from None


def _norm(grads: list[torch.Tensor], norm_type: float) -> float:
    import torch

    if not grads:
        return 0.0
    # Accumulate in float64 so the reported norm does not depend on the grad dtype's range.
    norms = [torch.linalg.vector_norm(g, norm_type, dtype=torch.float64) for g in grads]
    return float(torch.linalg.vector_norm(torch.stack(norms), norm_type))


def grad_norm(params: torch.Tensor | Iterable[torch.Tensor], norm_type: float = 2.0) -> float:
    """The global ``norm_type``-norm of all existing gradients (0.0 if there are none)."""
    return _norm(_grads(params), _norm_type(norm_type))


def clip_grad_norm(
    params: torch.Tensor | Iterable[torch.Tensor],
    max_norm: float,
    *,
    norm_type: float = 2.0,
    nonfinite: Policy = "raise",
) -> float:
    """Scale all gradients together so their global norm is at most ``max_norm``.

    Returns the norm before clipping. Gradients with norm <= ``max_norm`` are not touched.
    A non-finite norm leaves every gradient unchanged and follows ``nonfinite``
    (``"raise"`` raises :class:`~optimlab.train.nonfinite.NonFiniteGradientError`).

    >>> import torch
    >>> p = torch.zeros(2, requires_grad=True); p.grad = torch.tensor([3.0, 4.0])
    >>> clip_grad_norm([p], 1.0), p.grad.tolist()
    (5.0, [0.6000000238418579, 0.800000011920929])
    """
    max_norm = float(checks.real("max_norm", max_norm, 0.0, low_open=True))
    norm_type = _norm_type(norm_type)
    check_policy(nonfinite)
    grads = _grads(params)
    total = _norm(grads, norm_type)
    if not math.isfinite(total):
        resolve(False, nonfinite, "gradient norm")
        return total
    if total > max_norm:
        coef = max_norm / total
        for g in grads:
            g.mul_(coef)
    return total


def clip_grad_value(
    params: torch.Tensor | Iterable[torch.Tensor],
    clip_value: float,
    *,
    nonfinite: Policy = "raise",
) -> float:
    """Clamp every gradient element into ``[-clip_value, clip_value]``.

    Returns the global 2-norm before clipping. Non-finite gradients are left unchanged
    (an inf is not silently turned into ``clip_value``) and follow ``nonfinite``.
    """
    clip_value = float(checks.real("clip_value", clip_value, 0.0, low_open=True))
    check_policy(nonfinite)
    grads = _grads(params)
    total = _norm(grads, 2.0)
    if not math.isfinite(total):
        resolve(False, nonfinite, "gradient")
        return total
    for g in grads:
        g.clamp_(-clip_value, clip_value)
    return total
