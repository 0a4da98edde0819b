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

from abc import ABC, abstractmethod

from ..train.task import TorchTask


class Problem(ABC):
    """Base of every problem: a ``name``, a ``kind`` and a torch view.

    Two facts every problem states, which the lab's verdicts rely on:

    - ``seed_changes``: what a run's seed changes, in words (``"start"``, ``"init"``,
      ``"batch order"``, ...); empty when seeds cannot change anything (a test function
      from a fixed start), so the lab runs one seed and says so.
    - ``evaluation``: what the evaluation metrics are measured on: ``"held-out"`` (data
      not trained on), ``"training"`` (the training data), or ``"objective"`` (the
      function itself at the current point: test functions).
    """

    name: str = ""
    kind: str = ""

    @property
    def evaluation(self) -> str:
        """``"held-out"``, ``"training"`` or ``"objective"`` (see the class docstring)."""
        return "training"

    @property
    def seed_changes(self) -> tuple[str, ...]:
        """What a run's seed changes (empty: nothing, every seed gives the same run)."""
        return ()

    @abstractmethod
    def torch_task(self, seed: int = 0) -> TorchTask:
        """The model, loss and data for ``seed`` (fresh objects on every call)."""

    def __repr__(self) -> str:
        return f"<problem {self.name!r} ({self.kind})>"
