"""What a type checker sees of ``optimlab.optim``: every generated class, typed as a
``RuleOptimizer`` subclass, so user code written against torch.optim checks clean."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")  # a development tool, not a test dependency

USER_CODE = """
import torch
import optimlab.optim
from optimlab.optim import AdamW, Lion, RuleOptimizer

model = torch.nn.Linear(2, 2)
opt = AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
other: RuleOptimizer = optimlab.optim.Adafactor(model.parameters())
lion = Lion(model.parameters(), lr=3e-4)
opt.step()
"""
WRONG_CODE = """
from optimlab.optim import AdamW

x: int = AdamW
"""
# torch and numpy are not analysed (about 15 s), only optimlab's own annotations
CONFIG = """
[mypy]
[mypy-torch.*]
follow_imports = skip
[mypy-numpy.*]
follow_imports = skip
"""


def test_mypy_accepts_user_code_and_types_the_classes(tmp_path: Path) -> None:
    """One mypy run (about 5 s) over code that must check clean and code that must not:
    the classes are ``type[RuleOptimizer]`` to mypy, not ``Any``."""
    (tmp_path / "mypy.ini").write_text(CONFIG)
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_CODE))
    (tmp_path / "wrong.py").write_text(textwrap.dedent(WRONG_CODE))
    config, cache = str(tmp_path / "mypy.ini"), str(tmp_path / "cache")
    files = [str(tmp_path / "user.py"), str(tmp_path / "wrong.py")]
    out, err, status = mypy_api.run(["--config-file", config, "--cache-dir", cache, *files])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 1, out + err
    assert "wrong.py:4:" in errors[0] and 'type "type[RuleOptimizer]"' in errors[0]
