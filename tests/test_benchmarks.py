"""The sweep and kernel benchmarks run as scripts at their smallest sizes and print every
row; the benchmark scripts refuse a bad argument in one line before they measure anything. Times
are never asserted (a shared machine's load moves them); what the sweep counts is: the
transformer's FLOPs per step, which torch's FlopCounterMode counts, against the matrix
products of the model written out by hand. (`benchmarks/step_speed.py` shares its code
with ``optimlab bench``, tested in test_optim_bench.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parent.parent / "benchmarks" / "sweep_speed.py"
STEP = SWEEP.with_name("step_speed.py")
KERNEL = SWEEP.with_name("kernel_speed.py")


def transformer_mflop(
    layers: int = 2, width: int = 64, heads: int = 4, context: int = 64, batch: int = 8
) -> float:
    """Forward FLOPs of the transformer's matrix products (2 per multiply-add), times 3:
    the backward computes a gradient for both operands of every product (the tokens'
    embedding needs the gradient of the first block's input), twice the forward."""
    tokens, head = batch * context, width // heads
    per_layer = 2 * tokens * width * (3 * width + width + 4 * width + 4 * width)
    per_layer += 2 * (2 * batch * heads * context * context * head)  # QK^T and weights V
    forward = layers * per_layer + 2 * tokens * width * 97  # the head, over 97 symbols
    return 3 * forward / 1e6


@pytest.mark.slow
def test_sweep_speed_runs_every_row_and_counts_the_transformer_flops() -> None:
    proc = subprocess.run(
        [sys.executable, str(SWEEP), "--quick", "--repeats", "1", "--subset", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = re.findall(r"^  (.+?)\s+([\d.]+) ms\s+([\d.]+)x vs ", out, re.M)
    assert len(rows) == 4 + 3 + 3, out  # Rosenbrock, the MLP, the transformer
    assert all(float(ms) > 0 and float(ratio) > 0 for _, ms, ratio in rows)
    counted = float(re.search(r"a step: ([\d.]+) MFLOP per setting", out)[1])
    assert counted == round(transformer_mflop(), 1)  # 371.4
    rates = re.findall(r"([\d.]+) GFLOP/s", out)
    assert len(rates) == 3 + 2 and all(float(r) > 0 for r in rates)


def test_sweep_speed_refuses_an_unknown_problem() -> None:
    proc = subprocess.run(
        [sys.executable, str(SWEEP), "--problems", "mlp,bogus"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[-1].endswith(
        "error: unknown problem 'bogus' (known: rosenbrock, mlp, transformer)"
    )


@pytest.mark.parametrize(
    "script, args, error",
    [
        (STEP, ["--optimizers", "adamw,sgd"], "unknown 'sgd'; optimizers: adamw, sgd_momentum, "),
        (STEP, ["--matrix-sizes", "1e6y16"], "bad size '1e6y16': expected NUMELxTENSORS"),
        (STEP, ["--repeats", "0"], "repeats must be an integer >= 1, got 0"),
        (KERNEL, ["--optimizers", "lion"], "unknown optimizer 'lion'; choose from adamw, sgd_"),
        (KERNEL, ["--numel", "1.5"], "--numel must be a whole number from 1 to 1e9, got 1.5"),
        (KERNEL, ["--rounds", "0"], "--rounds must be at least 1, got 0"),
    ],
)
def test_speed_scripts_refuse_a_bad_argument(script: Path, args: list[str], error: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == ""  # nothing measured, no traceback
    assert f"{script.name}: error: {error}" in proc.stderr.splitlines()[-1]


@pytest.mark.slow
def test_kernel_speed_prints_every_row_against_torchs() -> None:
    proc = subprocess.run(
        [sys.executable, str(KERNEL), "--numel", "1e4", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^  (.+?)\s+([\d.]+) ms\s+([\d.]+)x torch's$", proc.stdout, re.M)
    names = [name for name, _, _ in rows]
    assert len(rows) == 2 * 5 and len(set(names)) == 5, proc.stdout
    assert all(float(ms) > 0 for _, ms, _ in rows)
    # each torch row is the baseline of its kind
    assert [float(r) for n, _, r in rows if n.startswith("torch fused")] == [1.0] * 4
