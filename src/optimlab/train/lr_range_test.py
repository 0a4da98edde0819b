r"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates", sec. 3.3).

Train for ``num_iter`` steps while the learning rate grows from ``start_lr`` to ``end_lr``
(geometrically with ``mode="exp"``, evenly with ``"linear"``), record the loss after each
step, smooth it, stop early once it diverges, and suggest the rate where the smoothed loss
falls fastest. Everything is put back exactly as it was afterwards (also after an error):
parameters, buffers, gradients, train/eval modes, optimizer state and group
hyperparameters, and the torch, NumPy (global) and Python RNG states, bitwise. Batches
drawn from ``batches`` cannot be put back (an iterator is consumed).

Smoothing: a debiased exponential moving average with weight ``smooth`` on the newest loss,
:math:`a_i = (1 - s) a_{i-1} + s L_i`, :math:`\bar L_i = a_i / (1 - (1 - s)^{i+1})`.
Divergence: :math:`\bar L_i > \min_{j \le i} \bar L_j + (\text{threshold} - 1)\,|\min_j \bar L_j|`
(``threshold`` times the best for positive losses), or a non-finite loss.
Suggestion: the rate at the steepest descent of :math:`\bar L` against
:math:`\log_{10}` lr (``exp``) or lr (``linear``), searched up to the smoothed minimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import checks
from .preserve import preserved

if TYPE_CHECKING:
    import torch

    from optimlab.train.task import TorchTask


