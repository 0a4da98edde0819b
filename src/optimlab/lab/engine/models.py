"""Backends for torch models: K parameter sets stacked under ``vmap``, or one model alone.

``StackedModels``: the model's parameters are stacked ``(K, *shape)`` per name;
``torch.func.functional_call`` runs the task's own ``loss(model, batch)`` with them,
``vmap`` maps it over the config axis, and the rule steps each stacked tensor with
``(K, 1, ...)`` hyperparameters. Settings with one seed share each batch; settings with
several seeds each get their seed's batch (stacked, mapped over too).

``SingleModel``: one setting, the rule applied to the task model's own parameters. It is
the reference the stacked backend is tested against (``batched=False``), and the
fallback where vmap fails on the first step (a model that updates buffers or draws random
numbers in ``forward``).

Every seed builds its task and draws its batches and its random numbers from its own
stream, seeded from the run's seed apart from the stream that initialised the model, so a
run does not depend on what the process ran before, and batched equals one at a time
within rounding (the numerics tolerance).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, vmap

from ..record import Trace
from .grouping import Group
from .loop import LoopOptions, run_loop, take
from .routes import Stepper, units


class _Call(torch.nn.Module):
    """``forward(batch) = fn(model, batch)``, so functional_call can swap the model's weights."""

    def __init__(self, model: torch.nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self._fn = fn

    def forward(self, batch: Any) -> Any:
        return self._fn(self.model, batch)


class VmapUnsupported(Exception):
    """vmap cannot run this model (raised from the first step's error)."""


def rng_seed(seed: int) -> int:
    """The seed of a run's torch RNG stream (dropout, shuffling data loaders): from the
    run's seed, apart from the stream that initialised the model."""
    return int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])


def _stack_batches(batches: list[Any], index: list[int]) -> Any:
    """``batches[index[k]]`` for every row k, stacked along a new leading axis."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.stack([batches[i] for i in index])
    if isinstance(first, tuple | list):
        return type(first)(
            _stack_batches([b[j] for b in batches], index) for j in range(len(first))
        )
    if isinstance(first, dict):
        return {k: _stack_batches([b[k] for b in batches], index) for k in first}
    if first is None:
        return None
    raise ValueError(f"cannot stack batches of type {type(first).__name__} for several seeds")


def _np(t: torch.Tensor) -> np.ndarray:
    return np.asarray(t.detach().double().cpu().numpy())


def _norm(tensors: Any) -> torch.Tensor:
    """Per row, the 2-norm of every tensor's entries together (accumulated in float64):
    one norm of a flat ``(K, N)`` tensor, or of the tensors' concatenation."""
    rows = (
        tensors
        if isinstance(tensors, torch.Tensor)
        else torch.cat([t.flatten(1) for t in tensors], dim=1)
    )
    return torch.linalg.vector_norm(rows, dim=1, dtype=torch.float64)


def _trainable(problem: Any, model: torch.nn.Module) -> list[str]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ValueError(f"problem {problem.name!r}: the model has no trainable parameters")
    return names


def _evaluated(task: Any, fn: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """``fn()`` with the task's model in eval mode (no dropout, batch norm's running
    statistics left alone), without gradients and on a forked RNG: evaluating must not
    change the training that follows (``eval_every`` is not part of a run's identity)."""
    was_training = task.model.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            task.model.eval()
            return fn()
    finally:
        task.model.train(was_training)


class _Seeds:
    """Each seed's task and its own RNG stream for drawing batches."""

    def __init__(self, problem: Any, seeds: list[int]) -> None:
        self.unique = sorted(set(seeds))
        self.tasks, self.rng = {}, {}
        for s in self.unique:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(rng_seed(s))
                self.tasks[s] = problem.torch_task(s)
                self.rng[s] = torch.get_rng_state()

    def next_batches(self) -> list[Any]:
        """The next batch of every seed (a shuffling DataLoader uses torch's global RNG)."""
        batches = []
        for s in self.unique:
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self.rng[s])
                batches.append(next(self.tasks[s].batches))
                self.rng[s] = torch.get_rng_state()
        return batches


