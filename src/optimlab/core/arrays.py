"""The array namespace that rules use, so one rule runs on NumPy arrays and torch tensors.

Rules use arithmetic operators for everything they can and this namespace for the rest:
``xp = namespace(grad)`` then ``xp.sqrt(v)``, ``xp.where(c, a, b)``, ``xp.sum(x, axis, keepdims)``,
``xp.finfo_eps(x)`` (machine epsilon of ``x``'s dtype, a Python float), ``xp.finfo_tiny(x)``
(its smallest positive normal number), ``xp.matmul(a, b)``, ``xp.matmul_add(c, a, b, beta,
alpha)`` (``beta c + alpha a b``; torch does it in one ``addmm`` where it can)
and ``xp.matrix_transpose(x)`` (all over the last two axes, leading axes batched),
``xp.log(x)``, ``xp.copy(x)``, ``xp.astype(x, "float32")`` (a dtype named by a string).
Only the handful of functions rules need live here; torch is never imported by this module.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch object (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


def _numpy_namespace() -> SimpleNamespace:
    return SimpleNamespace(
        name="numpy",
        sqrt=np.sqrt,
        abs=np.abs,
        sign=np.sign,
        where=np.where,
        maximum=np.maximum,
        minimum=np.minimum,
        sum=lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
        mean=lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
        amax=lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
        zeros_like=np.zeros_like,
        full_like=np.full_like,
        asarray=lambda x, like: np.asarray(x, dtype=like.dtype),
        finfo_eps=lambda x: float(np.finfo(x.dtype).eps),
        finfo_tiny=lambda x: float(np.finfo(x.dtype).tiny),
        matmul=np.matmul,
        matmul_add=lambda c, a, b, beta, alpha: beta * c + alpha * np.matmul(a, b),
        matrix_transpose=lambda x: np.swapaxes(x, -1, -2),
        log=np.log,
        copy=np.copy,
        astype=lambda x, dtype: np.asarray(x).astype(dtype, copy=False),
    )


def _torch_namespace() -> SimpleNamespace:
    import torch

    def _pair(fn, clamp_kw):
        def op(a, b):
            # torch.maximum/minimum need two tensors; a Python number goes through clamp.
            a_t, b_t = isinstance(a, torch.Tensor), isinstance(b, torch.Tensor)
            if a_t and b_t:
                return fn(a, b)
            if a_t:
                return torch.clamp(a, **{clamp_kw: b})
            if b_t:
                return torch.clamp(b, **{clamp_kw: a})
            return fn(torch.as_tensor(a), torch.as_tensor(b))

        return op

    def _matmul_add(c, a, b, beta, alpha):
        # one addmm/baddbmm where the scales are Python numbers (not a sweep's tensors)
        if isinstance(beta, int | float) and isinstance(alpha, int | float):
            if a.ndim == b.ndim == c.ndim == 2:
                return torch.addmm(c, a, b, beta=beta, alpha=alpha)
            if a.ndim == b.ndim == c.ndim == 3:
                return torch.baddbmm(c, a, b, beta=beta, alpha=alpha)
        return beta * c + alpha * torch.matmul(a, b)

    def _where(cond, a, b):
        return torch.where(cond, a, b)

    def _reduce(fn):
        def op(x, axis=None, keepdims=False):
            if axis is None:
                return fn(x)
            return fn(x, dim=axis, keepdim=keepdims)

        return op

    return SimpleNamespace(
        name="torch",
        sqrt=torch.sqrt,
        abs=torch.abs,
        sign=torch.sign,
        where=_where,
        maximum=_pair(torch.maximum, "min"),
        minimum=_pair(torch.minimum, "max"),
        sum=_reduce(torch.sum),
        mean=_reduce(torch.mean),
        amax=_reduce(torch.amax),
        zeros_like=torch.zeros_like,
        full_like=torch.full_like,
        asarray=lambda x, like: torch.as_tensor(x, dtype=like.dtype, device=like.device),
        finfo_eps=lambda x: float(torch.finfo(x.dtype).eps),
        finfo_tiny=lambda x: float(torch.finfo(x.dtype).tiny),
        matmul=torch.matmul,
        matmul_add=_matmul_add,
        matrix_transpose=lambda x: x.transpose(-2, -1),
        log=torch.log,
        copy=torch.clone,
        astype=lambda x, dtype: x.to(getattr(torch, dtype)),
    )


_NAMESPACES: dict[str, SimpleNamespace] = {}


def namespace(x: Any) -> SimpleNamespace:
    """The namespace for ``x``'s array library (NumPy for arrays and Python numbers)."""
    key = "torch" if is_torch(x) else "numpy"
    ns = _NAMESPACES.get(key)
    if ns is None:
        ns = _NAMESPACES[key] = _torch_namespace() if key == "torch" else _numpy_namespace()
    return ns
