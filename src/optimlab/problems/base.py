"""What a problem is: something to minimize, deterministic from a seed.

Two kinds exist, and the engine treats them differently:

- ``TestFunction`` (``kind == "function"``): an analytic function of a vector with known
  minima and analytic gradients written with plain operators, so one code path runs on
  NumPy arrays and torch tensors, one point ``(dim,)`` or a batch ``(..., dim)`` at once.
- ``TorchProblem`` (``kind == "torch"``): a torch model, its loss and generated data,
  reached through ``torch_task(seed)``.

Both give ``torch_task(seed) -> TorchTask``, which is what ``lr_find``, the training
utilities and sequential torch runs consume.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

from ..train.task import TorchTask


class Problem(ABC):
    """Base of every problem: a ``name``, a ``kind`` and a torch view."""

    name: str = ""
    kind: str = ""

    @abstractmethod
    def torch_task(self, seed: int = 0) -> TorchTask:
        """The model, loss and data for ``seed`` (fresh objects on every call)."""

    def __repr__(self) -> str:
        return f"<problem {self.name!r} ({self.kind})>"


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int ``>= low``, else ``ValueError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any, low: float = -math.inf, *, open_low: bool = False) -> float:
    """``value`` as a finite float ``>= low`` (``> low`` if ``open_low``), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    x = float(value)
    ok = math.isfinite(x) and (x > low if open_low else x >= low)
    if not ok:
        raise ValueError(
            f"{name} must be a finite number {'>' if open_low else '>='} {low:g}, got {value!r}"
        )
    return x


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_dtype(dtype: Any) -> str:
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return str(dtype)
