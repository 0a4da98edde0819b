"""Sharded parameters: the rules step ``DTensor`` parameters (FSDP2, tensor parallel) on
their local shards.

``torch.distributed.fsdp.fully_shard`` turns each parameter into a ``DTensor``: every
rank holds one shard (``p.to_local()``) and gets the matching shard of the averaged
gradient. No path sees a ``DTensor``. :class:`ShardedStep` stands between the optimizer
and its paths:

- **Elementwise rules** (``Rule.elementwise_with(hp)``): each element's update needs only
  that element, so the step runs on the local shards, on whatever path the optimizer
  picked (plain, multi-tensor, or any later one), with local state. Each parameter's
  shard is stepped exactly as the same values of an unsharded tensor would be.
- **Rules that reduce over a whole tensor** (Adafactor's row and column means, Muon's
  Newton-Schulz iteration, the norms of LAMB and MARS, the cautious mask of Adam and
  Lion): the parameter, its gradient and its state are gathered
  (``DTensor.full_tensor``), the plain rule steps the whole tensor on every rank (the same
  operations on the same values, so the ranks agree bitwise), and each rank keeps its
  shard of the new values. The gather costs one all-gather of the parameter, the gradient
  and each state slot per step, and the full tensor in memory while it is stepped; it
  is what makes every rule correct on any sharding.

The optimizer's state stays ``DTensor``: a slot shaped like the parameter is sharded
like it, any other tensor (Adafactor's row and column statistics) is replicated on the
parameter's mesh. So ``state_dict()`` holds sharded state, and
``torch.distributed.checkpoint`` (``get_optimizer_state_dict``/``set_optimizer_state_dict``)
saves and restores it; loaded state (sharded, replicated, or full unsharded tensors from
a single-process checkpoint) is resharded like the parameter on the next step.

The local state dicts and shard aliases are kept between steps (so the multi-tensor
path keeps its packed layout); the ``DTensor`` slots wrap views of those same local
tensors, with no copy. Parameters of the group that are not ``DTensor`` take the path
directly.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import torch

from .plain import GroupStep, PlainPath, States, param_label

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor


class Path(Protocol):
    """What the optimizer hands a group's step to (``plain.PlainPath``, ...)."""

    def step(self, states: States, work: GroupStep) -> None: ...


def is_dtensor(x: object) -> TypeGuard[DTensor]:
    """Whether ``x`` is a ``DTensor`` (without importing ``torch.distributed.tensor``,
    which costs a second: if it is not loaded, there is no ``DTensor``)."""
    module = sys.modules.get("torch.distributed.tensor._api")
    return module is not None and isinstance(x, module.DTensor)


def _contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride, out = 1, []
    for n in reversed(shape):
        out.append(stride)
        stride *= max(n, 1)
    return tuple(reversed(out))


@dataclasses.dataclass
class _Local:
    """A sharded parameter as the paths see it: an alias of its local shard (carrying the
    local gradient during a step) and its state with local tensors."""

    source: torch.Tensor  # p.to_local() when the alias was made (a new view at each call)
    param: torch.Tensor
    state: dict[str, Any]


