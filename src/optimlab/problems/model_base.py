"""The base of the torch problems: a model on generated data, deterministic from seeds.

Each problem generates its data set once from ``data_seed`` (the same data for every run
seed); the run ``seed`` sets the model's initial weights and the order of the training
batches, which are drawn from the problem's own generator (``numpy`` ``default_rng``), so
two tasks made with the same seed see identical batches. Torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core import checks
from ..train.task import TorchTask
from .base import Problem


def torch_module() -> Any:
    """torch, imported on first use (``import optimlab.problems`` stays light)."""
    import torch

    return torch


class TorchProblem(Problem):
    """A torch model with a training set, a validation set and metrics.

    Subclasses give ``make_data(rng) -> (x_train, y_train, x_val, y_val)`` (NumPy),
    ``make_model()`` (called under ``torch.manual_seed(seed)``), ``loss_fn`` and
    ``metrics_fn``. ``batch_size=None`` means full-batch (deterministic) training.
    """

    kind = "torch"

    @property
    def evaluation(self) -> str:
        return "held-out"

    def __init__(
        self, batch_size: int | None, n_train: int, n_val: int, data_seed: int, dtype: str
    ) -> None:
        self.n_train = checks.integer("n_train", n_train, 1)
        self.n_val = checks.integer("n_val", n_val, 1)
        if batch_size is not None:
            batch_size = checks.integer("batch_size", batch_size, 1)
        self.batch_size = batch_size
        self.data_seed = checks.integer("data_seed", data_seed, 0)
        self.dtype = checks.choice("dtype", dtype, ("float32", "float64"))
        self._data: tuple[np.ndarray, ...] | None = None

    @property
    def seed_changes(self) -> tuple[str, ...]:
        """The initial weights, and the order of the mini-batches (not with full batches).
        The data set itself comes from ``data_seed`` and is the same for every seed."""
        return ("init",) if self.batch_size is None else ("init", "batch order")

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
        torch = torch_module()
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
            idx = torch_module().as_tensor(rng.integers(0, self.n_train, self.batch_size))
            yield x[idx], y[idx]

    def model(self, seed: int = 0) -> Any:
        """The model with its initial weights for ``seed``."""
        torch = torch_module()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(checks.integer("seed", seed, 0))
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
            self._batches(checks.integer("seed", seed, 0)),
            val,
            metrics=self.metrics_fn,
        )


SHORT_CLASSES = 16  # below it, cross_entropy's log-softmax runs along the transposed logits


def cross_entropy(logits: Any, y: Any) -> Any:
    r"""The mean cross-entropy of ``logits`` (``(N, C)``) against class indices ``y``
    (``(N,)``): :math:`-\frac1N \sum_i \log \mathrm{softmax}(z_i)_{y_i}`.

    ``torch.nn.functional.cross_entropy`` computes the same, but under ``vmap`` (the
    lab's batched sweeps) its ``nll_loss`` has no batching rule and runs as a Python
    decomposition; ``log_softmax`` and ``gather`` batch natively (0.58 against 0.81 ms
    for the forward and backward of 32 settings x 128 examples x 5 classes).

    Under ``SHORT_CLASSES`` classes the log-softmax runs along the other axis of the
    transposed logits: torch's CPU kernel is slow along a last axis shorter than a vector
    of floats, while along an inner axis it vectorises across the rows. Forward, 32 x 128
    logits: with AVX-512, 5 classes 146 against 24 us, 15 classes 468 against 42; with
    AVX2, 5 classes 129 against 27, 8 classes 26 against 39 (the one loss), 15 classes
    52 against 51. From 16 classes on the last axis is the faster (97: 142 against 349)."""
    if logits.shape[-1] < SHORT_CLASSES:
        log_p = logits.transpose(-1, -2).log_softmax(-2).transpose(-1, -2)
    else:
        log_p = logits.log_softmax(-1)
    return -log_p.gather(-1, y.unsqueeze(-1)).mean()


def classification_metrics(logits: Any, y: Any) -> dict[str, Any]:
    loss = cross_entropy(logits, y)
    return {"loss": loss, "accuracy": (logits.argmax(-1) == y).to(logits.dtype).mean()}
