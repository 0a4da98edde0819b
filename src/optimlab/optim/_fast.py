"""The multi-tensor path: an elementwise rule run over cache-sized packs of many tensors.

An optimizer step is memory-bound, and for many small tensors the per-tensor overhead
dominates (design.md, "Performance model"). This path runs the rule, unchanged, over
*packs* of about ``PACK_NUMEL`` elements:

- small parameters are concatenated (gradients, parameters and each state slot, flat) into
  one pack, the rule runs once on the pack, and the results are scattered back with
  ``torch._foreach_copy_`` (state) and ``torch._foreach_add_`` (parameters);
- a large parameter is cut into slices of its flat view, and the rule runs on each slice
  in place of the whole tensor (its temporaries stay in cache and are reused by the
  allocator, so there are no per-step page faults).

Parameters are bucketed by (device, dtype, gradient dtype, step count, state layout), so a
layer frozen for a while (a different count) or state loaded in another dtype simply forms
its own bucket. Anything unusual (non-contiguous tensors, state slots not shaped like the
parameter) takes the plain per-tensor path. Because the rule is elementwise, each element
sees exactly the same operations as on the plain path: results are bitwise equal (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .base import RuleOptimizer

# Elements per pack: large enough to amortise ~15 eager ops per pack, small enough that
# a pack's temporaries stay in cache (measured with benchmarks/step_speed.py).
PACK_NUMEL = 1 << 16
CHUNK_LARGE = True

_Item = tuple[torch.Tensor, torch.Tensor, dict[str, Any]]  # (real param view, grad, state)


def _key(param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any]) -> tuple | None:
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
                or value.device != param.device
            ):
                return None
            key.append((name, value.dtype))
        elif value is None or isinstance(value, int | float):
            key.append((name, type(value), value))
        else:
            return None
    return tuple(key)


def step_params(
    opt: RuleOptimizer, params: list[torch.Tensor], hp: dict[str, Any], maximize: bool
) -> None:
    """One step of ``opt``'s rule on ``params`` (all with gradients), bucketed and packed."""
    buckets: dict[tuple, list[_Item]] = {}
    for p in params:
        state = opt.state[p]
        if not state:
            state.update(opt._init_state(p))
        grad = p.grad
        param, g = (torch.view_as_real(p), torch.view_as_real(grad)) if p.is_complex() else (
            p, grad
        )
        key = _key(param, g, state)
        if key is None:
            opt._step_param(p, hp, maximize)
        else:
            buckets.setdefault(key, []).append((param, g, state))
    for items in buckets.values():
        _Bucket(opt, items, hp, maximize).run()


class _Bucket:
    """Parameters that share device, dtypes, step count and state layout."""

    def __init__(
        self, opt: RuleOptimizer, items: list[_Item], hp: dict[str, Any], maximize: bool
    ) -> None:
        self.rule = opt._adapter.spec.rule
        self.state_cls = opt._state_type()
        self.items, self.hp, self.maximize = items, hp, maximize
        first = items[0][2]
        # The state every pack starts from: tensor slots are read per pack; slots that
        # are None stay None for every pack of this step even once the rule creates them.
        self.base = {k: v for k, v in first.items() if not isinstance(v, torch.Tensor)}
        self.tensor_slots = [k for k, v in first.items() if isinstance(v, torch.Tensor)]

    def run(self) -> None:
        pack: list[tuple[_Item, int, int]] = []
        size = 0
        for item in self.items:
            n = item[0].numel()
            if n >= PACK_NUMEL:
                if CHUNK_LARGE:
                    for start in range(0, n, PACK_NUMEL):
                        self._apply([(item, start, min(start + PACK_NUMEL, n))])
                else:
                    self._apply([(item, 0, n)])
                continue
            pack.append((item, 0, n))
            size += n
            if size >= PACK_NUMEL:
                self._apply(pack)
                pack, size = [], 0
        if pack:
            self._apply(pack)

    def _apply(self, segments: list[tuple[_Item, int, int]]) -> None:
        whole = len(segments) > 1 or segments[0][1:] == (0, segments[0][0][0].numel())
        flat = [
            (p.view(-1), g.view(-1), s) if whole else (
                p.view(-1)[a:b], g.view(-1)[a:b], s
            )
            for (p, g, s), a, b in segments
        ]
        slot_views = {
            k: [s[k].view(-1) if whole else s[k].view(-1)[a:b] for (_, _, s), a, b in segments]
            for k in self.tensor_slots
        }
        one = len(segments) == 1
        sizes = [b - a for _, a, b in segments]
        g = flat[0][1] if one else torch.cat([f[1] for f in flat])
        p = flat[0][0] if one else torch.cat([f[0] for f in flat])
        if self.maximize:
            g = -g
        slots = {k: v[0] if one else torch.cat(v) for k, v in slot_views.items()}
        state = self.state_cls(**{**self.base, **slots})
        delta, new = self.rule.update(g, state, p, **self.hp)
        for key, value in new._asdict().items():
            if isinstance(value, torch.Tensor):
                views = slot_views.get(key) or self._create(key, value.dtype, segments)
                _scatter(views, value, sizes, copy=True)
            else:
                for (_, _, s), _, _ in segments:
                    s[key] = value
        _scatter([f[0] for f in flat], delta, sizes, copy=False)

    def _create(
        self, key: str, dtype: torch.dtype, segments: list[tuple[_Item, int, int]]
    ) -> list[torch.Tensor]:
        """A slot the rule created this step (SGD's momentum buffer): allocate it per param."""
        views = []
        for (param, _, s), a, b in segments:
            if not isinstance(s.get(key), torch.Tensor):
                s[key] = torch.empty(param.shape, dtype=dtype, device=param.device)
            views.append(s[key].view(-1)[a:b])
        return views


def _scatter(views: list[torch.Tensor], value: torch.Tensor, sizes: list[int], copy: bool) -> None:
    if len(views) == 1:
        (views[0].copy_ if copy else views[0].add_)(value)
    elif copy:
        torch._foreach_copy_(views, value.split(sizes))
    else:
        torch._foreach_add_(views, value.split(sizes))
