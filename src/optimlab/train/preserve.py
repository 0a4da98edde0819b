"""Put a model, its optimizer and the RNGs back exactly as they were.

``with preserved(model, optimizer): ...`` lets code train freely (the LR range test does)
and leaves no trace: parameters, buffers, gradients, train/eval modes, optimizer state and
group hyperparameters, and the torch, NumPy (global) and Python RNG states, bitwise.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def _snap(value: Any) -> Any:
    import copy

    import torch

    if isinstance(value, torch.Tensor):
        return ("tensor", value, value.detach().clone())
    if type(value) in (tuple, list) and any(isinstance(v, torch.Tensor) for v in value):
        # Adam's betas as tensors: keep the very tensor objects (deepcopy would replace them)
        return ("sequence", value, [_snap(v) for v in value])
    return ("value", copy.deepcopy(value))


def _unsnap(snap: Any) -> Any:
    import copy

    if snap[0] == "tensor":
        _, original, saved = snap
        original.detach().copy_(saved)
        return original
    if snap[0] == "sequence":
        _, original, items = snap
        values = [_unsnap(item) for item in items]
        if isinstance(original, list):
            original[:] = values  # the same list object, with its items put back
            return original
        return tuple(values)
    return copy.deepcopy(snap[1])


_MODULE_SLOTS = ("_parameters", "_buffers", "_modules")


def _tensor_snap(p: Any) -> Any:
    """A parameter (or buffer) with its value and gradient."""
    if p is None:
        return (None, None, None)
    return (p, _snap(p), None if getattr(p, "grad", None) is None else _snap(p.grad))


def _tensor_restore(snap: Any) -> Any:
    p, value, grad = snap
    if p is not None:
        _unsnap(value)
        p.grad = None if grad is None else _unsnap(grad)
    return p


def _snap_module(m: Any) -> tuple[Any, ...]:
    attrs = {k: v for k, v in vars(m).items() if k not in _MODULE_SLOTS}
    params = {k: _tensor_snap(p) for k, p in m._parameters.items()}
    buffers = {k: _tensor_snap(b) for k, b in m._buffers.items()}
    return m, attrs, params, buffers


def _restore_module(snap: tuple[Any, ...]) -> None:
    m, attrs, params, buffers = snap
    for k in [k for k in vars(m) if k not in _MODULE_SLOTS and k not in attrs]:
        delattr(m, k)
    vars(m).update(attrs)  # plain attributes (training flags, counters) by reference
    m._parameters.clear()
    m._parameters.update({k: _tensor_restore(v) for k, v in params.items()})
    m._buffers.clear()
    m._buffers.update({k: _tensor_restore(v) for k, v in buffers.items()})


def _snap_optimizer(opt: Any, covered: set[int]) -> tuple[Any, ...]:
    state = {p: (s, {k: _snap(v) for k, v in s.items()}) for p, s in opt.state.items()}
    groups = [{k: _snap(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]
    extra = [
        _tensor_snap(p) for g in opt.param_groups for p in g["params"] if id(p) not in covered
    ]  # parameters the optimizer holds outside the model
    attrs = {k: v for k, v in vars(opt).items() if k not in ("state", "param_groups")}
    return opt, state, groups, extra, attrs


def _restore_optimizer(snap: tuple[Any, ...]) -> None:
    opt, state, groups, extra, attrs = snap
    for p in [p for p in opt.state if p not in state]:
        del opt.state[p]  # state created lazily during the test
    for p, (s, saved) in state.items():
        s.clear()
        s.update({k: _unsnap(v) for k, v in saved.items()})
        opt.state[p] = s
    for g, saved in zip(opt.param_groups, groups, strict=True):
        for k in [k for k in g if k != "params" and k not in saved]:
            del g[k]
        g.update({k: _unsnap(v) for k, v in saved.items()})
    for item in extra:
        _tensor_restore(item)
    for k in [k for k in vars(opt) if k not in ("state", "param_groups") and k not in attrs]:
        delattr(opt, k)  # e.g. the flag an LRScheduler's step wrapper sets
    vars(opt).update(attrs)


@contextmanager
def preserved(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Put model, optimizer and RNG states back exactly as they were on exit.

    Tensors (parameters, buffers, gradients, optimizer state, tensor hyperparameters) get
    their values copied back into the same objects; other optimizer-state and group values
    are deep-copied; plain attributes of modules and of the optimizer are restored by
    reference (added ones removed).
    """
    import torch

    modules = [_snap_module(m) for m in model.modules()]
    covered = {id(p) for m in model.modules() for p in m._parameters.values()}
    opt = _snap_optimizer(optimizer, covered)
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    rng = (
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if cuda else None,
        np.random.get_state(),
        random.getstate(),
    )
    try:
        yield
    finally:
        with torch.no_grad():
            for snap in modules:
                _restore_module(snap)
            _restore_optimizer(opt)
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state_all(rng[1])
        np.random.set_state(rng[2])
        random.setstate(rng[3])
