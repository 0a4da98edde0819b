"""Muon: momentum orthogonalised by a Newton-Schulz iteration, for 2-D (matrix) parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..core.arrays import namespace
from .base import LR_MAX, Hyper, Rule, is_on

ADJUST_LR = ("original", "match_rms_adamw")
NS_DTYPES = ("bfloat16", "float32")


class MuonState(NamedTuple):
    count: Any  # steps taken
    momentum_buffer: Any  # EMA of gradients


def _own_shape(param: Any, batch_ndim: int) -> tuple[int, ...]:
    """The parameter's own shape; refuses anything but a matrix."""
    shape = tuple(param.shape[batch_ndim:])
    if len(shape) != 2:
        raise ValueError(
            f"muon optimizes 2-D parameters (matrices) only, got a parameter of shape "
            f"{shape}; give biases, norms, embeddings and other parameters to another "
            "rule such as adamw"
        )
    return shape  # type: ignore[return-value]


def init(param: Any, *, batch_ndim: int = 0) -> MuonState:
    """Zero momentum; the leading ``batch_ndim`` axes of ``param`` are settings."""
    _own_shape(param, batch_ndim)
    xp = namespace(param)
    return MuonState(0, xp.zeros_like(param))


def newton_schulz(xp: Any, x: Any, a: Any, b: Any, c: Any, steps: int, eps: Any) -> Any:
    """``steps`` quintic Newton-Schulz iterations towards the orthogonal factor of each
    matrix (the last two axes): ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``, from
    ``X = G / max(||G||_F, eps)``, on the wide orientation (rows <= columns)."""
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = xp.matrix_transpose(x)
    norm = xp.sqrt(xp.sum(x * x, axis=(x.ndim - 2, x.ndim - 1), keepdims=True))
    x = x / xp.maximum(norm, eps)
    for _ in range(steps):
        gram = xp.matmul(x, xp.matrix_transpose(x))
        poly = xp.matmul_add(gram, gram, gram, b, c)  # b A + c A^2
        x = xp.matmul_add(x, poly, x, a, 1)
    return xp.matrix_transpose(x) if tall else x


def lr_ratio(shape: tuple[int, ...], adjust_lr_fn: str | None) -> float:
    """How Muon scales ``lr`` for an ``A x B`` matrix: ``sqrt(max(1, A/B))`` ("original",
    Jordan) or ``0.2 sqrt(max(A, B))`` ("match_rms_adamw", Liu et al.)."""
    rows, cols = shape
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols)) if cols else 1.0


