"""The torch-side view of a problem: what lr_find, train utilities and sequential runs consume."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class TorchTask:
    """A model, its loss and its data.

    ``loss(model, batch)`` returns a scalar tensor; ``batches`` yields training batches
    without end (it owns its own seeded generator); ``val_batch`` is an optional fixed
    batch for evaluation. Test functions such as Rosenbrock are a module holding one
    parameter whose loss ignores the batch.

    ``metrics(model, batch)`` (optional) returns named scalar tensors for evaluation on
    ``val_batch``, e.g. ``{"loss": ..., "accuracy": ...}``; it must be a pure function of
    the parameters and the batch (no in-place updates), so the lab can ``vmap`` it.
    """

    model: torch.nn.Module
    loss: Callable[[torch.nn.Module, Any], torch.Tensor]
    batches: Iterator[Any]
    val_batch: Any | None = None
    metrics: Callable[[torch.nn.Module, Any], dict[str, torch.Tensor]] | None = None