@dataclass
class LRFindResult:
    """What the range test saw: ``losses[i]`` is the loss after the step taken at ``lrs[i]``."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float | None
    diverged: bool
    mode: str = "exp"
    stop_reason: str = ""
    initial_loss: float = math.nan
    suggestion_index: int | None = field(default=None, repr=False)

    def __str__(self) -> str:
        sug = "none" if self.suggested_lr is None else f"{self.suggested_lr:.3g}"
        return (
            f"LR range test: {len(self.lrs)} steps, lr {self.lrs[0]:.3g} .. "
            f"{self.lrs[-1]:.3g}, suggested lr {sug}; {self.stop_reason}"
        )

    def plot(self, path: str | Path | None = None, ax: Any = None) -> Any:
        """Loss (raw and smoothed) against lr, the suggestion marked; returns the Figure.

        Without ``ax`` the figure is a ``matplotlib.figure.Figure`` made without pyplot:
        no backend is selected or switched, and no window opens.
        """
        if ax is None:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(7, 4.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ax.plot(self.lrs, self.losses, color="0.7", linewidth=1, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", linewidth=1.8, label="smoothed")
        if self.suggestion_index is not None:
            i = self.suggestion_index
            ax.plot(
                [self.lrs[i]],
                [self.smoothed[i]],
                "o",
                color="C3",
                label=f"suggested lr {self.lrs[i]:.3g}",
            )
        if self.mode == "exp":
            ax.set_xscale("log")
        finite = self.smoothed[np.isfinite(self.smoothed)]
        raw = self.losses[np.isfinite(self.losses)]
        if finite.size:  # keep the blow-up from flattening the useful part
            lo, first = float(min(finite.min(), raw.min())), float(finite[0])
            ax.set_ylim(lo - 0.1 * abs(first - lo) - 1e-12, first + 0.5 * abs(first - lo) + 1e-12)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def lr_range(start_lr: float, end_lr: float, num_iter: int, mode: str) -> np.ndarray:
    """The rates tried: ``start * (end/start)**(i/(n-1))`` (exp) or evenly spaced (linear)."""
    frac = np.arange(num_iter) / (num_iter - 1)
    if mode == "exp":
        return start_lr * (end_lr / start_lr) ** frac
    return start_lr + (end_lr - start_lr) * frac


# --- the test ---------------------------------------------------------------------------------


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    import torch

    for g in optimizer.param_groups:
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr)
        else:
            g["lr"] = lr


def _batch_source(batches: Iterable[Any]) -> Callable[[], Any]:
    """Next batch; a re-iterable (list, DataLoader) restarts when exhausted."""
    try:
        it = iter(batches)
    except TypeError:
        raise ValueError(f"batches must be iterable, got {type(batches).__name__}") from None
    restartable = it is not batches

    def take() -> Any:
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            if not restartable:
                raise
            it = iter(batches)
            return next(it)

    return take


def _suggest(
    lrs: np.ndarray, smoothed: np.ndarray, mode: str, skip_start: int, skip_end: int
) -> int | None:
    finite = np.isfinite(smoothed)
    end = len(smoothed) if finite.all() else int(np.argmin(finite))
    end = min(end, len(smoothed) - skip_end)
    if end - skip_start < 3:
        return None
    y = smoothed[skip_start:end]
    x = np.log10(lrs[skip_start:end]) if mode == "exp" else lrs[skip_start:end]
    stop = int(np.argmin(y)) + 1  # the steepest descent comes before the minimum
    if stop < 3:
        return None
    slope = np.gradient(y[:stop], x[:stop])
    return skip_start + int(np.argmin(slope))


def lr_find(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: str = "exp",
    smooth: float = 0.05,
    diverge_threshold: float = 5.0,
    accumulation_steps: int = 1,
    val_batch: Any | None = None,
    skip_start: int = 0,
    skip_end: int = 0,
) -> LRFindResult:
    """Run the LR range test and put everything back; see the module docstring.

    ``loss_fn(model, batch)`` returns a scalar tensor. Each step averages the gradients of
    ``accumulation_steps`` batches (losses divided by it). With ``val_batch`` the recorded
    loss is on that batch after each step (in eval mode, no grad), else the mean training
    loss of the next step's batches, measured before that step. Every param group gets the
    same rate. ``skip_start``/``skip_end`` drop points from the suggestion's search.

    >>> import torch
    >>> model = torch.nn.Linear(1, 1)
    >>> data = [(torch.randn(32, 1), torch.randn(32, 1))]
    >>> res = lr_find(model, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), data,
    ...               torch.optim.SGD(model.parameters(), lr=0.1), num_iter=20)
    >>> len(res.lrs) <= 20
    True
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {loss_fn!r}")
    checks.choice("mode", mode, ("exp", "linear"))
    start_lr = float(checks.real("start_lr", start_lr, 0.0, low_open=True))
    end_lr = float(checks.real("end_lr", end_lr))
    checks.require(end_lr > start_lr, f"end_lr must be > start_lr ({start_lr:g}), got {end_lr!r}")
    num_iter = checks.integer("num_iter", num_iter, 2)
    curve = _Curve(
        float(checks.real("smooth", smooth, 0.0, 1.0, low_open=True)),
        float(checks.real("diverge_threshold", diverge_threshold, 1.0, low_open=True)),
    )
    accumulation_steps = checks.integer("accumulation_steps", accumulation_steps, 1)
    skip_start = checks.integer("skip_start", skip_start, 0)
    skip_end = checks.integer("skip_end", skip_end, 0)
    next_batch = _batch_source(batches)
    lrs = lr_range(start_lr, end_lr, num_iter, mode)

    def train_loss(backward: bool) -> float:
        """Mean loss of the next ``accumulation_steps`` batches, grads accumulated if asked."""
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        with torch.set_grad_enabled(backward):
            for _ in range(accumulation_steps):
                loss = loss_fn(model, next_batch())
                if backward:
                    (loss / accumulation_steps).backward()
                total += float(loss.detach())
        return total / accumulation_steps

    def val_loss() -> float:
        return _val_loss(model, loss_fn, val_batch)

    with preserved(model, optimizer):
        initial, reason = _run(optimizer, lrs, curve, train_loss, val_loss, val_batch is not None)
    return _result(lrs, curve, mode, reason, initial, skip_start, skip_end)


