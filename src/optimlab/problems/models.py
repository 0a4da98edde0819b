"""Small torch models on generated data (nothing is downloaded).

Each problem generates its data set once from ``data_seed`` (the same data for every run
seed); the run ``seed`` sets the model's initial weights and the order of the training
batches, which are drawn from the problem's own generator (``numpy`` ``default_rng``), so
two tasks made with the same seed see identical batches. Torch is imported lazily.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..train.task import TorchTask
from .base import Problem, check_dtype, check_int, check_seed


def _torch() -> Any:
    import torch

    return torch


class TorchProblem(Problem):
    """A torch model with a training set, a validation set and metrics.

    Subclasses give ``make_data(rng) -> (x_train, y_train, x_val, y_val)`` (NumPy),
    ``make_model()`` (called under ``torch.manual_seed(seed)``), ``loss_fn`` and
    ``metrics_fn``. ``batch_size=None`` means full-batch (deterministic) training.
    """

    kind = "torch"

    def __init__(
        self, batch_size: int | None, n_train: int, n_val: int, data_seed: int, dtype: str
    ) -> None:
        self.n_train = check_int("n_train", n_train, 1)
        self.n_val = check_int("n_val", n_val, 1)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        self.batch_size = batch_size
        self.data_seed = check_int("data_seed", data_seed, 0)
        self.dtype = check_dtype(dtype)
        self._data: tuple[np.ndarray, ...] | None = None

    # -- to be provided ----------------------------------------------------------------
    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def make_model(self) -> Any:
        raise NotImplementedError

    def loss_fn(self, model: Any, batch: Any) -> Any:
        raise NotImplementedError

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        return {"loss": self.loss_fn(model, batch)}

    # -- shared ---------------------------------------------------------------------------
    @property
    def data(self) -> tuple[np.ndarray, ...]:
        """``(x_train, y_train, x_val, y_val)`` as NumPy arrays, generated once."""
        if self._data is None:
            self._data = self.make_data(np.random.default_rng([self.data_seed, 7919]))
        return self._data

    def _tensor(self, a: np.ndarray) -> Any:
        torch = _torch()
        if a.dtype.kind == "f":
            return torch.as_tensor(a, dtype=getattr(torch, self.dtype))
        return torch.as_tensor(a)

    def _batches(self, seed: int) -> Iterator[tuple[Any, Any]]:
        x, y = (self._tensor(a) for a in self.data[:2])
        if self.batch_size is None:
            while True:
                yield x, y
        rng = np.random.default_rng([seed, 104729])
        while True:
            idx = _torch().as_tensor(rng.integers(0, self.n_train, self.batch_size))
            yield x[idx], y[idx]

    def model(self, seed: int = 0) -> Any:
        """The model with its initial weights for ``seed``."""
        torch = _torch()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_seed(seed))
            model = self.make_model()
        return model.to(getattr(torch, self.dtype))

    def init(self, seed: int = 0) -> dict[str, Any]:
        """Initial parameters for ``seed``, by name."""
        return {k: v.detach() for k, v in self.model(seed).named_parameters()}

    def torch_task(self, seed: int = 0) -> TorchTask:
        val = (self._tensor(self.data[2]), self._tensor(self.data[3]))
        return TorchTask(
            self.model(seed),
            self.loss_fn,
            self._batches(check_seed(seed)),
            val,
            metrics=self.metrics_fn,
        )


def _classification_metrics(logits: Any, y: Any) -> dict[str, Any]:
    torch = _torch()
    loss = torch.nn.functional.cross_entropy(logits, y)
    return {"loss": loss, "accuracy": (logits.argmax(-1) == y).to(logits.dtype).mean()}


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
        self.features = check_int("features", features, 1)
        super().__init__(batch_size, n_train, n_val, data_seed, dtype)

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        w = rng.normal(size=self.features) * 2 / math.sqrt(self.features)
        n = self.n_train + self.n_val
        x = rng.normal(size=(n, self.features))
        p = 1 / (1 + np.exp(-(x @ w + 0.5)))
        y = (rng.random(n) < p).astype(np.float64)
        return x[: self.n_train], y[: self.n_train], x[self.n_train :], y[self.n_train :]

    def make_model(self) -> Any:
        return _torch().nn.Linear(self.features, 1)

    def loss_fn(self, model: Any, batch: Any) -> Any:
        x, y = batch
        return _torch().nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        x, y = batch
        z = model(x)[:, 0]
        loss = _torch().nn.functional.binary_cross_entropy_with_logits(z, y)
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
        self.features = check_int("features", features, 1)
        self.hidden = check_int("hidden", hidden, 1)
        self.classes = check_int("classes", classes, 2)
        super().__init__(batch_size, n_train, n_val, data_seed, dtype)

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        w1 = rng.normal(size=(self.features, 32)) / math.sqrt(self.features)
        w2 = rng.normal(size=(32, self.classes)) / math.sqrt(32) * 3
        n = self.n_train + self.n_val
        x = rng.normal(size=(n, self.features))
        y = (np.tanh(x @ w1 * 2) @ w2).argmax(-1).astype(np.int64)
        return x[: self.n_train], y[: self.n_train], x[self.n_train :], y[self.n_train :]

    def make_model(self) -> Any:
        nn = _torch().nn
        return nn.Sequential(
            nn.Linear(self.features, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.classes)
        )

    def loss_fn(self, model: Any, batch: Any) -> Any:
        x, y = batch
        return _torch().nn.functional.cross_entropy(model(x), y)

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        return _classification_metrics(model(batch[0]), batch[1])


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
        from .base import check_float

        self.features = check_int("features", features, 1)
        self.condition = check_float("condition", condition, 1.0)
        self.noise = check_float("noise", noise, 0.0)
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
        return _torch().nn.Linear(self.features, 1, bias=False)

    def loss_fn(self, model: Any, batch: Any) -> Any:
        a, b = batch
        return 0.5 * ((model(a)[:, 0] - b) ** 2).mean()

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        torch = _torch()
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
        from .base import check_float

        self.size = check_int("size", size, 6)
        self.noise = check_float("noise", noise, 0.0)
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
        nn = _torch().nn
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
        return _torch().nn.functional.cross_entropy(model(x), y)

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        return _classification_metrics(model(batch[0]), batch[1])


@functools.cache
def _elman_class() -> type:
    torch = _torch()

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
        self.length = check_int("length", length, 2)
        self.hidden = check_int("hidden", hidden, 1)
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
