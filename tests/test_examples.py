"""Run each example as a script and check what it claims against the math."""

from __future__ import annotations

import math
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import optimlab

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_adam_bias_correction():
    out = run_example("adam_bias_correction.py")
    rows = {
        int(m[1]): (float(m[2]), float(m[3]))
        for m in re.finditer(r"^\s+(\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s", out, re.M)
    }
    assert {1, 2, 3, 10, 50} <= set(rows)
    # corrected: with a gradient of constant sign, each early step has size ~lr = 0.1
    for t in (1, 2, 3):
        assert rows[t][0] == pytest.approx(10 - 0.1 * t, abs=1e-3)
    # uncorrected: v is biased toward 0 far more than m, so it moves faster early on
    for t in (1, 2, 3, 10):
        assert rows[t][1] < rows[t][0]
    first = re.search(r"first step: corrected ([\d.]+), uncorrected ([\d.]+)", out)
    ratio = float(first[2]) / float(first[1])
    assert ratio == pytest.approx((1 - 0.9) / math.sqrt(1 - 0.999), rel=1e-3)
    assert "overshoots theta = 0 at step" in out


def _rosenbrock_rows(out: str) -> dict[str, float]:
    return {
        m[1]: float(m[2])
        for m in re.finditer(r"^(\w+)\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)$", out, re.M)
        if m[1] != "optimizer"
    }


def test_rosenbrock_gets_closer():
    out = run_example("rosenbrock.py")  # 3000 steps
    start = float(re.search(r"at the start: ([\d.]+)", out)[1])
    assert start == pytest.approx(2.0)
    dist = _rosenbrock_rows(out)
    table = runpy.run_path(str(EXAMPLES / "rosenbrock.py"))["LEARNING_RATES"]
    assert set(dist) == set(table) & set(optimlab.list_optimizers())
    for name, d in dist.items():
        assert d < start, name
    assert min(dist.values()) < 1e-3  # the best of them essentially reaches (1, 1)


def test_learning_rates_small_good_divergent():
    out = run_example("learning_rates.py")
    bound = float(re.search(r"divergence above 2/lambda_max = ([\d.]+)", out)[1])
    start = float(re.search(r"loss at w=0: ([\d.]+)", out)[1])
    floor = float(re.search(r"best possible: ([\d.]+)", out)[1])
    rows = [
        (float(m[1]), float(m[2]), m[3])
        for m in re.finditer(r"^\s*([\d.e+-]+)\s+(\S+)\s+(good|too small|diverged)", out, re.M)
    ]
    assert len(rows) >= 6
    verdicts = [v for _, _, v in rows]
    assert verdicts[0] == "too small" and "good" in verdicts and verdicts[-1] == "diverged"
    for lr, loss, v in rows:
        # gradient descent on a quadratic diverges exactly above 2 / lambda_max
        assert (v == "diverged") == (lr > bound), lr
        if v == "good":
            assert loss - floor < 0.01 * (start - floor)
        if v == "diverged":
            assert not math.isfinite(loss) or loss > start


@pytest.mark.parametrize(
    "script,args",
    [
        ("adam_bias_correction.py", ["--steps", "20"]),
        ("rosenbrock.py", ["--steps", "50", "--optimizers", "sgd,adam"]),
        ("learning_rates.py", ["--epochs", "20"]),
    ],
)
def test_plot_option_writes_a_png(script, args, tmp_path):
    target = tmp_path / "fig.png"
    out = run_example(script, *args, "--plot", str(target))
    assert f"plot written to {target}" in out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("script", ["adam_bias_correction.py", "rosenbrock.py"])
def test_bad_arguments_exit_2(script):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--steps", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--steps must be >= 1" in proc.stderr


def test_examples_use_only_the_public_api():
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text()
        assert "optimlab.rules" not in text and "beta1 *" not in text, path.name


