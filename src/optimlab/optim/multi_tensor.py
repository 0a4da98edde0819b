"""The multi-tensor path: an elementwise rule run over flat state in cache-sized packs.

An optimizer step is memory-bound and, for many small tensors, dominated by per-tensor
overhead (design.md, "Performance model"). This path runs the rule, unchanged, over packs
of about ``PACK_NUMEL`` elements:

- The parameters of a *bucket* (same device, dtypes, step count and state layout) keep
  each state slot in one flat buffer; ``opt.state[p][slot]`` is a view into it, so
  ``state_dict()`` is unchanged and nothing is gathered or scattered for the state.
- Small parameters are grouped into packs: their gradients and values are copied with
  one ``torch._foreach_copy_`` into a small reusable pack buffer (it stays in cache), the
  rule runs once on the pack and its slice of the flat state, the new state is copied
  into the slice, and the new values go back with one ``torch._foreach_copy_``.
- A large parameter is cut into slices of its flat view; the rule runs on each slice, so
  its temporaries are small, stay in cache and are reused by the allocator instead of
  page-faulting on every step.

The layout (a *plan*) is built once and reused while the same parameters have gradients
and their state is the plan's; otherwise it is rebuilt, which repacks the state (a layer
frozen for a while has a smaller count and forms its own bucket). Anything unusual
(non-contiguous tensors, state not shaped like the parameter) takes the plain per-tensor
path. The rule is elementwise, so each element sees exactly the operations of the plain
path: the results are bitwise equal (tests/test_optim_fast.py).

The plans belong to a :class:`MultiTensorPath`, which the optimizer holds and replaces
with a fresh one when its state is replaced (``load_state_dict``); the path sees the
optimizer's ``state`` mapping and nothing else of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .plain import GroupStep, PlainPath, States, grad_of, real

# Elements per pack: large enough to amortise ~20 eager calls per pack, small enough that
# a pack's temporaries stay in cache and below the allocator's mmap threshold (chosen with
# benchmarks/step_speed.py on 2 cores: 2^18 beat 2^14, 2^16, 2^20 and whole tensors at 1e6-1e7).
PACK_NUMEL = 1 << 18


def _bucket_key(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any]) -> tuple | None:
    """The bucket of a parameter, or None if it must take the plain path."""
    if not (param.is_contiguous() and grad.is_contiguous()) or grad.shape != param.shape:
        return None
    key: list[Any] = [param.device, param.dtype, grad.dtype]
    numel = param.numel()
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            if (
                value.numel() != numel
                or not value.is_contiguous()
                or (value.device != param.device)
            ):
                return None
            key.append((name, value.dtype))
        elif value is None or isinstance(value, int | float):
            key.append((name, type(value), value))
        else:
            return None
    return tuple(key)


@dataclass
class _Pack:
    """A range ``[start, stop)`` of a bucket's flat index space and the items it covers.

    ``chunk`` is set for a slice of one large parameter: ``(item, a, b)`` of its flat view.
    """

    start: int
    stop: int
    items: list[int]
    chunk: tuple[int, int, int] | None = None
    g_views: list[torch.Tensor] = field(default_factory=list)  # pack buffer, param-shaped
    p_views: list[torch.Tensor] = field(default_factory=list)


class _Bucket:
    """Parameters stepped together: their state slots repacked into flat buffers."""

    def __init__(self, owners: list[torch.Tensor], states: list[dict[str, Any]]) -> None:
        self.owners, self.states = owners, states
        first = states[0]
        self.tensor_slots = [k for k, v in first.items() if isinstance(v, torch.Tensor)]
        self.scalar_slots = [k for k, v in first.items() if not isinstance(v, torch.Tensor)]
        real_params = [real(p) for p in owners]
        self.shapes = [r.shape for r in real_params]
        self.sizes = [r.numel() for r in real_params]
        self.offsets = [0]
        for n in self.sizes:
            self.offsets.append(self.offsets[-1] + n)
        self.total = self.offsets[-1]
        self.any_complex = any(p.is_complex() for p in owners)
        self.grad_dtype = grad_of(owners[0]).dtype
        device, dtype = real_params[0].device, real_params[0].dtype
        real_grad_dtype = real(grad_of(owners[0])).dtype
        # repack the state into flat buffers; the per-param dicts hold views of them
        self.flat: dict[str, torch.Tensor] = {}
        self.views: dict[str, list[torch.Tensor]] = {}  # what the state dicts must hold
        for name in self.tensor_slots:
            self._pack_slot(name, first[name].dtype, device)
        self.packs = self._plan_packs()
        biggest = max((p.stop - p.start for p in self.packs if p.chunk is None), default=0)
        g_buf = torch.empty(biggest, dtype=real_grad_dtype, device=device)
        p_buf = torch.empty(biggest, dtype=dtype, device=device)
        for pack in self.packs:
            if pack.chunk is None:
                for i in pack.items:
                    a = self.offsets[i] - pack.start
                    b = a + self.sizes[i]
                    pack.g_views.append(g_buf[a:b].view(self.shapes[i]))
                    pack.p_views.append(p_buf[a:b].view(self.shapes[i]))
        self.g_buf, self.p_buf = g_buf, p_buf

    def _pack_slot(self, name: str, dtype: torch.dtype, device: torch.device) -> None:
        flat = torch.empty(self.total, dtype=dtype, device=device)
        views = []
        for i, state in enumerate(self.states):
            view = flat[self.offsets[i] : self.offsets[i + 1]].view(self.shapes[i])
            old = state.get(name)
            if isinstance(old, torch.Tensor):
                view.copy_(old)
            state[name] = view
            views.append(view)
        self.flat[name], self.views[name] = flat, views

    def _plan_packs(self) -> list[_Pack]:
        packs: list[_Pack] = []
        current: list[int] = []

        def flush() -> None:
            start, stop = self.offsets[current[0]], self.offsets[current[-1] + 1]
            if len(current) == 1:  # one tensor: run on it in place, no gather
                packs.append(_Pack(start, stop, current, (current[0], 0, stop - start)))
            else:
                packs.append(_Pack(start, stop, current))

        for i, n in enumerate(self.sizes):
            if n >= PACK_NUMEL:
                if current:
                    flush()
                    current = []
                for a in range(0, n, PACK_NUMEL):
                    b = min(a + PACK_NUMEL, n)
                    start = self.offsets[i]
                    packs.append(_Pack(start + a, start + b, [i], (i, a, b)))
                continue
            current.append(i)
            if self.offsets[i + 1] - self.offsets[current[0]] >= PACK_NUMEL:
                flush()
                current = []
        if current:
            flush()
        return packs

    def valid(self, states: States, unchanged: int | None) -> bool:
        """Whether the plan still describes these parameters' gradients and state
        (``unchanged``: ``GroupStep.unchanged``, which this eager check does not need)."""
        first = self.states[0]
        scalars = [(k, first[k], type(first[k])) for k in self.scalar_slots]
        n_keys = len(self.tensor_slots) + len(scalars)
        views = [self.views[k] for k in self.tensor_slots]
        grad_dtype, state_of = self.grad_dtype, states.get
        for i, (p, state) in enumerate(zip(self.owners, self.states, strict=True)):
            g = p.grad
            if (
                g is None
                or g.dtype != grad_dtype
                or not g.is_contiguous()
                or state_of(p) is not state
            ):
                return False
            if len(state) != n_keys:
                return False
            for k, view in zip(self.tensor_slots, views, strict=True):
                if state.get(k) is not view[i]:
                    return False
            for k, v, t in scalars:
                if k not in state or state[k] != v or type(state[k]) is not t:
                    return False
        return True

    def step(self, plain: PlainPath, work: GroupStep) -> None:
        """The rule once per pack, on the packed gradients, values and flat state."""
        rule, state_cls = plain.rule, plain.state_type
        hp, maximize, state_dtype = work.hyperparams, work.maximize, work.state_dtype
        base = {k: self.states[0][k] for k in self.scalar_slots}
        flat_before = dict(self.flat)  # slots created during this step start as None
        grads = [real(grad_of(p)) for p in self.owners]
        params = [real(p) for p in self.owners] if self.any_complex else self.owners
        new_scalars: dict[str, Any] = {}
        for pack in self.packs:
            n = pack.stop - pack.start
            if pack.chunk is not None:
                i, a, b = pack.chunk
                g = grads[i].view(-1)[a:b]
                p = params[i].view(-1)[a:b]
            else:
                torch._foreach_copy_(pack.g_views, [grads[i] for i in pack.items])
                torch._foreach_copy_(pack.p_views, [params[i] for i in pack.items])
                g, p = self.g_buf[:n], self.p_buf[:n]
            if maximize:
                g = -g if pack.chunk is not None else g.neg_()  # the pack buffer is ours
            slots = {k: flat[pack.start : pack.stop] for k, flat in flat_before.items()}
            delta, new = rule.update(g, state_cls(**base, **slots), p, **hp)
            for key, value in new._asdict().items():
                if isinstance(value, torch.Tensor):
                    if value is not slots.get(key):  # an unchanged slot needs no copy
                        dtype = value.dtype if state_dtype is None else state_dtype
                        self._slot(key, dtype)[pack.start : pack.stop].copy_(value)
                else:
                    new_scalars[key] = value
            p.add_(delta)
            if pack.chunk is None:
                torch._foreach_copy_([params[i] for i in pack.items], pack.p_views)
        for state in self.states:
            state.update(new_scalars)

    def _slot(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        """The flat buffer of a slot; one the rule creates (SGD's momentum) is allocated."""
        flat = self.flat.get(name)
        if flat is None:
            if name in self.scalar_slots:
                self.scalar_slots.remove(name)
            self.tensor_slots.append(name)
            self._pack_slot(name, dtype, self.g_buf.device)
            flat = self.flat[name]
        return flat


@dataclass
class _Plan:
    ids: tuple[int, ...]
    buckets: list[_Bucket]
    plain: list[torch.Tensor]  # parameters that take the per-tensor path


class MultiTensorPath:
    """The multi-tensor path of one optimizer: a plan per param group, rebuilt on change.

    ``step`` has the plain path's contract (``plain.step``) and its results, bitwise.
    """

    bucket_type: type[_Bucket] = _Bucket  # the compiled path steps its own kind of bucket

    def __init__(self, plain: PlainPath) -> None:
        self.plain = plain
        self.plans: dict[int, _Plan] = {}

    def step(self, states: States, work: GroupStep) -> None:
        """One update of every parameter in ``work.params``."""
        plan = self.plans.get(work.index)
        if (
            plan is None
            or plan.ids != work.ids
            or not all(b.valid(states, work.unchanged) for b in plan.buckets)
        ):
            plan = self.plans[work.index] = self._build(states, work)
        for p in plan.plain:
            self.plain.step_param(states[p], p, work)
        for bucket in plan.buckets:
            bucket.step(self.plain, work)

    def _build(self, states: States, work: GroupStep) -> _Plan:
        groups: dict[tuple, tuple[list, list]] = {}
        plain = []
        for p in work.params:
            state = states[p]
            if not state:
                state.update(self.plain.init_state(p, work.state_dtype))
            key = _bucket_key(real(p), real(grad_of(p)), state)
            if key is None:
                plain.append(p)
            else:
                owners, bucket_states = groups.setdefault(key, ([], []))
                owners.append(p)
                bucket_states.append(state)
        active = {id(p) for p in work.params}
        for p in work.group_params:  # inactive params let go of the old flat buffers
            if id(p) not in active and p in states:
                state = states[p]
                for k, v in state.items():
                    if isinstance(v, torch.Tensor) and v._base is not None:
                        state[k] = v.clone()
        buckets = [self.bucket_type(owners, kept) for owners, kept in groups.values()]
        return _Plan(work.ids, buckets, plain)
