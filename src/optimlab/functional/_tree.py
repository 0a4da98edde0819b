"""Parameter containers for the NumPy API: one array, a number, or a list/tuple/dict of them.

``flatten`` turns a container into a ``Layout`` (how to rebuild it) and a list of NumPy
leaves; ``leaves_like`` reads a second container (gradients, a state slot) that must have
the same layout and shapes; ``unflatten`` rebuilds a container from new leaves. Python
numbers become 0-d float64 arrays and come back as Python floats, so one-parameter demos
can use plain floats. Nothing here modifies its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import checks


@dataclass(frozen=True)
class Layout:
    """The shape of a parameter container.

    ``kind`` is ``"number"``, ``"array"``, ``"list"``, ``"tuple"`` or ``"dict"``; ``keys``
    the dict keys (``()`` otherwise); ``numbers`` marks leaves given as Python numbers;
    ``shapes`` the shape of each leaf.
    """

    kind: str
    keys: tuple[str, ...]
    numbers: tuple[bool, ...]
    shapes: tuple[tuple[int, ...], ...]

    def label(self, name: str, i: int) -> str:
        """How leaf ``i`` of container ``name`` is named in messages: ``grads['w']``."""
        if self.kind == "dict":
            return f"{name}[{self.keys[i]!r}]"
        if self.kind in ("list", "tuple"):
            return f"{name}[{i}]"
        return name

    def describe(self) -> str:
        if self.kind == "dict":
            return f"a dict with keys {list(self.keys)}"
        if self.kind in ("list", "tuple"):
            return f"a {self.kind} of {len(self.shapes)} arrays"
        return "a number" if self.kind == "number" else f"an array of shape {self.shapes[0]}"


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(
        x, bool | np.bool_
    )


def _leaf(x: Any, label: str, as_float: bool) -> np.ndarray:
    if _is_number(x):
        try:
            return np.asarray(x, dtype=np.float64)
        except OverflowError:  # a Python int beyond float64
            raise ValueError(f"{label} must be a finite number, got {checks.show(x)}") from None
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{label} must be a NumPy array or a number, got {type(x).__name__}")
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{label} must hold numbers, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):
        # The rules square gradients as g * g, which is not |g|^2 for complex numbers.
        raise TypeError(
            f"{label} is complex ({x.dtype}); pass real arrays, e.g. the real "
            f"and imaginary parts as two parameters"
        )
    if as_float and not np.issubdtype(x.dtype, np.inexact):
        return x.astype(np.float64)
    return x


def flatten(tree: Any, name: str = "params") -> tuple[Layout, list[np.ndarray]]:
    """The layout of ``tree`` and its leaves as arrays (integer arrays become float64)."""
    if isinstance(tree, Mapping):
        keys = tuple(tree)
        for k in keys:
            if not isinstance(k, str):
                raise TypeError(f"{name} dict keys must be strings, got {k!r}")
        kind, items = "dict", [tree[k] for k in keys]
    elif isinstance(tree, list | tuple):
        kind, keys, items = type(tree).__name__, (), list(tree)
    else:
        kind, keys, items = ("number" if _is_number(tree) else "array"), (), [tree]
    layout = Layout(kind, keys, tuple(_is_number(x) for x in items), ())
    leaves = [_leaf(x, layout.label(name, i), as_float=True) for i, x in enumerate(items)]
    return Layout(kind, keys, layout.numbers, tuple(a.shape for a in leaves)), leaves


def leaves_like(
    layout: Layout, tree: Any, name: str, ref: str = "params", allow_none: bool = False
) -> list[np.ndarray | None]:
    """The leaves of ``tree``, which must have ``layout``'s structure and shapes.

    With ``allow_none``, a leaf may be ``None`` (a parameter without a gradient).
    """
    if layout.kind == "dict":
        if not isinstance(tree, Mapping) or set(tree) != set(layout.keys):
            got = f"keys {list(tree)}" if isinstance(tree, Mapping) else type(tree).__name__
            raise ValueError(
                f"{name} must be a dict with keys {list(layout.keys)} (like {ref}), got {got}"
            )
        items = [tree[k] for k in layout.keys]
    elif layout.kind in ("list", "tuple"):
        if (
            not isinstance(tree, Sequence)
            or isinstance(tree, str)
            or len(tree) != len(layout.shapes)
        ):
            got = f"length {len(tree)}" if isinstance(tree, Sequence) else type(tree).__name__
            raise ValueError(
                f"{name} must be a list of {len(layout.shapes)} arrays (like {ref}), got {got}"
            )
        items = list(tree)
    else:
        if isinstance(tree, Mapping | list | tuple):
            raise ValueError(f"{name} must be {layout.describe()}, got a {type(tree).__name__}")
        items = [tree]
    leaves: list[np.ndarray | None] = []
    for i, x in enumerate(items):
        label = layout.label(name, i)
        if x is None and allow_none:
            leaves.append(None)
            continue
        arr = _leaf(x, label, as_float=False)
        if arr.shape != layout.shapes[i]:
            raise ValueError(
                f"shape mismatch: {label} has shape {arr.shape}, "
                f"{layout.label(ref, i)} has shape {layout.shapes[i]}"
            )
        leaves.append(arr)
    return leaves


def unflatten(layout: Layout, leaves: Sequence[Any]) -> Any:
    """Rebuild a container of ``layout`` from new leaves.

    Leaves given as Python numbers come back as floats; the others as arrays (NumPy turns
    0-d array arithmetic into scalars, which are made 0-d arrays again).
    """
    out = [
        (float(x) if np.ndim(x) == 0 else x)
        if is_num
        else (np.asarray(x) if isinstance(x, np.generic) else x)
        for x, is_num in zip(leaves, layout.numbers, strict=True)
    ]
    if layout.kind == "dict":
        return dict(zip(layout.keys, out, strict=True))
    if layout.kind == "list":
        return out
    if layout.kind == "tuple":
        return tuple(out)
    return out[0]
