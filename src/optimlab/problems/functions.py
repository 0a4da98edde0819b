"""Analytic test functions with known minima, batched, on NumPy arrays and torch tensors.

Every function takes points ``x`` of shape ``(..., dim)`` and returns losses of shape
``(...)`` and gradients of shape ``(..., dim)``: one point, a batch of K points ``(K, dim)``
or a meshgrid stacked on the last axis ``(H, W, 2)`` for contour plots. Only operators,
indexing and ``cos``/``sin`` are used, so the same code runs on torch tensors (and torch
autograd checks the analytic gradients in the tests).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core import checks
from .function_base import Array, TestFunction, cos_sin, is_torch, stack_last, zeros_like

__all__ = [
    "FUNCTIONS",
    "Beale",
    "Himmelblau",
    "Rastrigin",
    "Ravine",
    "Rosenbrock",
    "Saddle",
    "TestFunction",
]


class Rosenbrock(TestFunction):
    r"""Rosenbrock's banana valley in ``dim`` >= 2 variables.

    .. math:: f(x) = \sum_{i=1}^{d-1} b\,(x_{i+1} - x_i^2)^2 + (1 - x_i)^2

    Global minimum 0 at ``(1, ..., 1)``; start ``(-1, 1, -1, 1, ...)``. (For 4 <= d <= 7
    there is also a local minimum near ``(-1, 1, ..., 1)``.)
    """

    name = "rosenbrock"

    def __init__(self, dim: int = 2, b: float = 100.0, start: Any = None) -> None:
        self.b = checks.real("b", b, 0.0, low_open=True)
        super().__init__(checks.integer("dim", dim, 2), start)

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
        g = zeros_like(x)
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
        return stack_last([ga, gb])

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
        return stack_last([4 * a * u + 2 * w, 2 * u + 4 * b * w])

    def default_start(self) -> np.ndarray:
        return np.array([0.0, 0.0])

    @property
    def minima(self) -> np.ndarray:
        return np.array(
            [
                [3.0, 2.0],
                [-2.805118086952745, 3.131312518250573],
                [-3.779310253377747, -3.283185991286170],
                [3.584428340330492, -1.848126526964404],
            ]
        )

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
        self.amplitude = checks.real("amplitude", amplitude, 0.0)
        super().__init__(checks.integer("dim", dim, 1), start)

    def value(self, x: Array) -> Array:
        cos, _ = cos_sin(2 * math.pi * x)
        return (x * x - self.amplitude * cos).sum(-1) + self.amplitude * self.dim

    def gradient(self, x: Array) -> Array:
        _, sin = cos_sin(2 * math.pi * x)
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
        self.condition = checks.real("condition", condition, 1.0)
        dim = checks.integer("dim", dim, 2)
        self.curvatures = self.condition ** (np.arange(dim) / (dim - 1))
        super().__init__(dim, start)

    def value(self, x: Array) -> Array:
        return 0.5 * (self._lam(x) * x * x).sum(-1)

    def gradient(self, x: Array) -> Array:
        return self._lam(x) * x

    def _lam(self, x: Array) -> Array:
        if is_torch(x):
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
        return stack_last([2 * a, b**3 - b])

    def default_start(self) -> np.ndarray:
        return np.array([1.5, 0.01])

    @property
    def minima(self) -> np.ndarray:
        return np.array([[0.0, 1.0], [0.0, -1.0]])

    @property
    def box(self) -> tuple[tuple[float, float], ...]:
        return ((-2.0, 2.0), (-1.6, 1.6))


FUNCTIONS: tuple[type[TestFunction], ...] = (
    Rosenbrock,
    Beale,
    Himmelblau,
    Rastrigin,
    Ravine,
    Saddle,
)
