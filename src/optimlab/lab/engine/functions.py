"""The backend for analytic test functions: K points ``(K, dim)`` stepped together.

The function gives losses ``(K,)`` and gradients ``(K, dim)`` in one call; the rule gets
its hyperparameters as ``(K, 1)`` arrays and the step's learning rates as a ``(K, 1)``
column. Runs in NumPy (the default) or on torch tensors (the same arithmetic, used by
tests and the benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...problems.functions import TestFunction
from ..record import Trace
from .grouping import Group
from .loop import LoopOptions, run_loop, take


class _NumPy:
    """Arrays of the NumPy backend."""

    @staticmethod
    def array(a: np.ndarray) -> Any:
        return np.array(a, dtype=np.float64)

    @staticmethod
    def numpy(a: Any) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def norm_rows(a: Any) -> Any:
        return np.sqrt(np.add.reduce(a * a, axis=-1))  # skips ndarray.sum's wrapper


class _Torch:
    """Arrays of the torch backend (float64 tensors on the CPU)."""

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def array(self, a: np.ndarray) -> Any:
        return self.torch.tensor(a, dtype=self.torch.float64)

    @staticmethod
    def numpy(a: Any) -> np.ndarray:
        return np.asarray(a.numpy())

    @staticmethod
    def norm_rows(a: Any) -> Any:
        return (a * a).sum(-1).sqrt()


class FunctionBackend:
    """K points of a test function, their optimizer state and hyperparameters."""

    def __init__(self, problem: TestFunction, group: Group, array: str = "numpy") -> None:
        self.ops: Any = _Torch() if array == "torch" else _NumPy()
        self.problem, self.rule = problem, group.rule
        extra = {} if self.rule.elementwise_with(group.flags) else {"batch_ndim": 1}
        self.x = self.ops.array(np.stack([problem.init(seed) for seed in group.seeds]))
        self.state = self.rule.init(self.x, **extra)
        floats = {k: self.ops.array(v[:, None]) for k, v in group.floats.items()}
        self.kw = {**floats, **group.flags, **extra}
        self.grad: Any = None
        self.record_points = problem.dim <= 2

    def gradients(self) -> tuple[np.ndarray, np.ndarray]:
        loss, self.grad = self.problem.loss_and_grad(self.x)
        return self.ops.numpy(loss), self.ops.numpy(self.ops.norm_rows(self.grad))

    def update(self, lr: np.ndarray) -> np.ndarray:
        lr_col = self.ops.array(lr[:, None])
        delta, self.state = self.rule.update(self.grad, self.state, self.x, lr=lr_col, **self.kw)
        self.x = self.x + delta
        return self.ops.numpy(self.ops.norm_rows(delta))

    def evaluate(self) -> Mapping[str, np.ndarray]:
        # at the rule's evaluation point (schedule-free's x, ASGD's average)
        return self.problem.evaluate(self.rule.evaluation_point(self.x, self.state))

    def keep(self, rows: np.ndarray) -> None:
        index = self.ops.torch.as_tensor(rows) if isinstance(self.ops, _Torch) else rows
        self.x, self.grad, self.state, self.kw = take(
            (self.x, self.grad, self.state, self.kw), index, len(self.x)
        )

    def points(self) -> np.ndarray | None:
        return self.ops.numpy(self.x) if self.record_points else None


def run_functions(
    problem: Any, group: Group, steps: int, options: LoopOptions, array: str = "numpy"
) -> list[Trace]:
    """One group on a test function (``array``: ``"numpy"`` or ``"torch"``)."""
    with np.errstate(all="ignore"):  # overflow on the way to divergence is expected
        return run_loop(FunctionBackend(problem, group, array), group, steps, options)
