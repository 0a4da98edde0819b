"""Optimizer state memory: in theory (from the rules) and measured (from a live optimizer).

``memory("adam", model)`` gives the state bytes per parameter and in total from the rule's
``state_numel(shape, hp)`` times the parameter dtype's size; ``memory(optimizer, model)``
also sums the bytes of every tensor in the optimizer's live state (which includes torch's
per-parameter ``step`` tensors, excluded from theory). ``table(model)`` covers every
registered optimizer: SGD 0x, momentum 1x, Adam 2x, Adafactor sub-linear for matrices.

>>> r = memory("adam", 1000)          # 1000 fp32 parameters in one vector
>>> r.state_bytes, r.ratio
(8000, 2.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import checks
from ..rules.registry import REGISTRY, OptimizerSpec, get_spec, list_optimizers


@dataclass(frozen=True)
class ParamMemory:
    """One parameter: its size, and its optimizer state in elements and bytes."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    numel: int
    param_bytes: int
    state_numel: int | None  # from the rule; None if the optimizer has no registered rule
    state_bytes: int | None
    measured_bytes: int | None  # from a live optimizer's state; None when not measured


@dataclass(frozen=True)
class MemoryReport:
    """State memory of one optimizer over a set of parameters.

    ``ratio`` is state bytes / parameter bytes in theory (Adam: 2.0); ``measured_ratio``
    the same from a live optimizer.
    """

    optimizer: str
    params: tuple[ParamMemory, ...]

    @property
    def n_params(self) -> int:
        return sum(p.numel for p in self.params)

    @property
    def param_bytes(self) -> int:
        return sum(p.param_bytes for p in self.params)

    @property
    def state_bytes(self) -> int | None:
        return _total([p.state_bytes for p in self.params])

    @property
    def measured_bytes(self) -> int | None:
        return _total([p.measured_bytes for p in self.params])

    @property
    def ratio(self) -> float | None:
        s = self.state_bytes
        return None if s is None or not self.param_bytes else s / self.param_bytes

    @property
    def measured_ratio(self) -> float | None:
        m = self.measured_bytes
        return None if m is None or not self.param_bytes else m / self.param_bytes

    @property
    def bytes_per_param(self) -> float | None:
        s = self.state_bytes
        return None if s is None or not self.n_params else s / self.n_params


def _total(values: list[int | None]) -> int | None:
    """The sum, or None if any value is unknown."""
    known = [v for v in values if v is not None]
    return sum(known) if len(known) == len(values) else None


def memory(
    optimizer_or_name: Any,
    model_or_n_params: Any = None,
    *,
    dtype: Any = "float32",
    **hp: Any,
) -> MemoryReport:
    """State memory of an optimizer, by registered name or as a live torch optimizer.

    ``model_or_n_params``: an ``nn.Module``, an int (one vector of that many elements), a
    mapping ``name -> shape``, or an iterable of tensors; for a live optimizer it may be
    None (its own parameters, unnamed). ``dtype`` is the element type when only shapes are
    given; ``hp`` are the rule's hyperparameters for a name (``momentum=0.9``), read from
    the param groups for a live optimizer.
    """
    if isinstance(optimizer_or_name, str):
        spec = get_spec(optimizer_or_name)
        full = spec.rule.validate(**hp)
        if model_or_n_params is None:
            raise ValueError("model_or_n_params is required with an optimizer name, got None")
        shapes = _shapes(model_or_n_params, dtype)
        params = tuple(_param(n, s, d, spec, full, None) for n, s, d in shapes)
        return MemoryReport(spec.name, params)
    return _live(optimizer_or_name, model_or_n_params, hp)


def table(
    model_or_n_params: Any,
    names: Iterable[str] | None = None,
    *,
    dtype: Any = "float32",
    measure: bool = False,
) -> list[MemoryReport]:
    """State memory of every registered optimizer (default hyperparameters) for one model.

    ``measure=True`` also builds each optimizer (``optimlab.create_optimizer``) over zero
    tensors of the same shapes, takes one step with zero gradients and measures its state.
    """
    reports = []
    for name in list_optimizers() if names is None else names:
        theory = memory(name, model_or_n_params, dtype=dtype)
        if measure:
            measured = _measure(name, theory)
            theory = MemoryReport(
                theory.optimizer,
                tuple(
                    dataclasses.replace(t, measured_bytes=m.measured_bytes)
                    for t, m in zip(theory.params, measured.params, strict=True)
                ),
            )
        reports.append(theory)
    return reports


def _measure(name: str, theory: MemoryReport) -> MemoryReport:
    import torch

    from ..optim import create_optimizer

    params = [
        torch.nn.Parameter(torch.zeros(p.shape, dtype=getattr(torch, p.dtype)))
        for p in theory.params
    ]
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer = create_optimizer(name, params)
    optimizer.step()
    return _live(optimizer, None, {})