def _run(
    optimizer: torch.optim.Optimizer,
    lrs: np.ndarray,
    curve: _Curve,
    train_loss: Callable[[bool], float],
    val_loss: Callable[[], float],
    validate: bool,
) -> tuple[float, str]:
    """The steps at rates ``lrs`` until they end, diverge or the batches run out; returns
    the loss before the first step and why the run stopped."""
    num_iter, initial = len(lrs), math.nan
    try:
        if not validate:
            # the loss of step i+1's batches, before that step, measures step i
            initial = train_loss(True)
            for i in range(num_iter):
                _set_lr(optimizer, float(lrs[i]))
                optimizer.step()
                if curve.add(train_loss(i < num_iter - 1)):
                    break
        else:
            initial = val_loss()
            for i in range(num_iter):
                _set_lr(optimizer, float(lrs[i]))
                train_loss(True)
                optimizer.step()
                if curve.add(val_loss()):
                    break
    except StopIteration:
        return initial, f"the batches ran out after {len(curve.losses)} steps"
    return initial, f"ran all {num_iter} steps"


def _result(
    lrs: np.ndarray,
    curve: _Curve,
    mode: str,
    reason: str,
    initial: float,
    skip_start: int,
    skip_end: int,
) -> LRFindResult:
    """What the run saw, with the suggestion."""
    n = len(curve.losses)
    if n == 0:
        raise ValueError("batches gave too few batches for even one step of the range test")
    if curve.diverged:
        reason = f"diverged at lr {lrs[n - 1]:.3g} after {n} steps"
    lrs_seen, smoothed = lrs[:n], np.asarray(curve.smoothed)
    idx = _suggest(lrs_seen, smoothed, mode, skip_start, skip_end)
    return LRFindResult(
        lrs=lrs_seen,
        losses=np.asarray(curve.losses),
        smoothed=smoothed,
        suggested_lr=None if idx is None else float(lrs_seen[idx]),
        diverged=curve.diverged,
        mode=mode,
        stop_reason=reason,
        initial_loss=initial,
        suggestion_index=idx,
    )


class _Curve:
    """Losses, their debiased EMA, and the divergence rule."""

    def __init__(self, smooth: float, threshold: float) -> None:
        self.smooth, self.threshold = smooth, threshold
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.avg, self.best, self.diverged = 0.0, math.inf, False

    def add(self, loss: float) -> bool:
        """Record ``loss``; True when the run should stop (diverged)."""
        self.losses.append(loss)
        self.avg = (1 - self.smooth) * self.avg + self.smooth * loss
        value = self.avg / (1 - (1 - self.smooth) ** len(self.losses))
        self.smoothed.append(value)
        self.best = min(self.best, value)
        limit = self.best + (self.threshold - 1) * abs(self.best)
        self.diverged = not (math.isfinite(loss) and value <= limit)
        return self.diverged


def _val_loss(model: torch.nn.Module, loss_fn: Callable[..., Any], batch: Any) -> float:
    import torch

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return float(loss_fn(model, batch))
    finally:
        for m, training in modes:
            m.training = training


def lr_find_task(
    task: TorchTask,
    optimizer: str = "adam",
    *,
    hyperparams: dict[str, Any] | None = None,
    use_val_batch: bool = False,
    **kwargs: Any,
) -> LRFindResult:
    """The range test on a ``TorchTask`` with a registered optimizer (by name).

    ``hyperparams`` go to ``optimlab.create_optimizer`` (``lr`` is driven by the test);
    ``kwargs`` to :func:`lr_find`. ``use_val_batch`` records the loss on ``task.val_batch``.

    >>> from optimlab import problems
    >>> res = lr_find_task(problems.get("least_squares").torch_task(0), "sgd", num_iter=30)
    >>> res.suggested_lr is None or res.suggested_lr > 0
    True
    """
    from optimlab.optim import create_optimizer

    hp = dict(hyperparams or {})
    if "lr" in hp:
        raise ValueError("hyperparams must not set lr: the range test drives it")
    if use_val_batch and task.val_batch is None:
        raise ValueError("use_val_batch=True but the task has no val_batch")
    # checked here too, so a bad start_lr is named before it reaches the optimizer as lr
    start_lr = checks.real("start_lr", kwargs.get("start_lr", 1e-7), 0.0, low_open=True)
    opt = create_optimizer(optimizer, list(task.model.parameters()), lr=start_lr, **hp)
    return lr_find(
        task.model,
        task.loss,
        task.batches,
        opt,
        val_batch=task.val_batch if use_val_batch else None,
        **kwargs,
    )
