"""Analytic test functions with known minima, batched, on NumPy arrays and torch tensors.

Every function takes points ``x`` of shape ``(..., dim)`` and returns losses of shape
``(...)`` and gradients of shape ``(..., dim)``: one point, a batch of K points ``(K, dim)``
or a meshgrid stacked on the last axis ``(H, W, 2)`` for contour plots. Only operators,
indexing and ``cos``/``sin`` are used, so the same code runs on torch tensors (and torch
autograd checks the analytic gradients in the tests).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Problem, check_float, check_int, check_seed
from .task import TorchTask

Array = Any  # a NumPy array or a torch tensor


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _cos_sin(x: Array) -> tuple[Array, Array]:
    if _is_torch(x):
        import torch

        return torch.cos(x), torch.sin(x)
    return np.cos(x), np.sin(x)


def _zeros_like(x: Array) -> Array:
    if _is_torch(x):
        import torch

        return torch.zeros_like(x)
    return np.zeros_like(x)


def _stack_last(parts: Sequence[Array]) -> Array:
    if _is_torch(parts[0]):
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
        if not _is_torch(x):
            x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"{self.name} takes points of shape (..., {self.dim}), "
                             f"got {tuple(x.shape)}")
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
        seed = check_seed(seed)
        if not self.random_start:
            return self.start.copy()
        lo, hi = np.array(self.box).T
        return np.random.default_rng(seed).uniform(lo, hi)

    def distance(self, x: Array) -> np.ndarray:
        """Euclidean distance from ``x`` ``(..., dim)`` to the nearest known minimum."""
        x = np.asarray(self._check(x) if not _is_torch(x) else x.detach().cpu().numpy())
        d = np.linalg.norm(x[..., None, :] - self.minima, axis=-1)
        return d.min(axis=-1)

    def evaluate(self, x: Array) -> dict[str, np.ndarray]:
        """Metrics at ``x`` ``(..., dim)``: ``loss`` and ``distance`` to the nearest minimum."""
        x = self._check(x)
        return {"loss": np.asarray(self.value(x)), "distance": self.distance(x)}

    def grid(self, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` over the first two coordinates of ``box`` for contour plots
        (other coordinates held at the first minimum)."""
        n = check_int("n", n, 2)
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


class Rosenbrock(TestFunction):
    r"""Rosenbrock's banana valley in ``dim`` >= 2 variables.

    .. math:: f(x) = \sum_{i=1}^{d-1} b\,(x_{i+1} - x_i^2)^2 + (1 - x_i)^2

    Global minimum 0 at ``(1, ..., 1)``; start ``(-1, 1, -1, 1, ...)``. (For 4 <= d <= 7
    there is also a local minimum near ``(-1, 1, ..., 1)``.)
    """

    name = "rosenbrock"

    def __init__(self, dim: int = 2, b: float = 100.0, start: Any = None) -> None:
        self.b = check_float("b", b, 0.0, open_low=True)
        super().__init__(check_int("dim", dim, 2), start)

    def value(self, x: Array) -> Array:
        x0, x1 = x[..., :-1], x[..., 1:]
        return (self.b * (x1 - x0 * x0) ** 2 + (1 - x0) ** 2).sum(-1)

    def gradient(self, x: Array) -> Array:
        return self._value_and_gradient(x)[1]

    def loss_and_grad(self, x: Array) -> tuple[Array, Array]:
        return self._value_and_gradient(self._check(x))

    def _value_and_gradient(self, x: Array) -> tuple[Array, Array]:
        # shares the residuals between loss and gradient (this is the benchmark's hot loop)
        x0, x1 = x[..., :-1], x[..., 1:]
        r, u = x1 - x0 * x0, 1 - x0
        two_br = (2 * self.b) * r
        g = _zeros_like(x)
        g[..., :-1] = -2 * (x0 * two_br + u)
        g[..., 1:] += two_br
        return (self.b * r * r + u * u).sum(-1), g

    def default_start(self) -> np.ndarray:
        return np.array([-1.0 if i % 2 == 0 else 1.0 for i in range(self.dim)])

    @property
    def minima(self) -> np.ndarray:
        return np.ones((1, self.dim))

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return ((-2.0, 2.0), (-1.0, 3.0)) + ((-2.0, 2.0),) * (self.dim - 2)


class Beale(TestFunction):
    r"""Beale's function: flat plateaus and a narrow curved valley.

    .. math:: f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2

    Global minimum 0 at ``(3, 0.5)``; start ``(1, 1.5)``; box ``[-4.5, 4.5]^2``.
    """

    name = "beale"
    _C = (1.5, 2.25, 2.625)

    def __init__(self, start: Any = None) -> None:
        super().__init__(2, start)

    def value(self, x: Array) -> Array:
        a, b = x[..., 0], x[..., 1]
        return sum((c - a + a * b ** (k + 1)) ** 2 for k, c in enumerate(self._C))

    def gradient(self, x: Array) -> Array:
        a, b = x[..., 0], x[..., 1]
        ga = gb = 0
        for k, c in enumerate(self._C):
            u = c - a + a * b ** (k + 1)
            ga = ga + 2 * u * (b ** (k + 1) - 1)
            gb = gb + 2 * u * (k + 1) * a * b**k
        return _stack_last([ga, gb])

    def default_start(self) -> np.ndarray:
        return np.array([1.0, 1.5])

    @property
    def minima(self) -> np.ndarray:
        return np.array([[3.0, 0.5]])

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return ((-4.5, 4.5), (-4.5, 4.5))


