"""Training utilities: one explicit training step (micro-batch accumulation, clipping,
mixed precision, non-finite policy), checkpoint/resume, and optimizer memory accounting.

Works with any ``torch.optim.Optimizer`` and LR scheduler. Submodules load lazily, so
``optimlab.train.memory`` for a registered optimizer name does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, tuple[str, str | None]] = {
    "TrainStep": ("step", "TrainStep"),
    "StepReport": ("step", "StepReport"),
    "split_batch": ("step", "split_batch"),
    "sample_count": ("step", "sample_count"),
    "clip_grad_norm": ("clip", "clip_grad_norm"),
    "clip_grad_value": ("clip", "clip_grad_value"),
    "grad_norm": ("clip", "grad_norm"),
    "LossScaler": ("precision", "LossScaler"),
    "autocast": ("precision", "autocast"),
    "NonFiniteGradientError": ("nonfinite", "NonFiniteGradientError"),
    "grads_finite": ("nonfinite", "grads_finite"),
    "guarded_step": ("nonfinite", "guarded_step"),
    "CheckpointManager": ("checkpoint", "CheckpointManager"),
    "Checkpoint": ("checkpoint", "Checkpoint"),
    "CheckpointError": ("checkpoint", "CheckpointError"),
    "CheckpointCorruptError": ("checkpoint", "CheckpointCorruptError"),
    "CheckpointMismatchError": ("checkpoint", "CheckpointMismatchError"),
    "CheckpointWarning": ("checkpoint", "CheckpointWarning"),
    "StopOnSignal": ("stop", "StopOnSignal"),
    "get_rng_state": ("rng", "get_rng_state"),
    "set_rng_state": ("rng", "set_rng_state"),
    "memory": ("memory", None),  # the module: optimlab.train.memory.memory / .table
    "memory_table": ("memory", "table"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'optimlab.train' has no attribute {name!r}") from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
