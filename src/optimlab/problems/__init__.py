"""Problems to optimize: analytic test functions, small torch models, the user's own.

>>> from optimlab import problems
>>> p = problems.get("rosenbrock")
>>> float(p.loss(p.init(0)))  # from (-1, 1)
4.0

``problems.get(name, **kw)`` makes one (unknown names suggest the closest; bad keyword
arguments raise ``ValueError``); ``problems.get("module:function")`` or
``problems.from_callable(fn)`` wraps a user's function returning
``(model, loss_fn, data[, val_batch])`` (see ``optimlab.problems.user``);
``problems.register(name, obj)`` makes a function, a ``TorchTask`` or a problem object
reachable by ``get(name)`` in this process (how the lab runs and stores a model you pass
it directly). Importing this package does not import torch.
"""

from __future__ import annotations

import builtins
import inspect
from typing import Any

from ..core import checks
from ..core.names import unknown_keyword, unknown_name
from ..train.task import TorchTask
from .base import Problem
from .functions import (
    FUNCTIONS,
    Beale,
    Himmelblau,
    Rastrigin,
    Ravine,
    Rosenbrock,
    Saddle,
    TestFunction,
)
from .model_base import TorchProblem
from .models import MLP, MODELS, Adding, LeastSquares, Logistic, Shapes
from .transformer import Transformer
from .user import UserProblem, from_callable

__all__ = [
    "MLP",
    "Adding",
    "Beale",
    "Himmelblau",
    "LeastSquares",
    "Logistic",
    "Problem",
    "Rastrigin",
    "Ravine",
    "Rosenbrock",
    "Saddle",
    "Shapes",
    "TestFunction",
    "TorchProblem",
    "TorchTask",
    "Transformer",
    "UserProblem",
    "describe",
    "from_callable",
    "get",
    "list",
    "register",
]

_CLASSES: tuple[type[Problem], ...] = (*FUNCTIONS, *MODELS, Transformer)
_BUILTIN: dict[str, type[Problem]] = {cls.name: cls for cls in _CLASSES}
_REGISTERED: dict[str, Problem] = {}  # name -> problem, for this process (register)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def register(name: str, obj: Any) -> Problem:
    """Make ``obj`` reachable as ``get(name)`` in this process and return its problem.

    ``obj``: a function returning ``(model, loss_fn, data[, val_batch])`` or a
    ``TorchTask`` (see ``optimlab.problems.user``), a ``TorchTask`` object, or a problem
    object (e.g. your own ``TestFunction``). ``name`` (letters, digits, ``_-.``) is what
    the lab's store keys the runs by, so give a new name when the model changes; it must
    not be a built-in problem's name. Registering a name again replaces its problem.
    """
    if not isinstance(name, str) or not name or not set(name.lower()) <= _NAME_CHARS:
        raise ValueError(f"problem name must be letters, digits, '_', '-' or '.', got {name!r}")
    if name.lower().replace("-", "_") in _BUILTIN:
        raise ValueError(f"problem name {name!r} is a built-in problem; choose another name")
    if isinstance(obj, Problem):
        problem = obj
    elif isinstance(obj, TorchTask) or callable(obj):
        problem = from_callable(obj, name)
    else:
        raise ValueError(
            f"problem must be a function, a TorchTask or a problem object, got {obj!r}"
        )
    _REGISTERED[name] = problem
    return problem


def list(kind: str | None = None) -> builtins.list[str]:  # noqa: A001 - public API name
    """Names of the built-in problems, sorted; ``kind`` ``"function"`` or ``"torch"`` filters."""
    checks.choice("kind", kind, (None, "function", "torch"))
    return sorted(n for n, cls in _BUILTIN.items() if kind is None or cls.kind == kind)


def get(name: str, **kwargs: Any) -> Problem:
    """The problem ``name`` made with ``kwargs``; ``"module:function"`` loads a user problem."""
    if not isinstance(name, str):
        raise ValueError(f"problem name must be a string, got {name!r}")
    if name in _REGISTERED:
        if kwargs:
            raise ValueError(
                f"problem {name!r} takes no keyword arguments, got {', '.join(sorted(kwargs))}"
            )
        return _REGISTERED[name]
    if ":" in name:
        if kwargs:
            raise ValueError(
                f"user problem {name!r} takes no keyword arguments, got {', '.join(sorted(kwargs))}"
            )
        from .user import load

        return load(name)
    cls = _BUILTIN.get(name.lower().replace("-", "_"))
    if cls is None:
        raise unknown_name("problem", name, _BUILTIN, match=name.lower())
    known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise unknown_keyword(f"problem {cls.name!r}", unknown[0], known)
    return cls(**kwargs)


def describe(name: str) -> str:
    """One line on the built-in problem ``name`` (its docstring's summary), for listings."""
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if name in _REGISTERED:
        return str(name)
    if key not in _BUILTIN:
        get(name)  # raises the usual unknown-name error
        return str(name)  # a user problem
    doc = (_BUILTIN[key].__doc__ or "").strip()
    return doc.splitlines()[0].replace("``", "") if doc else key
