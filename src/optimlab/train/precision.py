"""Mixed precision: autocast contexts and a small dynamic loss scaler for fp16.

Parameters stay in fp32 (the "master weights"); autocast runs eligible ops in bf16 or
fp16 and gradients arrive in fp32. bf16 has fp32's exponent range and needs no loss
scaling. fp16 does: small gradients underflow to zero, so the loss is multiplied by a
large ``scale`` before ``backward`` and the gradients divided by it before clipping and
the optimizer step.

We use our own :class:`LossScaler` rather than ``torch.amp.GradScaler``: GradScaler owns
the decision to call ``optimizer.step()`` (and patches per-optimizer state), whereas here
the training step makes that decision once, together with clipping, the non-finite policy,
the scheduler and the step counter. The scaler is 40 lines of plain arithmetic, works on
any device, and its state is three numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, cast

from ..core import checks

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


def check_precision(precision: object) -> Precision:
    """Return ``precision`` if it is one of ``"fp32"``, ``"bf16"``, ``"fp16"``."""
    return cast(Precision, checks.choice("precision", precision, PRECISIONS))


def autocast(precision: Precision, device_type: str) -> contextlib.AbstractContextManager[Any]:
    """The forward-pass context for ``precision`` (a no-op for ``"fp32"``)."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type, dtype=dtype)


class LossScaler:
    """Dynamic loss scaling: back off on overflow, grow after a run of good steps.

    Per optimizer step: ``scale(loss).backward()`` for each micro-batch, then
    ``unscale_(params)`` exactly once (it returns whether every gradient is finite), then
    ``update(found_inf)``. On a non-finite step the scale is multiplied by
    ``backoff_factor``; after ``growth_interval`` consecutive finite steps it is multiplied
    by ``growth_factor`` (capped at ``max_scale``). With power-of-two factors, scaling and
    unscaling are exact. A backoff below ``min_scale`` raises
    :class:`~optimlab.train.nonfinite.NonFiniteGradientError` instead of skipping forever.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        *,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        max_scale: float = 2.0**64,
        min_scale: float = 2.0**-24,
    ) -> None:
        self.scale = float(checks.real("init_scale", init_scale, 0.0, low_open=True))
        self.growth_factor = float(checks.real("growth_factor", growth_factor, 1.0, low_open=True))
        self.backoff_factor = float(
            checks.real("backoff_factor", backoff_factor, 0.0, 1.0, low_open=True, high_open=True)
        )
        self.growth_interval: int = checks.integer("growth_interval", growth_interval, 1)
        self.max_scale = float(checks.real("max_scale", max_scale, self.scale))
        self.min_scale = float(checks.real("min_scale", min_scale, 0.0, self.scale, low_open=True))
        self.good_steps = 0  # consecutive finite steps since the last change of scale
        self._unscaled = False

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss * scale``, computed in fp32 so the scaled loss does not overflow fp16."""
        import torch

        return (
            loss.to(torch.float32) * self.scale
            if loss.dtype == torch.float16
            else (loss * self.scale)
        )

    def unscale_(self, params: Iterable[torch.Tensor]) -> bool:
        """Divide every gradient by the scale, in place; return whether all are finite.

        Must be called exactly once per optimizer step, before clipping.
        """
        from .nonfinite import grads_finite

        if self._unscaled:
            raise RuntimeError("unscale_() was already called for this step; call update() first")
        params = list(params)
        inv = 1.0 / self.scale
        for p in params:
            if p.grad is not None:
                p.grad.mul_(inv)
        self._unscaled = True
        return grads_finite(params)

    def update(self, found_inf: bool) -> None:
        """Adapt the scale after a step (``found_inf``: the step was skipped)."""
        self._unscaled = False
        if found_inf:
            if self.scale * self.backoff_factor < self.min_scale:
                from .nonfinite import NonFiniteGradientError

                raise NonFiniteGradientError(
                    f"the loss scale would fall below min_scale={self.min_scale:g}: gradients "
                    "are non-finite at every scale (NaN or inf in the model, loss or data?)"
                )
            self.scale *= self.backoff_factor
            self.good_steps = 0
            return
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale = min(self.scale * self.growth_factor, self.max_scale)
            self.good_steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "good_steps": self.good_steps,
            "growth_factor": self.growth_factor,
            "backoff_factor": self.backoff_factor,
            "growth_interval": self.growth_interval,
            "max_scale": self.max_scale,
            "min_scale": self.min_scale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        fresh = LossScaler(
            state["scale"],
            growth_factor=state["growth_factor"],
            backoff_factor=state["backoff_factor"],
            growth_interval=state["growth_interval"],
            max_scale=state["max_scale"],
            min_scale=state.get("min_scale", 2.0**-24),  # absent before it existed
        )
        good = checks.integer("good_steps", state["good_steps"], 0)
        self.__dict__.update(fresh.__dict__)
        self.good_steps = good

    def __repr__(self) -> str:
        return (
            f"LossScaler(scale={self.scale:g}, good_steps={self.good_steps}, "
            f"growth_interval={self.growth_interval})"
        )
