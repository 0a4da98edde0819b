"""Shared fixtures, and the ``numerics`` marker.

The ``numerics`` tests compare two computations of the same mathematics (a rule against
its reference, torch or itself batched; a schedule at an array of steps against each
step; the engine batched against one setting at a time; NumPy against torch). Their
results depend on which machine code runs (NumPy picks SIMD loops by CPU), so ``.ci/run``
runs them a second time with NumPy's AVX-512 loops disabled (``NPY_DISABLE_CPU_FEATURES``).
A test is marked when its module (or the test itself) is listed in ``NUMERICS`` below, or
when it calls ``tests/numerics.py``'s ``assert_close`` (directly or through a helper
function of its module), so a new cross-path test joins the second run by itself.
Select them with ``pytest -m numerics``.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import numpy as np
import pytest
import torch
from numerics import assert_close

# module -> the tests of it that are numeric (None: all of them)
NUMERICS: dict[str, set[str] | None] = {
    "test_rules.py": None,
    "test_schedules.py": None,
    "test_schedules_properties.py": None,
    "test_schedules_torch.py": None,
    "test_engine.py": None,
    "test_engine_torch.py": None,
    "test_engine_slow.py": None,
    "test_functional.py": None,
    "test_functional_torch.py": None,
    "test_numpy_optim.py": None,
    "test_optim_parity.py": {
        "test_matches_plain_equations",
        "test_same_rule_drives_numpy_and_torch",
    },
    "test_lab_run.py": {"test_batched_equals_one_by_one"},
    "test_problems.py": {"test_gradient_matches_autograd_batched"},
    "test_problems_user.py": {"test_engine_runs_user_problems_batched_and_sequentially"},
}


def _calls_assert_close(func: Any, module: types.ModuleType, seen: set[Any]) -> bool:
    """Whether ``func`` (or a function of ``module`` it names, recursively) names
    ``assert_close`` while ``module`` imported it from tests/numerics.py."""
    if getattr(module, "assert_close", None) is not assert_close:
        return False
    func = getattr(getattr(func, "hypothesis", None), "inner_test", func)  # under @given
    codes = [getattr(inspect.unwrap(func), "__code__", None)]
    while codes:
        code = codes.pop()
        if code is None or code in seen:
            continue
        seen.add(code)
        for name in code.co_names:
            if name == "assert_close":
                return True
            helper = getattr(module, name, None)
            if inspect.isfunction(helper) and helper.__module__ == module.__name__:
                codes.append(helper.__code__)
        codes.extend(c for c in code.co_consts if inspect.iscode(c))  # nested functions
    return False


def _is_numeric(item: pytest.Item) -> bool:
    path = getattr(item, "path", None)
    listed = NUMERICS.get(path.name, set()) if path is not None else set()
    name = getattr(item, "originalname", item.name)
    if listed is None or name in listed:
        return True
    func, module = getattr(item, "function", None), getattr(item, "module", None)
    return module is not None and _calls_assert_close(func, module, set())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_numeric(item):
            item.add_marker(pytest.mark.numerics)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def one_torch_thread():
    """Tiny models: a second torch thread only contends on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
