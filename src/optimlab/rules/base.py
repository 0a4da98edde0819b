"""What a rule is: a pure ``(init, update)`` pair plus the specs of its hyperparameters.

A rule's ``update(grad, state, param, **hyperparams) -> (delta, new_state)`` returns the
additive update (it already contains ``-lr``) and never assigns into its inputs.
Hyperparameters are keyword-only and may be arrays that broadcast against the parameter
(shape ``(K, 1, ...)`` runs K settings at once).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..core.arrays import is_torch
from ..core.checks import choice

Array = Any  # a NumPy array or a torch tensor
State = NamedTuple

INF = math.inf


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its default and valid range, from which validation,
    CLI flags and docs are generated.

    ``kind`` is ``"float"`` (a real number or an array of them), ``"int"``, ``"bool"`` or
    ``"choice"`` (one of the strings in ``choices``, such as Muon's ``adjust_lr_fn``).
    Bounds are closed unless ``low_open``/``high_open``. ``optional`` hyperparameters also
    accept ``None``, which the rule resolves itself (Adafactor's ``eps1=None`` is the
    machine epsilon of the parameter's dtype).
    """

    name: str
    default: float | int | bool | None
    low: float = -INF
    high: float = INF
    low_open: bool = False
    high_open: bool = False
    kind: str = "float"
    doc: str = ""
    optional: bool = False
    choices: tuple[str, ...] = ()

    def range_text(self) -> str:
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            options = ((None,) if self.optional else ()) + self.choices
            return f"one of {', '.join(map(repr, options))}"
        if self.optional:
            return "None or " + dataclasses.replace(self, optional=False).range_text()
        lo_b, hi_b = "(" if self.low_open else "[", ")" if self.high_open else "]"
        if self.low == -INF and self.high == INF:
            return "a finite number"
        if self.high == INF:
            return f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        if self.low == -INF:
            return f"< {self.high:g}" if self.high_open else f"<= {self.high:g}"
        return f"in {lo_b}{self.low:g}, {self.high:g}{hi_b}"

    def check(self, value: Any) -> Any:
        """Return ``value`` if valid, else raise ``ValueError`` naming this parameter."""
        if self.kind == "choice":
            return choice(self.name, value, ((None,) if self.optional else ()) + self.choices)
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{self.name} must be a number, got None")
        if self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"{self.name} must be True or False, got {value!r}")
            return bool(value)
        if isinstance(value, bool | np.bool_ | str | bytes) or not _is_real(value):
            hint = (
                " (use a NumPy array for one value per setting)"
                if isinstance(value, list | tuple)
                else ""
            )
            raise ValueError(f"{self.name} must be a number, got {value!r}{hint}")
        if self.kind == "int" and not (
            isinstance(value, int | np.integer) or (isinstance(value, float) and value.is_integer())
        ):
            raise ValueError(f"{self.name} must be an integer, got {value!r}")
        values = _as_float_array(self.name, value)
        for x in values.reshape(-1):
            ok = math.isfinite(x) and (
                (self.low < x if self.low_open else self.low <= x)
                and (x < self.high if self.high_open else x <= self.high)
            )
            if not ok:
                raise ValueError(f"{self.name} must be {self.range_text()}, got {_show(value)}")
        if self.kind == "int":
            return int(value)
        if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
            # a Python number, so that (NumPy 2) np.float64(0.1) does not turn float32
            # params into float64 the way a NumPy scalar or 0-d array would
            return value.item()
        return value


def _is_real(value: Any) -> bool:
    """A real number, a NumPy array or scalar of them, or a real torch tensor; not a list,
    a complex or a bool array (NumPy would cast those without complaint)."""
    if is_torch(value):
        return not (value.is_complex() or str(value.dtype) == "torch.bool")
    if isinstance(value, np.ndarray | np.generic):
        return bool(
            np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)
        )
    return isinstance(value, int | float)


def _as_float_array(name: str, value: Any) -> np.ndarray:
    if is_torch(value):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float64
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    return arr


def _show(value: Any) -> str:
    if isinstance(value, float | int):
        return repr(value)
    arr = _as_float_array("", value)
    if arr.ndim == 0:
        return repr(float(arr))
    return f"array {np.array2string(arr.ravel(), threshold=6)}"