def test_teaching_doc_code_runs(tmp_path, monkeypatch):
    """The python blocks of docs/teaching.md run in order, and do what they say."""
    import numpy as np

    text = (EXAMPLES.parent / "docs" / "teaching.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    ns: dict = {"w0": np.array([3.0, -1.0])}
    for block in blocks:
        exec(compile(block, "docs/teaching.md", "exec"), ns)
    assert ns["loss_and_grads"](ns["w"])[0] < 0.5 * 10.0  # the runs went downhill
    assert set(ns["curves"]) == {"gd", "adam", "rmsprop"}
    assert not math.isfinite(ns["final"][10.0]) or ns["final"][10.0] > 5.0  # lr 10 diverges
    assert ns["opt"].step == 100 and (tmp_path / "opt.npz").exists()


# --------------------------------------------------------------------------- the LLM case
# The transformer examples train models: their --quick mode (a tiny model, a few steps)
# is what runs here; docs/llm.md shows the full runs' output.


def run_training_example(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_reference_parity_table():
    out = run_training_example("reference_parity.py")
    rows = re.findall(
        r"^(prodigy|lookahead)\s+(\S+)\s+.*?\s(\d\.\de[+-]\d+)\s+([\d.]+)$", out, re.M
    )
    assert [r[0] for r in rows] == ["prodigy"] * 6 + ["lookahead"] * 4
    for _, _, diff, moved in rows:
        assert float(diff) < 1e-10 and float(moved) > 0.1


@pytest.mark.slow  # trains small transformers: CI runs it (-m slow)
def test_transformer_warmup_quick():
    out = run_training_example("transformer_warmup.py", "--quick")
    seeds = {
        (m[1], m[2]): [float(v) for v in m[3].split()]
        for m in re.finditer(r"^\s+lr=(\S+)\s+(no warmup|warmup): ([\d. ]+?)\s+median", out, re.M)
    }
    assert len(seeds) == 4 and all(len(v) == 2 for v in seeds.values())
    verdicts = re.findall(
        r"^\s+lr=(\S+): ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]\s+-> (.+)$", out, re.M
    )
    assert len(verdicts) == 2
    for lr, mean, lo, hi, verdict in verdicts:
        diffs = np.subtract(seeds[(lr, "no warmup")], seeds[(lr, "warmup")])
        assert float(mean) == pytest.approx(diffs.mean(), abs=2e-4)
        assert float(lo) <= float(mean) <= float(hi)
        expected = (
            "warmup helps" if float(lo) > 0 else "warmup hurts" if float(hi) < 0 else "no clear"
        )
        assert verdict.startswith(expected)


@pytest.mark.slow  # trains small transformers: CI runs it (-m slow)
def test_weight_decay_quick():
    out = run_training_example("weight_decay.py", "--quick")
    rows = {
        float(m[1]): tuple(float(x) for x in m.groups()[1:])
        for m in re.finditer(
            r"^\s+([\d.e-]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M
        )
    }
    assert set(rows) == {0.0, 0.1, 1.0}
    adam_loss, adam_norm, adamw_loss, adamw_norm = rows[0.0]
    assert (adam_loss, adam_norm) == (adamw_loss, adamw_norm)  # no decay: the same rule
    # L2 in Adam pulls the small-gradient embedding rows to zero at ~lr per step;
    # AdamW's decoupled decay shrinks by the factor (1 - lr wd) per step only
    assert rows[1.0][1] < 0.5 * rows[1.0][3]
    assert rows[0.1][1] < rows[0.1][3]


@pytest.mark.slow  # trains small transformers: CI runs it (-m slow)
def test_ranking_transfer_quick():
    out = run_training_example("ranking_transfer.py", "--quick")
    orders = {}
    for block in re.split(r"^(mlp|transformer):$", out, flags=re.M)[1:]:
        orders.setdefault("pending", []).append(block)
    names = orders.pop("pending")
    for name, body in zip(names[::2], names[1::2], strict=True):
        orders[name] = re.findall(r"^\s+\d\. (\S+)", body, re.M)
    assert (
        sorted(orders["mlp"])
        == sorted(orders["transformer"])
        == sorted(["adamw", "muon", "lion", "adamw_schedulefree"])
    )
    tau = float(re.search(r"Kendall's tau between the two rankings: ([+-][\d.]+)", out)[1])
    pos = {o: i for i, o in enumerate(orders["transformer"])}
    pairs = [(a, b) for i, a in enumerate(orders["mlp"]) for b in orders["mlp"][i + 1 :]]
    agree = sum(pos[a] < pos[b] for a, b in pairs)
    assert tau == pytest.approx((2 * agree - len(pairs)) / len(pairs), abs=0.01)