class ShardedStep:
    """Runs a group's step on local shards for the ``DTensor`` parameters in it (see the
    module docstring); other parameters go to the path unchanged.

    One per optimizer, replaced with its paths whenever the optimizer's state is.
    """

    def __init__(self, plain: PlainPath) -> None:
        self.plain = plain
        self.local: dict[int, _Local] = {}  # id(param) -> its local view

    def step(self, path: Path, states: States, work: GroupStep, names: list[Any]) -> None:
        """One update of ``work.params``; ``names`` labels the group's parameters in errors."""
        module = sys.modules.get("torch.distributed.tensor._api")
        # no DTensor can exist, or the group is in flat storage (which refuses them): the
        # common cases cost no per-parameter check
        if module is None or work.unchanged is not None:
            path.step(states, work)
            return
        dtensor = module.DTensor
        sharded = [p for p in work.params if isinstance(p, dtensor)]
        if not sharded:
            path.step(states, work)
            return
        label = _labeller(work, names)
        plain = [p for p in work.params if not isinstance(p, dtensor)]
        if plain:
            path.step(states, dataclasses.replace(work, params=plain, unchanged=None))
            # the local shards get a layout key of their own (~index is negative), so a
            # path that keeps a layout per group does not rebuild it twice a step
            work = dataclasses.replace(work, index=~work.index)
        if self.plain.rule.elementwise_with(work.hyperparams):
            self._step_local(path, states, work, sharded, label)
        else:
            for p in sharded:
                self._step_gathered(states, work, p, label(p))

    # -- elementwise rules: local shards ---------------------------------------------

    def _step_local(
        self, path: Path, states: States, work: GroupStep, sharded: list[Any], label: Any
    ) -> None:
        views = [self._local_view(states, p, label(p)) for p in sharded]
        active = {id(p) for p in sharded}
        # shards without a gradient this step, so a path can let go of their old layout
        idle = [
            p
            for p in work.group_params
            if id(p) not in active
            and id(p) in self.local
            and p in states
            and _in_sync(states[p], self.local[id(p)].state)
        ]
        idle_views = [self.local[id(p)] for p in idle]
        local_states = {v.param: v.state for v in views + idle_views}
        local_work = dataclasses.replace(
            work,
            params=[v.param for v in views],
            group_params=[v.param for v in views + idle_views],
            unchanged=None,  # the local aliases: nothing checked of them
        )
        try:
            path.step(local_states, local_work)
        finally:
            for view in views:
                view.param.grad = None
        for p, view in zip(sharded + idle, views + idle_views, strict=True):
            _publish(states[p], view.state, p, label(p))

    def _local_view(self, states: States, p: Any, name: str) -> _Local:
        """``p``'s local view with its local gradient; its state made local (and sharded
        like ``p`` if it was loaded otherwise)."""
        source = p.to_local()
        view = self.local.get(id(p))
        if view is None or not _aliases(view.source, source):
            view = self.local[id(p)] = _Local(source, source.detach(), {})
        state = states[p]
        if not _in_sync(state, view.state):
            view.state = {}
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    value = state[key] = _like_param(value, p, key, name)
                    view.state[key] = value.to_local()
                else:
                    view.state[key] = value
        view.param.grad = _local_grad(p, name)
        return view

    # -- reducing rules: gathered --------------------------------------------------------

    def _step_gathered(self, states: States, work: GroupStep, p: Any, name: str) -> None:
        """The plain rule on the whole tensor (gathered on every rank); each rank keeps its
        shard of the new parameter and state."""
        self.local.pop(id(p), None)
        full = p.full_tensor().detach()
        full.grad = _gathered_grad(p, name)
        state = states[p]
        full_state = {k: _whole(v) for k, v in state.items()}
        self.plain.step_param(
            full_state, full, dataclasses.replace(work, params=[full], unchanged=None)
        )
        p.to_local().copy_(_shard(full, p).to_local())
        state.clear()
        for key, value in full_state.items():
            state[key] = _distribute(value, p) if isinstance(value, torch.Tensor) else value


# -- conversions ------------------------------------------------------------------------


def _labeller(work: GroupStep, names: list[Any]) -> Any:
    position = {id(p): i for i, p in enumerate(work.group_params)}

    def label(p: Any) -> str:
        return param_label(names, work.index, position[id(p)])

    return label


def _in_sync(state: MutableMapping[str, Any], local: dict[str, Any]) -> bool:
    """Whether ``local`` still holds the local tensors of ``state``'s DTensor slots."""
    if state.keys() != local.keys():
        return False
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            if not (is_dtensor(value) and _aliases(value.to_local(), local[key])):
                return False
        elif value is not local[key] and value != local[key]:
            return False
    return True


