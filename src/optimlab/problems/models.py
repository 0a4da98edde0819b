"""Small torch models on generated data (nothing is downloaded): logistic regression, an
MLP, least squares with a known optimum, tiny images, the adding problem for an RNN.

Data and seeds follow ``model_base.TorchProblem``; torch is imported lazily.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ..core import checks
from .model_base import TorchProblem, classification_metrics, cross_entropy, torch_module


class Logistic(TorchProblem):
    r"""Logistic regression: labels from a noisy linear teacher.

    ``x ~ N(0, I_d)``, ``P(y=1|x) = sigmoid(w^T x + c)`` with a fixed random teacher; the
    model is ``nn.Linear(d, 1)`` trained with binary cross-entropy
    :math:`-y\log\sigma(z) - (1-y)\log(1-\sigma(z))`. Metrics: loss, accuracy.
    """

    name = "logistic"

    def __init__(
        self,
        features: int = 20,
        n_train: int = 1024,
        n_val: int = 512,
        batch_size: int | None = 64,
        data_seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.features = checks.integer("features", features, 1)
        super().__init__(batch_size, n_train, n_val, data_seed, dtype)

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        w = rng.normal(size=self.features) * 2 / math.sqrt(self.features)
        n = self.n_train + self.n_val
        x = rng.normal(size=(n, self.features))
        p = 1 / (1 + np.exp(-(x @ w + 0.5)))
        y = (rng.random(n) < p).astype(np.float64)
        return x[: self.n_train], y[: self.n_train], x[self.n_train :], y[self.n_train :]

    def make_model(self) -> Any:
        return torch_module().nn.Linear(self.features, 1)

    def loss_fn(self, model: Any, batch: Any) -> Any:
        x, y = batch
        return torch_module().nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        x, y = batch
        z = model(x)[:, 0]
        loss = torch_module().nn.functional.binary_cross_entropy_with_logits(z, y)
        return {"loss": loss, "accuracy": ((z > 0).to(z.dtype) == y).to(z.dtype).mean()}


class MLP(TorchProblem):
    """An MLP classifier (``features-hidden-classes``, ReLU) learning a fixed random teacher.

    The teacher is a random ``tanh`` network ``features-32-classes``; labels are the
    argmax of its outputs. Cross-entropy loss; metrics: loss, accuracy.
    """

    name = "mlp"

    def __init__(
        self,
        features: int = 20,
        hidden: int = 64,
        classes: int = 5,
        n_train: int = 2000,
        n_val: int = 500,
        batch_size: int | None = 128,
        data_seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.features = checks.integer("features", features, 1)
        self.hidden = checks.integer("hidden", hidden, 1)
        self.classes = checks.integer("classes", classes, 2)
        super().__init__(batch_size, n_train, n_val, data_seed, dtype)

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        w1 = rng.normal(size=(self.features, 32)) / math.sqrt(self.features)
        w2 = rng.normal(size=(32, self.classes)) / math.sqrt(32) * 3
        n = self.n_train + self.n_val
        x = rng.normal(size=(n, self.features))
        y = (np.tanh(x @ w1 * 2) @ w2).argmax(-1).astype(np.int64)
        return x[: self.n_train], y[: self.n_train], x[self.n_train :], y[self.n_train :]

    def make_model(self) -> Any:
        nn = torch_module().nn
        return nn.Sequential(
            nn.Linear(self.features, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.classes)
        )

    def loss_fn(self, model: Any, batch: Any) -> Any:
        x, y = batch
        return cross_entropy(model(x), y)

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        return classification_metrics(model(batch[0]), batch[1])


class LeastSquares(TorchProblem):
    r"""Linear least squares with a known optimum.

    .. math:: L(w) = \frac{1}{2n}\lVert A w - b \rVert^2,
              \qquad w^\star = (A^\top A)^{-1} A^\top b

    ``A`` has log-spaced singular values, so its condition number is ``condition``
    (that of ``A^T A`` is its square); ``b = A w_true + noise``. ``optimum``
    holds ``w*`` and ``optimal_loss`` ``L(w*)`` on the training set. Full-batch by
    default; metrics (on the training set, the problem's own yardstick): ``loss``,
    ``excess_loss = L(w) - L(w*)``, ``distance = |w - w*|``.
    """

    name = "least_squares"

    @property
    def evaluation(self) -> str:
        return "training"  # its metrics measure the training objective, against w*

    def __init__(
        self,
        features: int = 10,
        n_train: int = 200,
        condition: float = 10.0,
        noise: float = 0.1,
        batch_size: int | None = None,
        data_seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.features = checks.integer("features", features, 1)
        self.condition = checks.real("condition", condition, 1.0)
        self.noise = checks.real("noise", noise, 0.0)
        n_train = checks.integer("n_train", n_train, 1)
        if n_train < self.features:
            raise ValueError(f"n_train must be >= features ({self.features}), got {n_train!r}")
        super().__init__(batch_size, n_train, n_train, data_seed, dtype)
        a, b = self.data[0], self.data[1]
        self.optimum = np.linalg.lstsq(a, b, rcond=None)[0]
        self.optimal_loss = float(0.5 * np.mean((a @ self.optimum - b) ** 2))

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        q1, _ = np.linalg.qr(rng.normal(size=(self.n_train, self.features)))
        q2, _ = np.linalg.qr(rng.normal(size=(self.features, self.features)))
        s = self.condition ** -np.linspace(0, 1, self.features) * math.sqrt(self.n_train)
        a = (q1 * s) @ q2.T
        b = a @ rng.normal(size=self.features) + self.noise * rng.normal(size=self.n_train)
        return a, b, a, b

    def make_model(self) -> Any:
        return torch_module().nn.Linear(self.features, 1, bias=False)

    def loss_fn(self, model: Any, batch: Any) -> Any:
        a, b = batch
        return 0.5 * ((model(a)[:, 0] - b) ** 2).mean()

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        torch = torch_module()
        loss = self.loss_fn(model, batch)
        w = model.weight[0]
        opt = torch.as_tensor(self.optimum, dtype=w.dtype)
        return {
            "loss": loss,
            "excess_loss": loss - self.optimal_loss,
            "distance": torch.sqrt(((w - opt) ** 2).sum()),
        }


class Shapes(TorchProblem):
    """Tiny synthetic images: classify the shape drawn in a noisy ``size x size`` image.

    Four classes at random positions: horizontal bar, vertical bar, diagonal, hollow
    square; pixel noise N(0, noise^2). Model: conv 3x3 (8 channels), ReLU, 2x2 average
    pooling, linear. Cross-entropy loss; metrics: loss, accuracy.
    """

    name = "shapes"
    classes = 4

    def __init__(
        self,
        size: int = 8,
        noise: float = 0.3,
        n_train: int = 1024,
        n_val: int = 512,
        batch_size: int | None = 64,
        data_seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.size = checks.integer("size", size, 6)
        self.noise = checks.real("noise", noise, 0.0)
        super().__init__(batch_size, n_train, n_val, data_seed, dtype)

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        n, s = self.n_train + self.n_val, self.size
        images = rng.normal(scale=self.noise, size=(n, 1, s, s))
        labels = rng.integers(0, self.classes, n)
        for img, label in zip(images[:, 0], labels, strict=True):
            k = int(rng.integers(3, s // 2 + 2))  # shape size
            r, c = (int(v) for v in rng.integers(0, s - k + 1, 2))
            if label == 0:
                img[r + k // 2, c : c + k] += 1
            elif label == 1:
                img[r : r + k, c + k // 2] += 1
            elif label == 2:
                img[r + np.arange(k), c + np.arange(k)] += 1
            else:
                img[r, c : c + k] += 1
                img[r + k - 1, c : c + k] += 1
                img[r : r + k, c] += 1
                img[r : r + k, c + k - 1] += 1
        m = self.n_train
        return images[:m], labels[:m], images[m:], labels[m:]

    def make_model(self) -> Any:
        nn = torch_module().nn
        half = self.size // 2
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * half * half, self.classes),
        )

    def loss_fn(self, model: Any, batch: Any) -> Any:
        x, y = batch
        return cross_entropy(model(x), y)

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        return classification_metrics(model(batch[0]), batch[1])


@functools.cache
def _elman_class() -> type:
    import torch

    class Elman(torch.nn.Module):
        """``h_t = tanh(W x_t + U h_{t-1} + b)``; predicts ``v^T h_T + c``. Plain ops: vmappable."""

        def __init__(self, inputs: int, hidden: int) -> None:
            super().__init__()
            self.cell = torch.nn.Linear(inputs + hidden, hidden)
            self.out = torch.nn.Linear(hidden, 1)
            self.hidden = hidden

        def forward(self, x: Any) -> Any:  # x: (batch, time, inputs)
            h = x.new_zeros(x.shape[0], self.hidden)
            for t in range(x.shape[1]):
                h = torch.tanh(self.cell(torch.cat([x[:, t], h], dim=-1)))
            return self.out(h)[:, 0]

    return Elman


class Adding(TorchProblem):
    r"""The adding problem for a small recurrent net (long-range credit assignment).

    Each sequence has ``length`` steps of two inputs: a value ``u_t ~ U(0, 1)`` and a
    marker that is 1 at two random positions (one in each half) and 0 elsewhere; the
    target is the sum of the two marked values. Model: an Elman RNN (``tanh``, ``hidden``
    units) read out from its last state; loss: mean squared error (predicting the mean, 1,
    scores about 1/6). Metrics: loss.
    """

    name = "adding"

    def __init__(
        self,
        length: int = 10,
        hidden: int = 16,
        n_train: int = 1024,
        n_val: int = 512,
        batch_size: int | None = 64,
        data_seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.length = checks.integer("length", length, 2)
        self.hidden = checks.integer("hidden", hidden, 1)
        super().__init__(batch_size, n_train, n_val, data_seed, dtype)

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        n, half = self.n_train + self.n_val, self.length // 2
        x = np.zeros((n, self.length, 2))
        x[:, :, 0] = rng.random((n, self.length))
        first = rng.integers(0, half, n)
        second = rng.integers(half, self.length, n)
        x[np.arange(n), first, 1] = x[np.arange(n), second, 1] = 1.0
        y = x[np.arange(n), first, 0] + x[np.arange(n), second, 0]
        m = self.n_train
        return x[:m], y[:m], x[m:], y[m:]

    def make_model(self) -> Any:
        return _elman_class()(2, self.hidden)

    def loss_fn(self, model: Any, batch: Any) -> Any:
        x, y = batch
        return ((model(x) - y) ** 2).mean()


MODELS: tuple[type[TorchProblem], ...] = (Logistic, MLP, LeastSquares, Shapes, Adding)
