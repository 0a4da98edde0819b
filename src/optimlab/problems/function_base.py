"""The base of analytic test functions: batched points ``(..., dim)``, NumPy or torch.

Helpers here let one formula run on NumPy arrays and torch tensors (torch is imported
only when a tensor comes in).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core import checks
from ..core.arrays import is_torch
from ..train.task import TorchTask
from .base import Problem

Array = Any  # a NumPy array or a torch tensor


def cos_sin(x: Array) -> tuple[Array, Array]:
    if is_torch(x):
        import torch

        return torch.cos(x), torch.sin(x)
    return np.cos(x), np.sin(x)


def zeros_like(x: Array) -> Array:
    if is_torch(x):
        import torch

        return torch.zeros_like(x)
    return np.zeros_like(x)


def stack_last(parts: Sequence[Array]) -> Array:
    if is_torch(parts[0]):
        import torch

        return torch.stack(list(parts), dim=-1)
    return np.stack(parts, axis=-1)


class TestFunction(Problem):
    """A function of ``dim`` variables with analytic gradient and known minima.

    Attributes: ``dim``; ``minima`` ``(n, dim)`` (global minima, or all of them when
    several are equal); ``min_value``; ``box`` ``((lo, hi), ...)`` per coordinate, a
    sensible plotting and random-start region; ``start`` ``(dim,)``.

    ``init(seed)`` returns ``start`` (the same for every seed) unless the problem was
    made with ``start="random"``, in which case it draws uniformly in ``box`` from a
    generator seeded by ``seed``.
    """

    __test__ = False  # not a pytest class
    kind = "function"

    @property
    def evaluation(self) -> str:
        return "objective"

    min_value: float = 0.0

    def __init__(self, dim: int, start: Any = None) -> None:
        self.dim = dim
        self.random_start = isinstance(start, str)
        if self.random_start and start != "random":
            raise ValueError(f"start must be None, 'random' or {dim} numbers, got {start!r}")
        if start is None or self.random_start:
            self.start = self.default_start()
        else:
            arr = np.asarray(start, dtype=np.float64)
            if arr.shape != (dim,) or not np.isfinite(arr).all():
                raise ValueError(f"start must be {dim} finite numbers, got {start!r}")
            self.start = arr

    @property
    def seed_changes(self) -> tuple[str, ...]:
        """``("start",)`` with ``start="random"``; else nothing (every seed, one run)."""
        return ("start",) if self.random_start else ()

    # -- to be provided by each function ------------------------------------------------
    def value(self, x: Array) -> Array:
        raise NotImplementedError

    def gradient(self, x: Array) -> Array:
        raise NotImplementedError

    def default_start(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def minima(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def _check(self, x: Array) -> Array:
        if not is_torch(x):
            x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{self.name} takes points of shape (..., {self.dim}), got {tuple(x.shape)}"
            )
        return x

    def loss(self, x: Array) -> Array:
        """Loss at points ``x`` ``(..., dim)`` -> ``(...)``."""
        return self.value(self._check(x))

    def grad(self, x: Array) -> Array:
        """Analytic gradient at ``x`` ``(..., dim)`` -> ``(..., dim)``."""
        return self.gradient(self._check(x))

    def loss_and_grad(self, x: Array) -> tuple[Array, Array]:
        x = self._check(x)
        return self.value(x), self.gradient(x)

    def init(self, seed: int = 0) -> np.ndarray:
        """Starting point ``(dim,)`` for ``seed`` (float64, a fresh array)."""
        seed = checks.integer("seed", seed, 0)
        if not self.random_start:
            return self.start.copy()
        lo, hi = np.array(self.box).T
        return np.random.default_rng(seed).uniform(lo, hi)

    def distance(self, x: Array) -> np.ndarray:
        """Euclidean distance from ``x`` ``(..., dim)`` to the nearest known minimum."""
        x = np.asarray(self._check(x) if not is_torch(x) else x.detach().cpu().numpy())
        d = np.linalg.norm(x[..., None, :] - self.minima, axis=-1)
        return d.min(axis=-1)

    def evaluate(self, x: Array) -> dict[str, np.ndarray]:
        """Metrics at ``x`` ``(..., dim)``: ``loss`` and ``distance`` to the nearest minimum."""
        x = self._check(x)
        return {"loss": np.asarray(self.value(x)), "distance": self.distance(x)}

    def grid(self, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` over the first two coordinates of ``box`` for contour plots
        (other coordinates held at the first minimum)."""
        n = checks.integer("n", n, 2)
        (x0, x1), (y0, y1) = self.box[0], self.box[1]
        X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
        pts = np.broadcast_to(self.minima[0], (n, n, self.dim)).copy()
        pts[..., 0], pts[..., 1] = X, Y
        return X, Y, self.value(pts)

    def torch_task(self, seed: int = 0) -> TorchTask:
        """A module holding one float64 parameter ``x`` (the start); the loss ignores the batch."""
        import itertools

        import torch

        model = _point_class()(torch.as_tensor(self.init(seed), dtype=torch.float64))

        def loss(m: torch.nn.Module, batch: Any) -> torch.Tensor:
            return self.value(m.x)

        return TorchTask(model, loss, itertools.repeat(None), None, metrics=self._torch_metrics)

    def _torch_metrics(self, model: Any, batch: Any) -> dict[str, Any]:
        return {"loss": self.value(model.x)}


@functools.cache
def _point_class() -> type:
    import torch

    class Point(torch.nn.Module):
        """One parameter ``x``: the point a test function is evaluated at."""

        def __init__(self, x: torch.Tensor) -> None:
            super().__init__()
            self.x = torch.nn.Parameter(x)

        def forward(self) -> torch.Tensor:
            return self.x

    return Point
