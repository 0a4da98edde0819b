"""optimlab: gradient-based optimizers defined once, and a lab to choose and tune them.

The packages are layers; each imports only from the ones above it in this list:

0. ``core``: checking values, parsing ``name:k=v`` specs, naming mistakes, the array namespace
1. ``rules``: one pure ``(init, update)`` rule per algorithm and the registry of them;
   ``schedules``: learning rate as a closed-form function of the step
2. ``functional``: the NumPy backend (teaching steps, ``numpy_optimizer``);
   ``optim``: the torch backend (``torch.optim.Optimizer`` classes)
3. ``train``: training step, clipping, precision, checkpoints, memory, ``lr_find``
4. ``problems``: what the lab optimizes
5. ``lab``: engine, store, analysis, report
6. ``cli``: the ``optimlab`` command

``import optimlab`` stays light: torch and matplotlib load only when a part that needs
them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .core.version import __version__
from .rules.registry import get_rule, list_optimizers

# name -> (module, attribute or None for the module itself), imported on first use
_LAZY: dict[str, tuple[str, str | None]] = {
    "functional": ("optimlab.functional", None),
    "numpy_optimizer": ("optimlab.functional.optimizer", "numpy_optimizer"),
    "optim": ("optimlab.optim", None),
    "create_optimizer": ("optimlab.optim", "create_optimizer"),
    "schedules": ("optimlab.schedules", None),
    "lr_find": ("optimlab.train.lr_range_test", "lr_find"),
    "problems": ("optimlab.problems", None),
    "lab": ("optimlab.lab", None),
    "train": ("optimlab.train", None),
    "memory": ("optimlab.train.memory", "memory"),
}

__all__ = ["__version__", "get_rule", "list_optimizers", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'optimlab' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
