"""Batched runs on torch problems: ``vmap(grad(loss))`` over K stacked parameter sets.

The model's parameters are stacked ``(K, *shape)`` per name; ``torch.func.functional_call``
runs the task's own ``loss(model, batch)`` with them, ``vmap`` maps it over the config
axis and the rule steps each stacked tensor with ``(K, 1, ...)`` hyperparameters.
Settings with one seed share each batch; settings with several seeds each get their
seed's batch (stacked, mapped over too). Where vmap fails on the first step (a model that
updates buffers or draws random numbers in ``forward``), the group runs one setting at a
time with the rule applied to the model's parameters, which is also ``batched=False``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad_and_value, vmap

from ._plan import LOSS_FLOOR, Group, Recorder, eval_steps, take


class _Call(torch.nn.Module):
    """``forward(batch) = fn(model, batch)``, so functional_call can swap the model's weights."""

    def __init__(self, model: torch.nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self._fn = fn

    def forward(self, batch: Any) -> Any:
        return self._fn(self.model, batch)


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


def _hp_tensor(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    shape = (len(values),) + (1,) * (like.ndim - 1)
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(shape)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _flat_sq(tensors: Any) -> torch.Tensor:
    return sum((t.double() ** 2).flatten(1).sum(1) for t in tensors)


def run_group(
    problem: Any,
    group: Group,
    steps: int,
    *,
    batched: bool,
    eval_every: int | None,
    divergence_factor: float,
    progress: Callable[[int], None] | None,
) -> Recorder:
    """Run one group on a torch problem (vmapped if ``batched`` and possible)."""
    if batched and group.size > 1:
        try:
            return _run_vmapped(
                problem,
                group,
                steps,
                eval_every=eval_every,
                divergence_factor=divergence_factor,
                progress=progress,
            )
        except _VmapUnsupported as exc:
            warnings.warn(
                f"vmap does not apply to {problem.name!r} ({exc.__cause__}); "
                "running one setting at a time",
                RuntimeWarning,
                stacklevel=3,
            )
    rec = Recorder(steps, group.size)
    for j, one in enumerate(group.split()):
        # a model that draws random numbers in forward (dropout) draws them from torch's
        # global RNG: seed it from the run's seed (a stream apart from the model's init),
        # so a run's result does not depend on what the process ran before; fork_rng
        # leaves the caller's RNG as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_rng_seed(one.seeds[0]))
            _run_sequential(
                problem,
                one,
                steps,
                rec,
                j,
                eval_every=eval_every,
                divergence_factor=divergence_factor,
                progress=progress,
            )
    return rec


class _VmapUnsupported(Exception):
    pass


def _rng_seed(seed: int) -> int:
    """The seed of a run's torch RNG stream (dropout, shuffling data loaders): from the
    run's seed, apart from the stream that initialised the model."""
    return int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])


class _Stacked:
    """K parameter sets of one model, stacked per name, with vmapped loss, grads and metrics."""

    def __init__(self, problem: Any, group: Group) -> None:
        self.unique = sorted(set(group.seeds))
        # each seed builds its task and draws its batches (a shuffling DataLoader uses
        # torch's global RNG) from its own stream, the one it has when run alone: results
        # do not depend on what the process ran before, and batched equals one at a time
        self.tasks, self.rng = {}, {}
        for s in self.unique:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_rng_seed(s))
                self.tasks[s] = problem.torch_task(s)
                self.rng[s] = torch.get_rng_state()
        template = self.tasks[self.unique[0]]
        call = _Call(template.model, template.loss)
        self.names = [n for n, p in template.model.named_parameters() if p.requires_grad]
        if not self.names:
            raise ValueError(f"problem {problem.name!r}: the model has no trainable parameters")
        models = [dict(self.tasks[s].model.named_parameters()) for s in group.seeds]
        self.params = {n: torch.stack([m[n].detach() for m in models]) for n in self.names}
        self.shared = len(self.unique) == 1
        self.which = [self.unique.index(s) for s in group.seeds]

        def loss_fn(p: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
            return functional_call(call, {f"model.{n}": v for n, v in p.items()}, (batch,))

        self.value_grad = vmap(
            grad_and_value(loss_fn), in_dims=(0, None if self.shared else 0), randomness="error"
        )
        self.evaluate = _vmapped_metrics(template)

    def batch(self, rows: np.ndarray) -> Any:
        """The next batch: shared, or each row's seed's batch stacked (every seed advances)."""
        batches = []
        for s in self.unique:
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self.rng[s])
                batches.append(next(self.tasks[s].batches))
                self.rng[s] = torch.get_rng_state()
        return batches[0] if self.shared else _stack_batches(batches, [self.which[r] for r in rows])