class Himmelblau(TestFunction):
    r"""Himmelblau's function: four global minima of value 0.

    .. math:: f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2

    Minima ``(3, 2)``, ``(-2.805118, 3.131313)``, ``(-3.779310, -3.283186)``,
    ``(3.584428, -1.848127)``; start ``(0, 0)``; box ``[-5, 5]^2``.
    """

    name = "himmelblau"

    def __init__(self, start: Any = None) -> None:
        super().__init__(2, start)

    def value(self, x: Array) -> Array:
        a, b = x[..., 0], x[..., 1]
        return (a * a + b - 11) ** 2 + (a + b * b - 7) ** 2

    def gradient(self, x: Array) -> Array:
        a, b = x[..., 0], x[..., 1]
        u, w = a * a + b - 11, a + b * b - 7
        return _stack_last([4 * a * u + 2 * w, 2 * u + 4 * b * w])

    def default_start(self) -> np.ndarray:
        return np.array([0.0, 0.0])

    @property
    def minima(self) -> np.ndarray:
        return np.array([
            [3.0, 2.0],
            [-2.805118086952745, 3.131312518250573],
            [-3.779310253377747, -3.283185991286170],
            [3.584428340330492, -1.848126526964404],
        ])

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return ((-5.0, 5.0), (-5.0, 5.0))


class Rastrigin(TestFunction):
    r"""Rastrigin's function: a bowl covered in regularly spaced local minima.

    .. math:: f(x) = A d + \sum_i \left(x_i^2 - A\cos(2\pi x_i)\right)

    Global minimum 0 at the origin; start ``(2.5, -1.5, 2.5, ...)``; box ``[-5.12, 5.12]^d``.
    """

    name = "rastrigin"

    def __init__(self, dim: int = 2, amplitude: float = 10.0, start: Any = None) -> None:
        self.amplitude = check_float("amplitude", amplitude, 0.0)
        super().__init__(check_int("dim", dim, 1), start)

    def value(self, x: Array) -> Array:
        cos, _ = _cos_sin(2 * math.pi * x)
        return (x * x - self.amplitude * cos).sum(-1) + self.amplitude * self.dim

    def gradient(self, x: Array) -> Array:
        _, sin = _cos_sin(2 * math.pi * x)
        return 2 * x + (2 * math.pi * self.amplitude) * sin

    def default_start(self) -> np.ndarray:
        return np.array([2.5 if i % 2 == 0 else -1.5 for i in range(self.dim)])

    @property
    def minima(self) -> np.ndarray:
        return np.zeros((1, self.dim))

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return ((-5.12, 5.12),) * self.dim


class Ravine(TestFunction):
    r"""An ill-conditioned quadratic ravine with condition number ``condition``.

    .. math:: f(x) = \tfrac12 \sum_{i=0}^{d-1} \lambda_i x_i^2,
              \qquad \lambda_i = \kappa^{i/(d-1)}

    so curvatures run from 1 (first coordinate, the valley floor) to ``kappa`` (last).
    Minimum 0 at the origin; start ``(-1.5, 0.5, ..., 0.5)``; box ``[-2, 2]^d``. Plain
    gradient descent is stable only for ``lr < 2 / kappa``.
    """

    name = "ravine"

    def __init__(self, dim: int = 2, condition: float = 100.0, start: Any = None) -> None:
        self.condition = check_float("condition", condition, 1.0)
        dim = check_int("dim", dim, 2)
        self.curvatures = self.condition ** (np.arange(dim) / (dim - 1))
        super().__init__(dim, start)

    def value(self, x: Array) -> Array:
        return 0.5 * (self._lam(x) * x * x).sum(-1)

    def gradient(self, x: Array) -> Array:
        return self._lam(x) * x

    def _lam(self, x: Array) -> Array:
        if _is_torch(x):
            import torch

            return torch.as_tensor(self.curvatures, dtype=x.dtype, device=x.device)
        return self.curvatures

    def default_start(self) -> np.ndarray:
        return np.array([-1.5] + [0.5] * (self.dim - 1))

    @property
    def minima(self) -> np.ndarray:
        return np.zeros((1, self.dim))

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return ((-2.0, 2.0),) * self.dim


class Saddle(TestFunction):
    r"""A saddle point to escape: bounded below, two minima beyond it.

    .. math:: f(x, y) = x^2 + \tfrac14 y^4 - \tfrac12 y^2

    Saddle at the origin (gradient zero, curvature -1 along y); minima ``(0, +-1)`` of
    value -1/4; start ``(1.5, 0.01)``, just off the ridge; box ``[-2, 2] x [-1.6, 1.6]``.
    """

    name = "saddle"
    min_value = -0.25

    def __init__(self, start: Any = None) -> None:
        super().__init__(2, start)

    def value(self, x: Array) -> Array:
        a, b = x[..., 0], x[..., 1]
        return a * a + 0.25 * b**4 - 0.5 * b * b

    def gradient(self, x: Array) -> Array:
        a, b = x[..., 0], x[..., 1]
        return _stack_last([2 * a, b**3 - b])

    def default_start(self) -> np.ndarray:
        return np.array([1.5, 0.01])

    @property
    def minima(self) -> np.ndarray:
        return np.array([[0.0, 1.0], [0.0, -1.0]])

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return ((-2.0, 2.0), (-1.6, 1.6))


FUNCTIONS: tuple[type[TestFunction], ...] = (Rosenbrock, Beale, Himmelblau, Rastrigin, Ravine,
                                             Saddle)
