"""Stateful NumPy optimizers over any registered rule: ``w = opt.update(w, g)``.

>>> import numpy as np, optimlab
>>> opt = optimlab.numpy_optimizer("momentum", lr=0.1)
>>> w = np.array([1.0, -1.0])
>>> for _ in range(2):
...     w = opt.update(w, 2 * w)          # f(w) = |w|^2
>>> opt.step, w
(2, array([ 0.46, -0.46]))

The optimizer keeps one rule state per parameter, keyed by position (list/tuple) or key
(dict), and checks that later calls have the same keys and shapes. Hyperparameters are
read at every step from ``opt.hyperparams``, which re-validates on assignment.
``state_dict()`` holds only arrays, numbers and strings under flat string keys, so it goes
through ``np.savez``/``np.load(allow_pickle=False)`` or JSON (arrays as lists) unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from ..core import checks
from ..rules.base import Rule, State
from ..rules.registry import get_spec
from . import _tree
from .bind_rule import keeps_shape

FORMAT = "optimlab.numpy_optimizer/1"


class Hyperparams(MutableMapping[str, Any]):
    """An optimizer's hyperparameters; every assignment is validated by the rule first
    (NumPy arrays are allowed, one value per element, by rules that work element by
    element; rules that reduce over a parameter, such as Adafactor or Muon, take numbers;
    torch tensors are not allowed)."""

    def __init__(self, rule: Rule, values: Mapping[str, Any]) -> None:
        self._rule = rule
        self._values = rule.checked(values, tensors=False, arrays=rule.elementwise)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __delitem__(self, name: str) -> None:
        raise ValueError(f"cannot delete hyperparameter {name!r}; assign a value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set several at once; all are validated together before any changes."""
        self._values = self._rule.checked(
            {**self._values, **dict(other), **kwargs},
            tensors=False,
            arrays=self._rule.elementwise,
        )

    def __repr__(self) -> str:
        return repr(self._values)