def _run_vmapped(
    problem: Any,
    group: Group,
    steps: int,
    *,
    eval_every: int | None,
    divergence_factor: float,
    progress: Callable[[int], None] | None,
) -> Recorder:
    rule, flags = group.rule, dict(group.flags)
    if not rule.elementwise:
        flags["batch_ndim"] = 1
    st = _Stacked(problem, group)
    params, names = st.params, st.names
    rec, rows = Recorder(steps, group.size), np.arange(group.size)
    device = params[names[0]].device
    hp = {n: {k: _hp_tensor(v, params[n]) for k, v in group.floats.items()} for n in names}
    lr = torch.as_tensor(group.lr, dtype=torch.float64, device=device)
    state = {
        n: rule.init(params[n], **({} if rule.elementwise else {"batch_ndim": 1})) for n in names
    }
    marks = eval_steps(steps, eval_every)
    try:  # the first metrics and gradients also probe whether vmap can run this model
        metrics0 = st.evaluate(params) if st.evaluate else None
        grads, loss = st.value_grad(params, st.batch(rows))
    except Exception as exc:
        raise _VmapUnsupported() from exc
    if 0 in marks and eval_every and metrics0 is not None:
        rec.add_evals(0, rows, metrics0)
    thresh = divergence_factor * loss.detach().double().abs().clamp(min=LOSS_FLOOR)
    start = time.perf_counter()
    for t in range(steps):
        if t > 0:
            grads, loss = st.value_grad(params, st.batch(rows))
        loss = loss.detach()
        gnorm = _flat_sq(grads.values()).sqrt()
        ok_t = torch.isfinite(loss) & (loss <= thresh) & torch.isfinite(gnorm)
        ok = ok_t.cpu().numpy()
        if not ok.all():
            bad = ~ok_t
            rec.diverge(t, rows[~ok], _np(loss[bad]), _np(gnorm[bad]))
            if progress:
                progress(int((~ok).sum()) * (steps - t))
            keep = torch.as_tensor(np.flatnonzero(ok), device=device)
            params, grads, loss, gnorm, lr, thresh, hp, state = take(
                (params, grads, loss, gnorm, lr, thresh, hp, state), keep, len(rows)
            )
            rows = rows[ok]
            if len(rows) == 0:
                break
        usq = 0
        with torch.no_grad():
            for n in names:
                p = params[n]
                lr_t = lr[:, t].to(p.dtype).reshape((len(rows),) + (1,) * (p.ndim - 1))
                delta, state[n] = rule.update(grads[n], state[n], p, lr=lr_t, **hp[n], **flags)
                params[n] = p + delta
                usq = usq + (delta.double() ** 2).flatten(1).sum(1)
        rec.step(
            t,
            rows,
            _np(loss),
            _np(gnorm),
            _np(usq.sqrt()),
            (time.perf_counter() - start) / len(rows),
        )
        if t + 1 in marks and st.evaluate:
            rec.add_evals(t + 1, rows, st.evaluate(params))
        if progress:
            progress(len(rows))
        start = time.perf_counter()
    return rec


def _vmapped_metrics(task: Any) -> Callable[[dict[str, Any]], dict] | None:
    if task.metrics is None or task.val_batch is None:
        return None
    call = _Call(task.model, task.metrics)

    def one(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return functional_call(call, {f"model.{n}": v for n, v in p.items()}, (task.val_batch,))

    mapped = vmap(one, randomness="error")

    def evaluate(params: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = mapped(params)
        return {k: _np(v) for k, v in out.items()}

    return evaluate


def _run_sequential(
    problem: Any,
    group: Group,
    steps: int,
    rec: Recorder,
    row: int,
    *,
    eval_every: int | None,
    divergence_factor: float,
    progress: Callable[[int], None] | None,
) -> None:
    """One setting: the task's model stepped in place by the rule (scalar hyperparameters)."""
    rule = group.rule
    task = problem.torch_task(group.seeds[0])
    model = task.model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"problem {problem.name!r}: the model has no trainable parameters")
    hp = {k: float(v[0]) for k, v in group.floats.items()}
    state = [rule.init(p.detach()) for p in params]
    rows = np.array([row])
    marks = eval_steps(steps, eval_every)

    def evaluate() -> dict[str, Any] | None:
        # held-out metrics in eval mode (no dropout, batch norm's running statistics left
        # alone) and on a forked RNG: evaluating must not change the training that follows
        # (eval_every is not part of a run's identity)
        if task.metrics is None or task.val_batch is None:
            return None
        was_training = model.training
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                model.eval()
                return {k: float(v) for k, v in task.metrics(model, task.val_batch).items()}
        finally:
            model.train(was_training)

    if 0 in marks and eval_every and (m := evaluate()) is not None:
        rec.add_evals(0, rows, m)
    thresh = None
    start = time.perf_counter()
    for t in range(steps):
        loss_t = task.loss(model, next(task.batches))
        grads = torch.autograd.grad(loss_t, params)
        loss = float(loss_t.detach())
        gnorm = float(sum((g.double() ** 2).sum() for g in grads) ** 0.5)
        lr_t = float(group.lr[0, t])
        if t == 0:
            thresh = divergence_factor * max(abs(loss), LOSS_FLOOR)
        if not (np.isfinite(loss) and loss <= thresh and np.isfinite(gnorm)):
            rec.diverge(t, rows, loss, gnorm)
            if progress:
                progress(steps - t)
            return
        usq = 0.0
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                delta, state[i] = rule.update(g, state[i], p.detach(), lr=lr_t, **hp, **group.flags)
                p.add_(delta)
                usq += float((delta.double() ** 2).sum())
        now = time.perf_counter()
        rec.step(t, rows, loss, gnorm, usq**0.5, now - start)
        if t + 1 in marks and (m := evaluate()) is not None:
            rec.add_evals(t + 1, rows, m)
        if progress:
            progress(1)
        start = time.perf_counter()
