"""The mixed-precision example runs, checkpoints and resumes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mixed_precision_training.py"


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def load_example():
    spec = importlib.util.spec_from_file_location("mixed_precision_training", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_example_trains_and_resumes(tmp_path: Path, precision: str, capsys) -> None:
    example = load_example()
    args = [
        "--precision",
        precision,
        "--steps",
        "50",
        "--batch",
        "64",
        "--checkpoint-dir",
        str(tmp_path),
    ]
    assert example.main(args) == 0
    out = capsys.readouterr().out
    assert "final full-data loss" in out and (tmp_path / "step-00000050").is_dir()
    assert example.main(args) == 0
    assert "resumed from" in capsys.readouterr().out