@dataclass(frozen=True)
class Rule:
    """An optimization algorithm: pure ``init``/``update`` and its hyperparameter specs.

    ``init(param) -> State`` (non-elementwise rules: ``init(param, *, batch_ndim=0)``)
    builds the state, a NamedTuple with ``count`` first; slots that an option may never
    need (a momentum buffer, AMSGrad's running max) start as ``None`` and are created by
    ``update`` on first use. So do slots whose starting value is a hyperparameter
    (Adagrad's sum is ``initial_accumulator_value + g^2`` after its first update): ``init``
    takes only the parameter, and every hyperparameter arrives at ``update`` time.

    ``state_numel(shape, hp)`` gives the number of state elements kept for a parameter of
    that shape (the step count and scalars such as NAdam's ``mu_product`` excluded), which
    is what memory accounting reports.
    ``checks`` are cross-field checks, run after every hyperparameter is valid on its own.
    ``elementwise`` rules touch each element independently; the others reduce over the
    parameter's own axes and take ``batch_ndim`` (leading config axes never reduced).
    ``reducing_options`` name the flags that make an elementwise rule reduce over the
    parameter's own axes when on (Adam's ``cautious`` mask is normalised per tensor): its
    ``update`` then also takes ``batch_ndim``; ``elementwise_with(hp)`` says which applies.
    ``param_ndim`` is the number of own axes a parameter must have (Muon: 2, matrices only;
    None: any), so callers can route other parameters to another rule.
    ``eval_point(param, state)`` names the point to evaluate the model at when it is not
    the parameter the optimizer steps (schedule-free methods step ``y`` and evaluate the
    average ``x``; ASGD evaluates its running average); None means the parameter itself,
    and ``evaluation_point`` applies either.
    """

    name: str
    init: Callable[..., State]
    update: Callable[..., tuple[Array, State]]
    hyperparams: tuple[Hyper, ...]
    state_numel: Callable[[tuple[int, ...], Mapping[str, Any]], int]
    summary: str
    paper: str = ""
    elementwise: bool = True
    checks: tuple[Callable[[Mapping[str, Any]], None], ...] = field(default=())
    reducing_options: tuple[str, ...] = ()
    param_ndim: int | None = None
    eval_point: Callable[[Array, Any], Array] | None = None  # (param, state) -> array

    def elementwise_with(self, hp: Mapping[str, Any]) -> bool:
        """Whether the update with these hyperparameters is elementwise (so parameters may
        be packed together, and a batched call needs no ``batch_ndim``)."""
        return self.elementwise and not any(is_on(hp.get(o, False)) for o in self.reducing_options)

    def evaluation_point(self, param: Array, state: State) -> Array:
        """Where to evaluate the model: ``eval_point(param, state)``, else ``param``."""
        return param if self.eval_point is None else self.eval_point(param, state)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hyperparams)

    @property
    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hyperparams}

    def hyper(self, name: str) -> Hyper:
        for h in self.hyperparams:
            if h.name == name:
                return h
        raise KeyError(name)

    def validate(self, **hp: Any) -> dict[str, Any]:
        """All hyperparameters, defaults filled in, each checked; unknown names rejected."""
        unknown = sorted(set(hp) - set(self.names))
        if unknown:
            raise ValueError(
                f"{self.name} got unknown hyperparameter {unknown[0]!r}; "
                f"known: {', '.join(self.names)}"
            )
        full = {
            h.name: h.check(hp[h.name]) if h.name in hp else h.default for h in self.hyperparams
        }
        shapes = {k: tuple(v.shape) for k, v in full.items() if getattr(v, "ndim", 0) > 0}
        try:
            np.broadcast_shapes(*shapes.values())
        except ValueError:
            listed = ", ".join(f"{k} {s}" for k, s in shapes.items())
            raise ValueError(
                f"{self.name} hyperparameter arrays must broadcast together (one value per "
                f"setting on the leading axes), got shapes {listed}"
            ) from None
        for check in self.checks:
            check(full)
        return full


def n_slots(count: Callable[[Mapping[str, Any]], int]) -> Callable[..., int]:
    """``state_numel`` for rules whose state is whole parameter-shaped slots."""

    def state_numel(shape: tuple[int, ...], hp: Mapping[str, Any]) -> int:
        return count(hp) * math.prod(shape)

    return state_numel


def is_on(flag: Any) -> bool:
    """Whether an option is enabled: a bool, or a hyperparameter array with any nonzero entry."""
    if isinstance(flag, bool | int | float):
        return bool(flag)
    return bool((flag != 0).any())