def update(
    grad: Any,
    state: MuonState,
    param: Any,
    *,
    lr: Any = 1e-3,
    weight_decay: Any = 0.1,
    momentum: Any = 0.95,
    nesterov: bool = True,
    ns_a: Any = 3.4445,
    ns_b: Any = -4.7750,
    ns_c: Any = 2.0315,
    eps: Any = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    ns_dtype: str | None = None,
    batch_ndim: int = 0,
) -> tuple[Any, MuonState]:
    r"""One Muon step on a matrix; returns ``(delta, new_state)``.

    .. math::
        B_t &= \mu B_{t-1} + (1-\mu) g \\
        \tilde B_t &= (1-\mu) g + \mu B_t \text{ (Nesterov), else } B_t \\
        O_t &= \mathrm{NS}^{(a,b,c)}_k(\tilde B_t), \qquad
            X_0 = \tilde B_t / \max(\|\tilde B_t\|_F, \epsilon), \quad
            X_{j+1} = a X_j + (b A_j + c A_j^2) X_j,\ A_j = X_j X_j^\top \\
        \Delta &= -\eta\lambda\theta - \eta\, r(A, B)\, O_t, \qquad
            r = \sqrt{\max(1, A/B)} \text{ ("original") or } 0.2\sqrt{\max(A, B)}

    This is torch.optim.Muon (EMA momentum via ``lerp``, decoupled decay with the
    unadjusted ``lr``; ``ns_a, ns_b, ns_c`` are its ``ns_coefficients``, and
    ``adjust_lr_fn=None`` means "original"), with one choice of precision: the
    Newton-Schulz iteration runs in ``ns_dtype``, by default the parameter's own dtype.
    torch (and Jordan's reference) always run it in bfloat16; ``ns_dtype="bfloat16"``
    does the same, about twice as fast where the hardware has bfloat16 matrix products,
    with results that differ from the full-precision ones by bfloat16 rounding
    (relative 2^-8). NumPy has no bfloat16, so on NumPy arrays that choice is refused with
    a ValueError. The orthogonal factor returns to the parameter's dtype before it
    scales the step; the momentum stays in the parameter's dtype. The
    iteration works on the wide orientation of the matrix (rows <= columns); its
    coefficients maximise the slope at zero, so the singular values land near (not at)
    one. Only 2-D parameters: a ``(K, m, n)`` parameter with ``batch_ndim=1`` is K
    matrices, and anything else is refused with a ValueError naming its shape.

    >>> import numpy as np
    >>> p = np.zeros((2, 3))
    >>> delta, state = update(np.eye(2, 3), init(p), p, lr=0.1, nesterov=False)
    >>> np.round(delta, 2).tolist()  # an orthogonal step: both singular values near one
    [[-0.11, -0.0, -0.0], [-0.0, -0.11, -0.0]]

    Jordan et al., Muon: An optimizer for hidden layers in neural networks, 2024;
    Liu et al., Muon is Scalable for LLM Training, 2025.
    """
    xp = namespace(grad)
    shape = _own_shape(param, batch_ndim)
    if ns_dtype == "bfloat16" and xp.name == "numpy":
        raise ValueError(
            "ns_dtype='bfloat16' needs torch tensors: NumPy has no bfloat16; use "
            "ns_dtype=None (the parameter's dtype) or 'float32' with NumPy arrays"
        )
    buf = momentum * state.momentum_buffer + (1 - momentum) * grad
    direction = (1 - momentum) * grad + momentum * buf if nesterov else buf
    if ns_dtype is None:
        ortho = newton_schulz(xp, direction, ns_a, ns_b, ns_c, ns_steps, eps)
    else:
        low = newton_schulz(xp, xp.astype(direction, ns_dtype), ns_a, ns_b, ns_c, ns_steps, eps)
        ortho = xp.asarray(low, like=param)
    delta = -(lr * lr_ratio(shape, adjust_lr_fn)) * ortho
    if is_on(weight_decay):
        delta = delta - lr * weight_decay * param
    return delta, MuonState(state.count + 1, buf)


def state_numel(shape: tuple[int, ...], hp: Mapping[str, Any]) -> int:
    """One momentum buffer of the parameter's size."""
    return math.prod(shape)


MUON = Rule(
    name="muon",
    init=init,
    update=update,
    hyperparams=(
        Hyper("lr", 1e-3, low=0.0, limit=LR_MAX, doc="learning rate (scaled by the matrix shape)"),
        Hyper("weight_decay", 0.1, low=0.0, limit=LR_MAX, doc="decoupled decay theta (1 - lr wd)"),
        Hyper("momentum", 0.95, 0.0, 1.0, high_open=True, doc="EMA rate of the momentum"),
        Hyper("nesterov", True, kind="bool", doc="orthogonalise the Nesterov look-ahead"),
        Hyper("ns_a", 3.4445, doc="Newton-Schulz coefficient a (of X)"),
        Hyper("ns_b", -4.7750, doc="Newton-Schulz coefficient b (of A X)"),
        Hyper("ns_c", 2.0315, doc="Newton-Schulz coefficient c (of A^2 X)"),
        Hyper("eps", 1e-7, 0.0, low_open=True, doc="floor of the norm that scales X_0"),
        Hyper("ns_steps", 5, 0, 99, kind="int", doc="Newton-Schulz iterations"),
        Hyper(
            "adjust_lr_fn",
            None,
            kind="choice",
            choices=ADJUST_LR,
            optional=True,
            doc="lr scale by shape: original (None) or match_rms_adamw",
        ),
        Hyper(
            "ns_dtype",
            None,
            kind="choice",
            choices=NS_DTYPES,
            optional=True,
            doc="dtype of the Newton-Schulz iteration: the parameter's (None), bfloat16 "
            "(torch's choice; torch tensors only) or float32",
        ),
    ),
    state_numel=state_numel,
    summary="Orthogonalised momentum (Newton-Schulz) for 2-D weight matrices.",
    paper="Jordan et al., Muon: An optimizer for hidden layers in neural networks, 2024",
    elementwise=False,
    param_ndim=2,
)
