"""One explicit training step: micro-batches, loss scaling, clipping, non-finite policy.

``TrainStep`` is not a framework: it owns no loop, data or logging. One call performs one
optimizer step over N micro-batches and returns a :class:`StepReport`::

    train_step = TrainStep(model, optimizer, loss_fn, accumulation_steps=4, clip_norm=1.0,
                           precision="bf16", scheduler=scheduler)
    for batch in batches:
        report = train_step.step(batch)   # split into 4 micro-batches, one optimizer step

Order within a step: zero grads; per micro-batch forward (under autocast) and backward of
``loss_i * n_i / N`` (times the loss scale in fp16); unscale once; clip (returns the
pre-clip norm); decide (non-finite gradients follow the policy; in fp16 they always skip
and back off the scale); optimizer step; scheduler step; count.

The scheduler and ``step_count`` advance once per optimizer step actually taken: never per
micro-batch and never on a skipped step, so the schedule is a function of the number of
updates applied and a skipped fp16 step is, for everything but the loss scale, as if it
had not happened.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import checks
from .clip import clip_grad_norm, clip_grad_value, grad_norm
from .nonfinite import Policy, check_policy, optimizer_params, resolve
from .precision import LossScaler, Precision, autocast, check_precision

if TYPE_CHECKING:
    import torch

LossFn = Callable[["torch.nn.Module", Any], "torch.Tensor"]


@dataclass(frozen=True)
class StepReport:
    """What one optimizer step did.

    ``loss`` is the full-batch mean (micro-batch losses weighted by sample count);
    ``grad_norm`` the global 2-norm of the unscaled gradient before clipping; ``lr`` the
    learning rate of the first param group used by this step; ``scale`` the fp16 loss
    scale used (None otherwise); ``step`` the optimizer steps taken so far.
    """

    step: int
    loss: float
    grad_norm: float
    lr: float
    skipped: bool
    scale: float | None
    samples: int
    micro_batches: int


def sample_count(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor (tensor, tuple or dict)."""
    import torch

    if isinstance(batch, torch.Tensor):
        if batch.ndim == 0:
            raise ValueError("batch must have a leading sample dimension, got a 0-d tensor")
        return int(batch.shape[0])
    items = list(batch.values()) if isinstance(batch, Mapping) else batch
    if isinstance(items, Sequence) and not isinstance(items, str):
        for item in items:
            if isinstance(item, torch.Tensor) and item.ndim > 0:
                return int(item.shape[0])
    raise ValueError(
        f"cannot tell the batch size of a {type(batch).__name__}; pass batch_size=callable"
    )


def split_batch(batch: Any, n: int) -> list[Any]:
    """Split a batch (tensor, tuple/named tuple/list or dict of tensors) into ``n`` micro-batches.

    Sizes differ by at most one (``torch.tensor_split``); empty ones are dropped.
    """
    import torch

    n = checks.integer("n", n, 1)
    if isinstance(batch, torch.Tensor):
        parts: list[Any] = list(torch.tensor_split(batch, n))
    elif isinstance(batch, Mapping):
        split = {k: torch.tensor_split(v, n) for k, v in batch.items()}
        parts = [{k: v[i] for k, v in split.items()} for i in range(n)]
    elif isinstance(batch, Sequence):
        cols = [torch.tensor_split(v, n) for v in batch]
        kind: Any = type(batch)
        if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a named tuple
            parts = [kind(*(c[i] for c in cols)) for i in range(n)]
        else:
            parts = [kind(c[i] for c in cols) for i in range(n)]
    else:
        raise ValueError(f"cannot split a batch of type {type(batch).__name__}")
    return [p for p in parts if sample_count(p) > 0]


def _check_scheduler(scheduler: Any) -> None:
    """Refuse a scheduler ``TrainStep`` cannot step (before any optimizer step, not after)."""
    step = getattr(scheduler, "step", None)
    if not callable(step):
        raise ValueError(f"scheduler must have a step() method, got {scheduler!r}")
    try:
        params = inspect.signature(step).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    required = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        raise ValueError(
            f"scheduler {type(scheduler).__name__}.step() needs {', '.join(required)} (a metric, "
            "as ReduceLROnPlateau does); TrainStep calls step() with no arguments: pass "
            "scheduler=None and call scheduler.step(metric) yourself after each step"
        )


