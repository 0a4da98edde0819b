"""What a rule is: a pure ``(init, update)`` pair plus the specs of its hyperparameters.

A rule's ``update(grad, state, param, **hyperparams) -> (delta, new_state)`` returns the
additive update (it already contains ``-lr``) and never assigns into its inputs.
Hyperparameters are keyword-only and may be arrays that broadcast against the parameter
(shape ``(K, 1, ...)`` runs K settings at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..core import checks
from ..core.names import unknown_keyword

Array = Any  # a NumPy array or a torch tensor
State = NamedTuple

INF = math.inf
# The largest learning rate and weight decay a rule accepts: far beyond any useful value,
# far below where one step overflows (near 1e308 in float64, 3e38 in float32). A bigger
# value is a typo, and would silently give inf or NaN weights.
LR_MAX = 1e6


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its default and valid range, from which validation,
    CLI flags and docs are generated.

    ``kind`` is ``"float"`` (a real number or an array of them), ``"int"`` (with closed,
    whole-number bounds), ``"bool"`` or ``"choice"`` (one of the strings in ``choices``).
    Bounds are closed unless ``low_open``/``high_open``. ``optional`` hyperparameters also
    accept ``None``, which the rule resolves itself (Adafactor's ``eps1=None`` is the
    machine epsilon of the parameter's dtype). ``limit`` is an upper bound outside the
    mathematical range, for values no one means that overflow a step (``lr <= LR_MAX``:
    ``lr must be <= 1e+06, got 1e+308``). Checking is ``core.checks``, so messages read
    ``lr must be a finite number >= 0, got nan``.
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
    limit: float = INF  # beyond the range: larger values overflow a step (lr: LR_MAX)

    def __post_init__(self) -> None:
        checks.choice("kind", self.kind, ("float", "int", "bool", "choice"))
        if self.kind == "int" and (self.low_open or self.high_open):
            raise ValueError(f"{self.name}: an int hyperparameter takes closed bounds")

    def range_text(self) -> str:
        """The valid values in words: ``"in [0, 1)"``, ``"None or > 0"``, ``"True or False"``."""
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            return f"one of {', '.join(map(repr, self._options()))}"
        text = checks.range_text(
            self.low, self.high, low_open=self.low_open, high_open=self.high_open
        )
        if self.kind == "int":
            text = f"an integer {text}".rstrip()
        text = text or "a finite number"
        return f"None or {text}" if self.optional else text

    def _options(self) -> tuple[str | None, ...]:
        return ((None,) if self.optional else ()) + self.choices

    def check(self, value: Any, *, arrays: bool = True, tensors: bool = True) -> Any:
        """Return ``value`` if valid, else raise ``ValueError`` naming this parameter.

        Floats may be NumPy arrays (one value per setting, ``arrays``) and torch tensors
        (``tensors``); scalars come back as Python numbers (see ``core.checks``).
        """
        if self.kind == "bool":
            return checks.flag(self.name, value)
        if self.kind == "choice":
            return checks.choice(self.name, value, self._options())
        if self.kind == "int":
            low = None if self.low == -INF else int(self.low)
            high = checks.INT_MAX if self.high == INF else int(self.high)
            return checks.integer(self.name, value, low, high, optional=self.optional)
        checked = checks.real(
            self.name,
            value,
            self.low,
            self.high,
            low_open=self.low_open,
            high_open=self.high_open,
            optional=self.optional,
            arrays=arrays,
            tensors=tensors,
        )
        if self.limit != INF and checked is not None:
            checks.real(self.name, checked, high=self.limit, arrays=arrays, tensors=tensors)
        return checked


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
    ``group_wide`` rules (Prodigy's step size ``d``) reduce over every parameter of a
    param group together: the torch classes and the lab hand them a group's parameters
    as one flat vector; given one array, they treat it as the group.

    ``per_step(state, **hp) -> dict`` gives the step's *scalars*: every value the update
    needs that depends only on the step count, the state's scalar slots and the
    hyperparameters (Adam's ``step_size = lr / (1 - beta1^t)``), so that a fast path
    computes them once per step outside the elementwise pass (a compiled kernel never
    evaluates ``beta1 ** t`` per element, and a schedule changing ``lr`` changes only a
    scalar argument). ``update`` takes them as ``scalars=`` and computes them itself when
    not given, with the same operations, so both calls give bitwise the same result. A key
    named like one of the state's scalar slots (NAdam's ``mu_product``) is that slot's new
    value; given ``scalars``, ``update`` reads only the tensor slots of ``state`` (and
    returns ``state.count + 1``). None: the rule has no per-step scalars (SGD, Lion).
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
    group_wide: bool = False
    per_step: Callable[..., dict[str, Any]] | None = None  # (state, **hp) -> scalars

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
        """All hyperparameters, defaults filled in, each checked; unknown names rejected.

        Float hyperparameters may be NumPy arrays or torch tensors (one value per setting
        on the leading axes); see :meth:`checked` to refuse either.
        """
        return self.checked(hp)

    def checked(
        self, hp: Mapping[str, Any], *, arrays: bool = True, tensors: bool = True
    ) -> dict[str, Any]:
        """:meth:`validate` for a mapping, with arrays or tensors refused when ``False``.
        Without ``arrays``, a tensor (then of one element) is taken as its float value."""
        unknown = sorted(set(hp) - set(self.names), key=str)
        if unknown:
            raise unknown_keyword(self.name, unknown[0], self.names, what="hyperparameter")
        full: dict[str, Any] = {
            h.name: h.check(hp[h.name], arrays=arrays, tensors=tensors)
            if h.name in hp
            else h.default
            for h in self.hyperparams
        }
        if not arrays:
            full = {k: float(v) if checks.is_tensor(v) else v for k, v in full.items()}
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