def format_table(reports: Iterable[MemoryReport]) -> str:
    """A plain-text table: optimizer, state bytes, bytes per parameter, ratio to params."""
    rows = [("optimizer", "state bytes", "bytes/param", "x params", "measured")]
    for r in reports:
        s, m = r.state_bytes, r.measured_bytes
        rows.append(
            (
                r.optimizer,
                "?" if s is None else f"{s:,}",
                "?" if r.bytes_per_param is None else f"{r.bytes_per_param:.3f}",
                "?" if r.ratio is None else f"{r.ratio:.3f}",
                "-" if m is None else f"{m:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _param(
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    spec: OptimizerSpec | None,
    hp: Mapping[str, Any] | None,
    measured: int | None,
    state_dtype: Any = None,
) -> ParamMemory:
    """``state_dtype``: the state's element type when it differs from the parameter's
    (an optimlab optimizer's ``state_dtype`` option)."""
    numel = math.prod(shape)
    size = _itemsize(dtype)
    state_size = size if state_dtype is None else _itemsize(state_dtype)
    state = None if spec is None or hp is None else int(spec.rule.state_numel(shape, hp))
    return ParamMemory(
        name,
        shape,
        dtype,
        numel,
        numel * size,
        state,
        None if state is None else state * state_size,
        measured,
    )


def _itemsize(dtype: Any) -> int:
    text = str(dtype).removeprefix("torch.")
    if text == "bfloat16":
        return 2
    try:
        return int(np.dtype(text).itemsize)
    except TypeError:
        raise ValueError(f"dtype must be a floating dtype name, got {dtype!r}") from None


def _shapes(source: Any, dtype: Any) -> list[tuple[str, tuple[int, ...], str]]:
    dtype_name = str(dtype).removeprefix("torch.")
    _itemsize(dtype_name)
    if isinstance(source, bool):
        raise ValueError(f"model_or_n_params must be a model, an int or shapes, got {source!r}")
    if isinstance(source, int):
        checks.integer("model_or_n_params", source, 0)
        return [("params", (source,), dtype_name)]
    if isinstance(source, Mapping):
        return [(str(k), tuple(int(d) for d in v), dtype_name) for k, v in source.items()]
    named = (
        source.named_parameters()
        if hasattr(source, "named_parameters")
        else ((f"param{i}", t) for i, t in enumerate(source))
    )
    return [(n, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for n, t in named]


def _live(optimizer: Any, model: Any, extra_hp: Mapping[str, Any]) -> MemoryReport:
    if not hasattr(optimizer, "param_groups") or not hasattr(optimizer, "state"):
        raise ValueError(
            f"optimizer_or_name must be a registered name or a torch optimizer, got {optimizer!r}"
        )
    if extra_hp:
        raise ValueError(f"hyperparameters come from a live optimizer's groups, got {extra_hp}")
    names = {}
    if model is not None and hasattr(model, "named_parameters"):
        names = {id(p): n for n, p in model.named_parameters()}
    spec = _spec_of(optimizer)
    params = []
    for gi, group in enumerate(optimizer.param_groups):
        # a routed group (optimlab.optim.routing) names the rule that steps it
        rule_spec = get_spec(group["optimizer"]) if spec and "optimizer" in group else spec
        hp = None if rule_spec is None else _group_hp(rule_spec, group)
        state_dtype = group.get("state_dtype")  # optimlab's option: state in this dtype
        for i, p in enumerate(group["params"]):
            name = names.get(id(p), f"group{gi}.{i}")
            measured = _nbytes(optimizer.state.get(p, {}))
            dtype = str(p.dtype).removeprefix("torch.")
            params.append(_param(name, tuple(p.shape), dtype, rule_spec, hp, measured, state_dtype))
    label = spec.name if spec is not None else type(optimizer).__name__
    return MemoryReport(label, tuple(params))


def _spec_of(optimizer: Any) -> OptimizerSpec | None:
    """The registry row of a live optimizer: ours by class, torch's by reference name."""
    spec = getattr(optimizer, "spec", None)  # optimlab.optim classes expose their row
    if isinstance(spec, OptimizerSpec):
        return spec
    reference = f"torch.optim.{type(optimizer).__name__}"
    if type(optimizer).__module__.startswith("torch.optim"):
        for spec in REGISTRY:
            if spec.torch_reference == reference:
                return spec  # the state size depends on the group's values, not the row
    return None


def _group_hp(spec: OptimizerSpec, group: Mapping[str, Any]) -> dict[str, Any]:
    """A group's values under the rule's names, through the row's ``torch_args`` (they
    describe optimlab's class and torch's reference class alike: ``betas`` ->
    ``beta1, beta2``); hyperparameters the group lacks take the row's defaults."""
    return {**spec.rule.defaults, **spec.from_torch(group)}


def _nbytes(state: Any) -> int:
    import torch

    if isinstance(state, torch.Tensor):
        return state.nelement() * state.element_size()
    if isinstance(state, Mapping):
        return sum(_nbytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(_nbytes(v) for v in state)
    return 0