class NumpyOptimizer:
    """A registered optimizer applied to NumPy arrays, with its state kept inside.

    ``update(weights, grads) -> weights`` takes one array (or number) or a list/tuple/dict
    of arrays, with gradients of the same layout (a ``None`` gradient leaves its parameter
    and state unchanged), and returns new arrays; its inputs are never modified.
    """

    def __init__(self, name: str, **hyperparams: Any) -> None:
        spec = get_spec(name)
        self.name: str = spec.name
        self.rule: Rule = spec.rule
        self._hp = Hyperparams(spec.rule, hyperparams)
        self.step: int = 0
        self._kind: str | None = None  # "single", "sequence" or "dict" once stepped
        self._keys: tuple[Any, ...] = ()
        self._shapes: dict[Any, tuple[int, ...]] = {}
        self._dtypes: dict[Any, np.dtype] = {}
        self._states: dict[Any, State] = {}

    @property
    def hyperparams(self) -> Hyperparams:
        return self._hp

    @hyperparams.setter
    def hyperparams(self, values: Mapping[str, Any]) -> None:
        self._hp = Hyperparams(self.rule, values)

    def update(self, weights: Any, grads: Any) -> Any:
        """One step: returns the new weights, in the layout they were given."""
        layout, w = _tree.flatten(weights, "weights")
        g = _tree.leaves_like(layout, grads, "grads", ref="weights", allow_none=True)
        kind, keys = _kind(layout), _keys(layout)
        if self._kind is not None:
            self._check_layout(kind, keys, layout)
        hp = dict(self._hp)
        for i, p in enumerate(w):
            keeps_shape(hp, p.shape, layout.label("weights", i))
        new_w: list[Any] = []
        new_states = dict(self._states)
        for key, p, gi in zip(keys, w, g, strict=True):
            if gi is None:
                new_w.append(np.array(p, copy=True))
                continue
            state = self._states.get(key)
            if state is None:
                state = (
                    self.rule.init(p) if self.rule.elementwise else self.rule.init(p, batch_ndim=0)
                )
            delta, new_states[key] = self.rule.update(gi, state, p, **hp)
            new_w.append(p + delta)
        # Nothing above touched self: a failing step leaves the optimizer as it was.
        if self._kind is None:
            self._kind, self._keys = kind, keys
            self._shapes = {k: p.shape for k, p in zip(keys, w, strict=True)}
            self._dtypes = {k: p.dtype for k, p in zip(keys, w, strict=True)}
        self._states = new_states
        self.step += 1
        return _tree.unflatten(layout, new_w)

    def _check_layout(self, kind: str, keys: tuple[Any, ...], layout: _tree.Layout) -> None:
        if kind != self._kind or set(keys) != set(self._keys):
            raise ValueError(
                f"weights must have the layout the optimizer's state was built for "
                f"({_describe(self._kind, self._keys)}), got {layout.describe()}"
            )
        for i, key in enumerate(keys):
            if layout.shapes[i] != self._shapes[key]:
                raise ValueError(
                    f"shape mismatch: {layout.label('weights', i)} has shape "
                    f"{layout.shapes[i]}, the optimizer's state is for shape {self._shapes[key]}"
                )

    def state_dict(self) -> dict[str, Any]:
        """The whole optimizer as flat ``{str: array | number | str}`` (copies)."""
        out: dict[str, Any] = {"format": FORMAT, "optimizer": self.name, "step": self.step}
        nones = [k for k, v in self._hp.items() if v is None]
        out.update({f"hp/{k}": _plain_copy(v) for k, v in self._hp.items() if v is not None})
        out["hp_none"] = np.array(nones, dtype=str)
        out["layout"] = self._kind or "none"
        out["n_params"] = len(self._keys)
        if self._kind == "dict":
            out["keys"] = np.array(self._keys, dtype=str)
        for i, key in enumerate(self._keys):
            out[f"param/{i}/shape"] = np.array(self._shapes[key], dtype=np.int64)
            out[f"param/{i}/dtype"] = str(self._dtypes[key])
            state = self._states.get(key)
            if state is None:  # never had a gradient yet
                continue
            for field, value in zip(state._fields, state, strict=True):
                if value is not None:
                    out[f"state/{i}/{field}"] = _plain_copy(value)
                    if isinstance(value, np.ndarray | np.generic):  # for JSON's plain lists
                        out[f"dtype/{i}/{field}"] = str(value.dtype)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output (also after np.savez/np.load or JSON).

        Everything is checked before anything changes; the given dict is never modified
        and shares no arrays with the optimizer. Missing hyperparameters take defaults.
        """
        sd = dict(state_dict)
        fmt = _scalar(sd.get("format", FORMAT))
        if fmt != FORMAT:
            raise ValueError(f"unsupported state_dict format {fmt!r}; expected {FORMAT!r}")
        name = _scalar(sd.get("optimizer"))
        if name != self.name:
            raise ValueError(f"state_dict is for optimizer {name!r}, this one is {self.name!r}")
        hp = {k[3:]: _hp_value(v) for k, v in sd.items() if k.startswith("hp/")}
        hp.update({k: None for k in _strings(sd.get("hp_none", []))})
        hyperparams = Hyperparams(self.rule, hp)
        step = checks.integer("state_dict step", _scalar(sd.get("step", 0)), 0)
        kind = _scalar(sd.get("layout", "none"))
        n = checks.integer("state_dict n_params", _scalar(sd.get("n_params", 0)), 0)
        if kind == "dict":
            keys: tuple[Any, ...] = tuple(_strings(sd.get("keys", [])))
            if len(keys) != n:
                raise ValueError(f"state_dict has {len(keys)} keys for n_params={n}")
        elif kind in ("single", "sequence", "none"):
            keys = tuple(range(n))
        else:
            raise ValueError(f"state_dict layout must be single, sequence or dict, got {kind!r}")
        shapes = {key: _shape(sd, i) for i, key in enumerate(keys)}
        dtypes = {key: _dtype(sd, i) for i, key in enumerate(keys)}
        states = {}
        for i, key in enumerate(keys):
            state = self._load_state(sd, i, shapes[key], dtypes[key])
            if state is not None:
                states[key] = state
        known = {"format", "optimizer", "step", "hp_none", "layout", "n_params", "keys"}
        indexed = {f"{p}/{i}/" for p in ("param", "state", "dtype") for i in range(n)}
        for k in sd:
            if not (k in known or k.startswith("hp/") or k[: k.rfind("/") + 1] in indexed):
                raise ValueError(f"unexpected key {k!r} in state_dict")
        self._hp, self.step = hyperparams, step
        self._kind = None if kind == "none" else kind
        self._keys, self._shapes, self._dtypes, self._states = keys, shapes, dtypes, states

    def _load_state(
        self, sd: Mapping[str, Any], i: int, shape: tuple[int, ...], dtype: np.dtype
    ) -> State | None:
        """Parameter ``i``'s rule state from ``sd`` (``None`` if it never had a gradient),
        each slot checked against a fresh state for that shape and dtype."""
        prefix = f"state/{i}/"
        given = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if not given:
            return None
        zeros = np.zeros(shape, dtype=dtype)
        template = (
            self.rule.init(zeros) if self.rule.elementwise else self.rule.init(zeros, batch_ndim=0)
        )
        unknown = sorted(set(given) - set(template._fields))
        if unknown:
            raise ValueError(
                f"state_dict {prefix}{unknown[0]} is not a {self.name} state slot "
                f"(slots: {', '.join(template._fields)})"
            )
        values = {}
        for field, default in zip(template._fields, template, strict=True):
            if field not in given:
                continue
            key = f"state_dict {prefix}{field}"
            if field == "count":
                values[field] = checks.integer(key, _scalar(given[field]), 0)
            elif default is not None and not isinstance(default, np.ndarray):
                # a number such as NAdam's mu_product (or an array of them)
                values[field] = _plain_copy(checks.real(key, _scalar(given[field]), arrays=True))
            else:
                like = sd.get(f"dtype/{i}/{field}", getattr(default, "dtype", dtype))
                like = _dtype_named(_scalar(like), f"dtype/{i}/{field}")
                # slots created on first use (None in the template) have the param's shape
                expected = (
                    default.shape
                    if isinstance(default, np.ndarray)
                    else (shape if self.rule.elementwise else None)
                )
                values[field] = _slot_array(key, given[field], like, expected, shape)
        return template._replace(**values)

    def __repr__(self) -> str:
        defaults = self.rule.defaults
        changed = [f"{k}={v!r}" for k, v in self._hp.items() if not _same(v, defaults[k])]
        args = ", ".join([repr(self.name), *changed])
        return f"NumpyOptimizer({args}; step={self.step}, params={len(self._keys)})"


def numpy_optimizer(name: str, **hyperparams: Any) -> NumpyOptimizer:
    """A stateful NumPy optimizer for any registered algorithm (see ``list_optimizers()``).

    Hyperparameters are the rule's (``optimlab.get_rule(name).names``); unknown names
    and invalid values raise ``ValueError`` naming them.
    """
    return NumpyOptimizer(name, **hyperparams)


def _kind(layout: _tree.Layout) -> str:
    if layout.kind == "dict":
        return "dict"
    return "sequence" if layout.kind in ("list", "tuple") else "single"


def _keys(layout: _tree.Layout) -> tuple[Any, ...]:
    return layout.keys if layout.kind == "dict" else tuple(range(len(layout.shapes)))


def _describe(kind: str | None, keys: tuple[Any, ...]) -> str:
    if kind == "dict":
        return f"a dict with keys {list(keys)}"
    return f"a list of {len(keys)} arrays" if kind == "sequence" else "one array"


def _plain_copy(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return np.array(value, copy=True)
    return value


def _scalar(value: Any) -> Any:
    """A Python value from what np.load or json gives back (0-d arrays, numpy scalars)."""
    if isinstance(value, np.ndarray | np.generic) and np.ndim(value) == 0:
        return value.item()
    return value


def _hp_value(value: Any) -> Any:
    value = _scalar(value)
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float64)
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def _slot_array(
    key: str,
    value: Any,
    dtype: np.dtype,
    expected: tuple[int, ...] | None,
    param_shape: tuple[int, ...],
) -> np.ndarray:
    """A state slot from a state dict as a new float array of the expected shape (plain
    lists and floats, as JSON gives them back, take the saved ``dtype``)."""
    plain = not isinstance(value, np.ndarray | np.generic)
    try:
        arr = np.array(value, dtype=dtype if plain else None, copy=True)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must hold floats, got {checks.show(value)}") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{key} must hold floats, got dtype {arr.dtype}")
    if expected is not None and arr.shape != expected:
        raise ValueError(
            f"{key} has shape {arr.shape}, expected {expected} for a parameter of shape "
            f"{param_shape}"
        )
    return arr


def _strings(value: Any) -> list[str]:
    return [str(x) for x in np.asarray(value, dtype=str).reshape(-1)]


def _shape(sd: Mapping[str, Any], i: int) -> tuple[int, ...]:
    key = f"param/{i}/shape"
    if key not in sd:
        raise ValueError(f"state_dict lacks {key!r}")
    return tuple(int(x) for x in np.asarray(sd[key]).reshape(-1))


def _dtype(sd: Mapping[str, Any], i: int) -> np.dtype:
    return _dtype_named(_scalar(sd.get(f"param/{i}/dtype", "float64")), f"param/{i}/dtype")


def _dtype_named(name: Any, key: str) -> np.dtype:
    try:
        dtype = np.dtype(str(name))
    except TypeError:
        raise ValueError(f"state_dict {key} is not a dtype: {name!r}") from None
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"state_dict {key} must be a float dtype, got {name!r}")
    return dtype


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(a == b)) and type(a) is type(b)
    except (TypeError, ValueError):
        return False