def _check_parts(model: Any, optimizer: Any, loss_fn: Any, scheduler: Any) -> None:
    """What ``TrainStep`` drives: a module, a torch optimizer, a loss and a scheduler."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (hasattr(optimizer, "param_groups") and callable(getattr(optimizer, "step", None))):
        raise ValueError(f"optimizer must be a torch optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {loss_fn!r}")
    if scheduler is not None:
        _check_scheduler(scheduler)


def _check_clip_and_precision(
    model: torch.nn.Module,
    precision: object,
    scaler: object,
    clip_norm: object,
    clip_value: object,
) -> None:
    """Clipping (one kind at most, a limit > 0) and precision (a loss scaler only for
    fp16; fp32 or fp64 master weights under autocast)."""
    import torch

    if clip_norm is not None and clip_value is not None:
        raise ValueError(
            f"give clip_norm or clip_value, not both (got clip_norm={clip_norm!r}, "
            f"clip_value={clip_value!r})"
        )
    if clip_norm is not None:
        checks.real("clip_norm", clip_norm, 0.0, low_open=True)
    if clip_value is not None:
        checks.real("clip_value", clip_value, 0.0, low_open=True)
    check_precision(precision)
    if scaler is not None and precision != "fp16":
        raise ValueError(f"scaler is only used with precision='fp16', got precision={precision!r}")
    if scaler is not None and not isinstance(scaler, LossScaler):
        raise ValueError(f"scaler must be an optimlab LossScaler, got {type(scaler).__name__}")
    if precision != "fp32":
        for name, p in model.named_parameters():
            if p.dtype not in (torch.float32, torch.float64):
                raise ValueError(
                    f"precision={precision!r} keeps fp32 master weights; parameter {name!r} "
                    f"is {p.dtype}"
                )


class TrainStep:
    """A full optimizer step over micro-batches; see the module docstring for the order.

    Args:
        model: the module; ``loss_fn(model, batch)`` returns the scalar mean loss of ``batch``.
        optimizer: any ``torch.optim.Optimizer``.
        scheduler: stepped once per optimizer step taken (any LRScheduler-like object).
        accumulation_steps: micro-batches that :meth:`step` splits a batch into.
        clip_norm / clip_value: clip by global 2-norm or by value (at most one).
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast + loss scaling);
            parameters must be fp32 or fp64 (the master weights) for bf16/fp16.
        nonfinite: ``"raise"``, ``"skip"`` or ``"propagate"`` for non-finite gradients
            (fp16 overflow always skips: that is how dynamic loss scaling works; the
            scaler raises once its scale would fall below ``min_scale``).
        scaler: a :class:`LossScaler` for fp16 (default ``LossScaler()``).
        batch_size: function giving a micro-batch's sample count (default: first dim).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        scheduler: Any = None,
        accumulation_steps: int = 1,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        precision: Precision = "fp32",
        nonfinite: Policy = "skip",
        scaler: LossScaler | None = None,
        batch_size: Callable[[Any], int] | None = None,
    ) -> None:
        _check_parts(model, optimizer, loss_fn, scheduler)
        accumulation_steps = checks.integer("accumulation_steps", accumulation_steps, 1)
        _check_clip_and_precision(model, precision, scaler, clip_norm, clip_value)
        check_policy(nonfinite)
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.accumulation_steps = accumulation_steps
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.precision: Precision = precision
        self.nonfinite: Policy = nonfinite
        self.scaler = scaler if scaler is not None or precision != "fp16" else LossScaler()
        self.batch_size = batch_size or sample_count
        first = next(iter(model.parameters()), None)
        self.device_type = first.device.type if first is not None else "cpu"
        self.step_count = 0  # optimizer steps taken
        self.skipped_count = 0  # steps skipped for non-finite gradients

    def step(self, batch: Any) -> StepReport:
        """One optimizer step on ``batch``, split into ``accumulation_steps`` micro-batches."""
        return self.step_micro(split_batch(batch, self.accumulation_steps))

    def step_micro(self, micro_batches: Sequence[Any]) -> StepReport:
        """One optimizer step over the given micro-batches (any sizes, at least one)."""
        batches = list(micro_batches)
        if not batches:
            raise ValueError("micro_batches must hold at least one batch, got none")
        sizes = [self.batch_size(b) for b in batches]
        checks.require(
            all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes),
            f"micro-batch sizes must be integers >= 1, got {sizes}",
        )
        total = sum(sizes)
        params = optimizer_params(self.optimizer)
        scale = self.scaler.scale if self.scaler is not None else None
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum: Any = 0.0  # accumulated on the loss's device: one host sync per step
        for batch, n in zip(batches, sizes, strict=True):
            with autocast(self.precision, self.device_type):
                loss = self.loss_fn(self.model, batch)
            if loss.ndim != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            # Weight each micro-batch mean by its share of samples: the accumulated
            # gradient is then the full-batch mean even when the last micro-batch is short.
            weighted = loss * (n / total)
            if self.scaler is not None:
                weighted = self.scaler.scale_loss(weighted)
            weighted.backward()
            loss_sum = loss_sum + loss.detach().double() * (n / total)
        return self._finish(params, float(loss_sum), total, len(batches), scale)

    def _finish(
        self, params: list[Any], loss: float, samples: int, n_micro: int, scale: float | None
    ) -> StepReport:
        overflow = False
        if self.scaler is not None:
            overflow = not self.scaler.unscale_(params)  # exactly once, before clipping
        # "propagate": clipping leaves non-finite gradients untouched; the decision is below.
        if self.clip_norm is not None:
            norm = clip_grad_norm(params, self.clip_norm, nonfinite="propagate")
        elif self.clip_value is not None:
            norm = clip_grad_value(params, self.clip_value, nonfinite="propagate")
        else:
            norm = grad_norm(params)
        finite = math.isfinite(norm) and not overflow
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self.scaler is not None:
            take = finite
            self.scaler.update(found_inf=not finite)
        else:
            take = resolve(finite, self.nonfinite, "gradient")
        if take:
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step_count += 1
        else:
            self.skipped_count += 1
        return StepReport(
            step=self.step_count,
            loss=loss,
            grad_norm=norm,
            lr=lr,
            skipped=not take,
            scale=scale,
            samples=samples,
            micro_batches=n_micro,
        )

    def state_dict(self) -> dict[str, Any]:
        """Counters and loss-scaler state (plain data)."""
        return {
            "step_count": self.step_count,
            "skipped_count": self.skipped_count,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        counts = {k: checks.integer(k, state[k], 0) for k in ("step_count", "skipped_count")}
        if (state["scaler"] is None) != (self.scaler is None):
            raise ValueError(
                "loss scaler state does not match this TrainStep "
                f"(saved {'without' if state['scaler'] is None else 'with'} a scaler, "
                f"precision here is {self.precision!r})"
            )
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.step_count = counts["step_count"]
        self.skipped_count = counts["skipped_count"]