class StackedModels:
    """K parameter sets of one model, stacked per name, with vmapped loss, grads and metrics.

    The constructor runs the first gradients and metrics, which also probes whether vmap
    can run this model (``VmapUnsupported`` if not).
    """

    def __init__(self, problem: Any, group: Group) -> None:
        self.seeds = _Seeds(problem, group.seeds)
        self.which = np.array([self.seeds.unique.index(s) for s in group.seeds])
        template = self.seeds.tasks[self.seeds.unique[0]]
        self.names = _trainable(problem, template.model)
        models = [dict(self.seeds.tasks[s].model.named_parameters()) for s in group.seeds]
        self.params = {n: torch.stack([m[n].detach() for m in models]) for n in self.names}
        # which rule steps which parameter (routing, group-wide rules), and its states
        self.stepper = Stepper(units(group, template.model, self.names), self.params, True)
        # One rule over every parameter as one vector: the parameters live in one (K, N)
        # tensor (self.flat; self.params are its views) and the gradient comes as one, so
        # a step has no gather, scatter or per-tensor add.
        self.flat: torch.Tensor | None = None
        if self.stepper.whole is not None:
            self.flat = self.stepper.flat(self.params)
            self.params = self.stepper.split(self.flat, self.params)
        self.value_grad = self._value_grad(template)
        self.metrics = self._metrics(template)
        self.first_metrics: Mapping[str, np.ndarray] | None = None
        self.first_grads: Any = None
        buffers = [b._version for b in template.model.buffers()]
        try:  # the first metrics and gradients also probe whether vmap can run this model
            self.first_metrics = self.evaluate()
            self.first_grads = self.value_grad(self._stored(), self._batch())
        except Exception as exc:
            raise VmapUnsupported(str(exc)) from exc
        if buffers != [b._version for b in template.model.buffers()]:
            # one buffer for every row: each setting needs its own (batch norm's statistics)
            raise VmapUnsupported("the model updates its buffers in forward")
        self.grads: Any = {}  # by name, or one flat tensor with self.flat

    def _value_grad(self, template: Any) -> Callable[..., Any]:
        """Per-row gradients and losses: the K losses from one vmapped forward, their
        gradients from one ordinary backward of their sum (row k's loss depends on row k's
        parameters only, so the gradient of the sum is each row's own gradient). Cheaper
        than ``vmap(grad(...))``, which batches every op of the backward again. With
        ``self.flat`` it takes and returns flat tensors: the parameters are views of the
        one leaf, and the backward of the split gathers their gradients in one op."""
        call = _Call(template.model, template.loss)

        def loss_fn(p: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
            return functional_call(call, {f"model.{n}": v for n, v in p.items()}, (batch,))

        shared = len(self.seeds.unique) == 1
        losses_of = vmap(loss_fn, in_dims=(0, None if shared else 0), randomness="error")

        def value_grad(params: dict[str, torch.Tensor], batch: Any) -> tuple[dict, torch.Tensor]:
            leaves = {n: v.detach().requires_grad_() for n, v in params.items()}
            with torch.enable_grad():
                losses = losses_of(leaves, batch)
                grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
            return dict(zip(leaves, grads, strict=True)), losses.detach()

        def flat_value_grad(flat: torch.Tensor, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
            leaf = flat.detach().requires_grad_()
            with torch.enable_grad():
                losses = losses_of(self.stepper.split(leaf, self.params), batch)
                (grad,) = torch.autograd.grad(losses.sum(), [leaf])
            return grad, losses.detach()

        return value_grad if self.flat is None else flat_value_grad

    def _metrics(self, task: Any) -> Callable[[dict[str, torch.Tensor]], Any] | None:
        if task.metrics is None or task.val_batch is None:
            return None
        call = _Call(task.model, task.metrics)

        def one(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return functional_call(call, {f"model.{n}": v for n, v in p.items()}, (task.val_batch,))

        mapped = vmap(one, randomness="error")
        return lambda params: _evaluated(task, lambda: mapped(params))

    def _batch(self) -> Any:
        """The next batch: shared, or each live row's seed's batch stacked."""
        batches = self.seeds.next_batches()
        return batches[0] if len(batches) == 1 else _stack_batches(batches, list(self.which))

    def gradients(self) -> tuple[np.ndarray, np.ndarray]:
        if self.first_grads is not None:
            (grads, loss), self.first_grads = self.first_grads, None
        else:
            grads, loss = self.value_grad(self._stored(), self._batch())
        self.grads = grads
        return _np(loss), _np(_norm(grads if self.flat is not None else grads.values()))

    def _stored(self) -> Any:
        """The parameters as stored: one flat tensor, or stacked tensors by name."""
        return self.params if self.flat is None else self.flat

    def update(self, lr: np.ndarray) -> np.ndarray:
        """One update of every stacked tensor. The learning rates and the rule's per-step
        scalars (``Rule.per_step``) are made once per kind of tensor (ndim, dtype,
        device), not once per tensor: every tensor of a kind has the same hyperparameter
        arrays and the same scalar slots (all step together), and a sweep's tensors are
        small enough that these few tiny ops would otherwise cost as much as the update."""
        self.first_metrics = None
        lr_all = torch.as_tensor(lr, dtype=torch.float64)
        with torch.no_grad():
            if self.flat is not None:
                delta = self.stepper.delta(self.flat, self.grads, lr_all)
                self.flat = self.flat + delta
                self.params = self.stepper.split(self.flat, self.params)
                return _np(_norm(delta))
            deltas = self.stepper.deltas(self.params, self.grads, lr_all)
            for n in self.names:
                self.params[n] = self.params[n] + deltas[n]
            return _np(_norm(deltas[n] for n in self.names))

    def evaluate(self) -> Mapping[str, np.ndarray] | None:
        if self.first_metrics is not None:
            return self.first_metrics
        if self.metrics is None:
            return None
        # held-out metrics at the evaluation point (schedule-free's x, ASGD's average)
        params = self.stepper.evaluation_params(self.params)
        return {k: _np(v) for k, v in self.metrics(params).items()}

    def keep(self, rows: np.ndarray) -> None:
        index = torch.as_tensor(rows, device=self.params[self.names[0]].device)
        size = len(self.which)
        if self.flat is not None:
            self.flat, self.grads = take((self.flat, self.grads), index, size)
            self.params = self.stepper.split(self.flat, self.params)
        else:
            self.params, self.grads = take((self.params, self.grads), index, size)
        self.stepper.keep(index, size)
        self.which = self.which[rows]

    def points(self) -> None:
        return None


class SingleModel:
    """One setting: the task's model stepped in place by the rule (scalar hyperparameters)."""

    def __init__(self, problem: Any, group: Group) -> None:
        (seed,) = group.seeds
        self.task = problem.torch_task(seed)
        names = set(_trainable(problem, self.task.model))
        named = [(n, p) for n, p in self.task.model.named_parameters() if n in names]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.stepper = Stepper(units(group, self.task.model, self.names), self._tensors(), False)
        self.grads: tuple[torch.Tensor, ...] = ()

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in zip(self.names, self.params, strict=True)}

    def gradients(self) -> tuple[np.ndarray, np.ndarray]:
        loss = self.task.loss(self.task.model, next(self.task.batches))
        self.grads = torch.autograd.grad(loss, self.params)
        gnorm = float(sum((g.double() ** 2).sum() for g in self.grads) ** 0.5)
        return np.array([float(loss.detach())]), np.array([gnorm])

    def update(self, lr: np.ndarray) -> np.ndarray:
        usq = 0.0
        with torch.no_grad():
            grads = dict(zip(self.names, self.grads, strict=True))
            deltas = self.stepper.deltas(self._tensors(), grads, float(lr[0]))
            for n, p in zip(self.names, self.params, strict=True):
                p.add_(deltas[n])
                usq += float((deltas[n].double() ** 2).sum())
        return np.array([usq**0.5])

    def evaluate(self) -> Mapping[str, np.ndarray] | None:
        task = self.task
        if task.metrics is None or task.val_batch is None:
            return None
        if self.stepper.moves_evaluation:  # at the evaluation point, the weights untouched
            point = self.stepper.evaluation_params(self._tensors())
            call = _Call(task.model, task.metrics)
            weights = {f"model.{n}": v for n, v in point.items()}
            metrics = _evaluated(task, lambda: functional_call(call, weights, (task.val_batch,)))
        else:
            metrics = _evaluated(task, lambda: task.metrics(task.model, task.val_batch))
        return {k: np.array([float(v)]) for k, v in metrics.items()}

    def keep(self, rows: np.ndarray) -> None:
        pass  # one row: when it diverges the loop stops

    def points(self) -> None:
        return None


def run_models(problem: Any, group: Group, steps: int, options: LoopOptions) -> list[Trace]:
    """One group on a torch problem: stacked under vmap if ``options.batched`` and
    possible, else one setting at a time (each on its seed's RNG stream)."""
    if options.batched and group.size > 1:
        try:
            backend = StackedModels(problem, group)
        except VmapUnsupported as exc:
            warnings.warn(
                f"vmap does not apply to {problem.name!r} ({exc}); running one setting at a time",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            return run_loop(backend, group, steps, options)
    traces = []
    for one in group.split():
        # a model that draws random numbers in forward (dropout) draws them from torch's
        # global RNG: seed it from the run's seed; fork_rng leaves the caller's RNG as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng_seed(one.seeds[0]))
            traces += run_loop(SingleModel(problem, one), one, steps, options)
    return traces
