"""Reductions over a parameter's own axes, shared by the rules that are not elementwise.

A parameter's leading ``batch_ndim`` axes hold settings of a batched sweep (K settings on
axis 0): reductions never cross them, so K settings stay independent. Each result keeps
its axes (shape ``(K, 1, ..., 1)``) so it broadcasts against the parameter.
"""

from __future__ import annotations

import math
from typing import Any


def own_axes(x: Any, batch_ndim: int) -> tuple[int, ...]:
    return tuple(range(batch_ndim, x.ndim))


def own_numel(x: Any, batch_ndim: int) -> int:
    return math.prod(x.shape[batch_ndim:])


def own_sum(xp: Any, x: Any, batch_ndim: int) -> Any:
    """Sum over the parameter's own axes, kept; ``x`` itself when it has none (a 0-d
    parameter; torch would read an empty axis tuple as "every axis")."""
    axes = own_axes(x, batch_ndim)
    return xp.sum(x, axis=axes, keepdims=True) if axes else x


def own_norm(xp: Any, x: Any, batch_ndim: int) -> Any:
    """Euclidean (Frobenius) norm over the parameter's own axes, one per setting."""
    return xp.sqrt(own_sum(xp, x * x, batch_ndim))


def cautious(xp: Any, u: Any, grad: Any, batch_ndim: int) -> Any:
    r"""The cautious mask of Liang et al. (2024) applied to an update direction ``u``
    (the step is ``-lr * u``): keep the coordinates where ``u`` agrees with the gradient
    and rescale so the update keeps its size on average,

    .. math::
        \phi = [u \odot g > 0], \qquad
        u \leftarrow u \odot \phi \cdot \frac{n}{\sum_i \phi_i + 1}

    with ``n`` and the sum over the parameter's own elements (one scale per setting).
    """
    agree = (u * grad) > 0
    # the count in u's dtype: torch would divide an integer tensor in float32
    count = xp.asarray(own_sum(xp, agree, batch_ndim), like=u)
    scale = own_numel(u, batch_ndim) / (count + 1)
    return xp.where(agree, u, 0.0) * scale


def is_array(x: Any) -> bool:
    """A hyperparameter given as an array (one value per setting), not a number."""
    # numbers first: a compiled step traces them as symbolic floats, which have no ndim
    return not isinstance(x, int | float) and getattr(x, "ndim", 0) > 0


def check_batched(name: str, flag: str, batch_ndim: int, hp: dict[str, Any]) -> None:
    """An elementwise rule with a reducing option on must know the settings' axes: refuse
    hyperparameter arrays (a batched call) that come without ``batch_ndim``."""
    if batch_ndim == 0 and any(is_array(v) for v in hp.values()):
        raise ValueError(
            f"{name} with {flag}=True reduces over each parameter's own axes: a batched "
            "call (hyperparameter arrays) must pass batch_ndim"
        )
