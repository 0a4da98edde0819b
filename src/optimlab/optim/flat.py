"""Flat storage (``flat=True``): parameters and gradients as views of one buffer each.

The parameters of the groups with ``flat=True`` are moved, in group order, into one flat
buffer per (device, dtype): each parameter keeps its identity (modules, hooks and the
optimizer still hold the same ``Parameter``) and its values, but its data becomes a view
of the buffer (``p.data = view``). Each gradient gets the same place in a matching
gradient buffer. The compiled path then steps a whole bucket in one call on adjacent
memory: a step over 2000 tensors costs what a step over one tensor does.

Gradients land in place when they exist already: backward accumulates into ``p.grad``
(our view) and ``zero_grad(set_to_none=False)`` zeroes the whole buffer in one pass.
``zero_grad()`` (torch's default ``set_to_none=True``) sets gradients to None, as torch
does; backward then allocates fresh ones and the next ``step()`` copies them into the
buffer (one gather) and points ``p.grad`` at the views again. Parameters without a
gradient keep ``grad = None`` and are skipped, as always.

It survives what moves parameters: at every step the parameters are checked to still
live in the buffer, and moved back if anything (``model.to``, ``p.data = ...``) put them
elsewhere. Optimizer state is not affected (it lives in the paths' buffers), so
``state_dict()`` and ``load_state_dict()`` are unchanged; ``torch.save(model)`` saves
the buffer once, shared by the views. DDP works (it copies reduced gradients into
``p.grad``; with ``gradient_as_bucket_view=True`` its views replace ours and each step
gathers). Parameters that are not plain tensors (FSDP2's DTensor shards) and parameters
that share memory (views of one tensor) are refused with a ``ValueError``: flattening
would give each its own copy.

When that check finds every parameter in place with its own view as gradient (the usual
step), the step of a group whose parameters are all in the buffers carries the storage's
``token`` (``plain.GroupStep.unchanged``). The token changes whenever the buffers are
rebuilt or a gradient is adopted, so under the same token the paths need not check the
gradients and places again (over 2000 tensors, each such check costs ~0.5 ms).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from typing import Any

import torch

from .plain import param_label

_TOKENS = itertools.count()  # process-wide: no two storages, or states of one, share a token


def _extent(p: torch.Tensor) -> tuple[int, int, int]:
    """(storage, first, last + 1): the storage elements ``p`` can reach."""
    reach = 1 + sum((n - 1) * s for n, s in zip(p.shape, p.stride(), strict=True))
    start = int(p.storage_offset())
    return p.untyped_storage().data_ptr(), start, start + int(reach)


def _check_overlaps(labelled: list[tuple[torch.Tensor, str]]) -> None:
    """Refuse parameters whose memory overlaps (views of one tensor: tied on purpose).
    Disjoint parts of one storage (a model already flat, or loaded from one) are fine."""
    spans = sorted((_extent(p), label) for p, label in labelled if p.numel())
    for (a, label_a), (b, label_b) in zip(spans, spans[1:], strict=False):
        if a[0] == b[0] and b[1] < a[2]:
            raise ValueError(
                f"flat=True: parameters {label_a} and {label_b} share memory (views of "
                "one tensor); flattening would give each its own copy"
            )


def _check(groups: list[dict[str, Any]]) -> list[torch.Tensor]:
    """The parameters of the flat groups, in order; refuses those flattening would break."""
    params: list[torch.Tensor] = []
    seen: dict[int, str] = {}
    for gi, group in enumerate(groups):
        if not group.get("flat"):
            continue
        for i, p in enumerate(group["params"]):
            label = param_label(group.get("param_names"), gi, i)
            if type(p.data) is not torch.Tensor:
                raise ValueError(
                    f"flat=True needs parameters that are plain tensors; parameter {label} "
                    f"is a {type(p.data).__name__} (sharded parameters, as FSDP2's, keep "
                    "their own storage: use flat=False)"
                )
            if id(p) not in seen:
                seen[id(p)] = label
                params.append(p)
    _check_overlaps([(p, seen[id(p)]) for p in params])
    return params


class FlatStorage:
    """The flat buffers of one optimizer's ``flat=True`` groups, and their upkeep."""

    def __init__(self, groups: list[dict[str, Any]]) -> None:
        self.groups = groups
        self.clean = False  # set by prepare(): every parameter in place, its grad the view
        self.build()

    @classmethod
    def of(cls, groups: list[dict[str, Any]]) -> FlatStorage | None:
        """The flat storage of these groups, or None when no group asks for it."""
        return cls(groups) if any(g.get("flat") for g in groups) else None

    def build(self) -> None:
        """Move the flat groups' parameters into fresh buffers (keeping their values)."""
        self.params = _check(self.groups)
        by_key: dict[tuple, list[torch.Tensor]] = {}
        for p in self.params:
            by_key.setdefault((p.device, p.dtype), []).append(p)
        self.buffers: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
        self.grad_views: dict[int, torch.Tensor] = {}
        self.grad_buffers: list[torch.Tensor] = []
        with torch.no_grad():
            for (device, dtype), params in by_key.items():
                total = sum(p.numel() for p in params)
                buf = torch.empty(total, dtype=dtype, device=device)
                grads = torch.zeros(total, dtype=dtype, device=device)
                start = 0
                for p in params:
                    stop = start + p.numel()
                    view = buf[start:stop].view(p.shape)
                    view.copy_(p.detach())
                    p.data = view
                    self.grad_views[id(p)] = grads[start:stop].view(p.shape)
                    start = stop
                self.buffers.append((buf, params))
                self.grad_buffers.append(grads)
        self.views = [self.grad_views[id(p)] for p in self.params]
        self.ptrs = [p.data_ptr() for p in self.params]
        # the parameters' ids per flat group: a group still holding exactly these is covered
        self.group_ids = {
            gi: tuple(map(id, g["params"])) for gi, g in enumerate(self.groups) if g.get("flat")
        }
        self.token = next(_TOKENS)

    def covers(self, index: int, ids: tuple[int, ...]) -> bool:
        """Whether group ``index``, holding parameters of these ids, is wholly in the
        buffers, and ``prepare`` found each of them in place with its view as gradient."""
        return self.clean and self.group_ids.get(index) == ids

    def prepare(self) -> None:
        """Before a step: parameters back in their buffer if moved, gradients adopted.

        A gradient that is not its view (new since ``zero_grad()``, or set by hand) is
        copied into the view, which becomes ``p.grad``; None stays None.
        """
        params = self.params
        if list(map(torch.Tensor.data_ptr, params)) != self.ptrs:
            self.build()
        grads = [p.grad for p in params]
        self.clean = all(map(operator.is_, grads, self.views))
        if self.clean:
            return
        self.token = next(_TOKENS)  # gradients replaced since the last step, or missing
        targets, sources, owners = [], [], []
        settled = True  # whether every gradient is its view once these are adopted
        for p, g, view in zip(params, grads, self.views, strict=True):
            if g is view:
                continue
            # None stays None; a gradient that does not fit its view is left as is, for the
            # step to check (a sparse gradient is refused)
            if (
                g is None
                or g.shape != view.shape
                or g.dtype != view.dtype
                or g.layout != torch.strided
            ):
                settled = False
                continue
            targets.append(view)
            sources.append(g.detach() if g.device == view.device else g.detach().to(view.device))
            owners.append(p)
        if targets:
            with torch.no_grad():
                torch._foreach_copy_(targets, sources)
            for p, view in zip(owners, targets, strict=True):
                p.grad = view
        self.clean = settled

    def zero_grad(self, others: Iterable[torch.Tensor]) -> None:
        """``zero_grad(set_to_none=False)``: each gradient buffer zeroed in one pass; the
        gradients of ``others`` (parameters outside the buffers, or whose gradient is not
        its view) zeroed one by one, as torch does."""
        for grads in self.grad_buffers:
            grads.zero_()
        views = {id(v) for v in self.views}
        with torch.no_grad():
            for p in others:
                g = p.grad
                if g is None or id(g) in views:
                    continue
                if g.grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                g.zero_()
