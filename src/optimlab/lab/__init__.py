"""The lab: compare optimizers on problems, store every run, analyse, plot and report.

``compare`` and ``sweep`` expand a grid into runs, compute the ones not yet in the
results folder's SQLite store with the batched engine, and return :class:`Results`
(tidy records with ``best()``, ``table()``, ``to_csv()``, ``to_json()``).
``write_report(folder)`` turns a folder's store into one self-contained HTML file.
Imports are lazy: ``import optimlab.lab`` loads neither torch nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, tuple[str, str]] = {
    "compare": ("optimlab.lab.api", "compare"),
    "sweep": ("optimlab.lab.api", "sweep"),
    "Results": ("optimlab.lab.results", "Results"),
    "load": ("optimlab.lab.results", "Results"),
    "Store": ("optimlab.lab.store", "Store"),
    "StoreError": ("optimlab.lab.store", "StoreError"),
    "StoreFault": ("optimlab.lab.store", "StoreFault"),
    "RunConfig": ("optimlab.lab.config", "RunConfig"),
    "parse_lrs": ("optimlab.lab.config", "parse_lrs"),
    "expand_grid": ("optimlab.lab.config", "expand_grid"),
    "execute": ("optimlab.lab.runner", "execute"),
    "write_report": ("optimlab.lab.report", "write_report"),
    "lr_find": ("optimlab.train.lr_range_test", "lr_find"),  # design.md: ol.lab.lr_find
    "run": ("optimlab.lab.engine", "run"),
    "Setting": ("optimlab.lab.record", "Setting"),
    "Trace": ("optimlab.lab.record", "Trace"),
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'optimlab.lab' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), attr)
    if name == "load":
        value = value.load
    globals()[name] = value
    return value