def _aliases(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors are the same view of the same memory (a DTensor wraps its local
    tensor in a new tensor object, so identity cannot tell)."""
    return (
        a.data_ptr() == b.data_ptr()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
        and a.device == b.device
    )


def _local_grad(p: Any, name: str) -> torch.Tensor:
    """The shard of ``p``'s gradient that matches ``p``'s local shard."""
    grad = p.grad
    if not is_dtensor(grad):
        raise RuntimeError(
            f"parameter {name} is a DTensor but its gradient is a {type(grad).__name__}; "
            "both must be DTensors on the same mesh"
        )
    if grad.device_mesh != p.device_mesh or tuple(grad.placements) != tuple(p.placements):
        grad = grad.redistribute(p.device_mesh, p.placements)
    return grad.to_local()


def _whole(value: Any) -> Any:
    """A state value as a whole tensor: gathered if a DTensor (a plain tensor, loaded from
    an unsharded checkpoint, already is one)."""
    return value.full_tensor() if is_dtensor(value) else value


def _gathered_grad(p: Any, name: str) -> torch.Tensor:
    _local_grad(p, name)  # checks the gradient's type
    return p.grad.full_tensor()


def _param_shaped(shape: tuple[int, ...], p: Any) -> tuple[int, ...] | None:
    """The global shape of a state tensor of ``shape`` sharded like ``p``: ``p``'s shape,
    or its real view's for a complex ``p``; None if it is not shaped like ``p``."""
    if shape == tuple(p.shape):
        return shape
    if p.is_complex() and shape == (*p.shape, 2):
        return shape
    return None


def _shard(full: torch.Tensor, p: Any) -> Any:
    """This rank's shard of a whole tensor shaped like ``p``, as a DTensor like ``p`` (no
    communication: every rank holds ``full``); a copy, so ``full`` can be freed."""
    from torch.distributed.tensor import distribute_tensor

    placed = distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None)
    local = placed.to_local()
    if local.untyped_storage().data_ptr() == full.untyped_storage().data_ptr() and full.numel():
        local = local.clone()
    return _wrap(local, p, tuple(full.shape))


def _distribute(full: torch.Tensor, p: Any) -> Any:
    """A whole state tensor, identical on every rank, as a DTensor: sharded like ``p``
    if shaped like it, else replicated on ``p``'s mesh."""
    if _param_shaped(tuple(full.shape), p) is not None:
        return _shard(full, p)
    from torch.distributed.tensor import DTensor, Replicate

    mesh = p.device_mesh
    return DTensor.from_local(full, mesh, [Replicate()] * mesh.ndim, run_check=False)


def _wrap(local: torch.Tensor, p: Any, shape: tuple[int, ...]) -> Any:
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(
        local,
        p.device_mesh,
        p.placements,
        run_check=False,
        shape=torch.Size(shape),
        stride=_contiguous_stride(shape),
    )


def _like_param(value: torch.Tensor, p: Any, key: str, name: str) -> Any:
    """A state tensor of ``p`` as a DTensor sharded like ``p``: as it is, redistributed,
    or (a whole tensor from an unsharded checkpoint) cut to this rank's shard."""
    shape = _param_shaped(tuple(value.shape), p)
    if shape is None:
        raise ValueError(
            f"state {key!r} of parameter {name} has shape {list(value.shape)}, not the "
            f"parameter's {list(p.shape)}: it cannot be stepped on the parameter's local shard"
        )
    if is_dtensor(value):
        if value.device_mesh == p.device_mesh and tuple(value.placements) == tuple(p.placements):
            return value
        return value.redistribute(p.device_mesh, p.placements)
    return _shard(value.to(p.to_local().device), p)


def _publish(state: MutableMapping[str, Any], local: dict[str, Any], p: Any, name: str) -> None:
    """Put a step's local state into the optimizer's state as DTensors sharded like ``p``
    (slots whose local tensor did not change keep their DTensor)."""
    local_shape = tuple(p.to_local().shape)
    for key, value in local.items():
        if not isinstance(value, torch.Tensor):
            state[key] = value
            continue
        old = state.get(key)
        if is_dtensor(old) and _aliases(old.to_local(), value):
            continue
        if tuple(value.shape) == local_shape:
            state[key] = _wrap(value, p, tuple(p.shape))
        elif p.is_complex() and tuple(value.shape) == (*local_shape, 2):
            state[key] = _wrap(value, p, (*p.shape, 2))
        else:
            raise ValueError(
                f"state {key!r} of parameter {name} has local shape {list(value.shape)}, "
                f"not the local shard's {list(local_shape)}: an elementwise rule must keep "
                "parameter-shaped state"
            )
