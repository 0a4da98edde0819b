"""Your own model in three lines: a function, a TorchTask or a problem object passed to
``compare`` directly; ``file.py:function`` and ``module:function`` found from the current
folder; temporary result folders removed unless kept."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import optimlab as ol
from optimlab import problems
from optimlab.cli import main
from optimlab.train.task import TorchTask

MODELS = textwrap.dedent("""
    import torch

    def mlp(seed):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, :1] - x[:, 1:2]).tanh()
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
        return model, loss, [(x[i:i + 32], y[i:i + 32]) for i in range(0, 64, 32)], (x[64:], y[64:])
""")


def _make_regression(seed: int) -> tuple:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    model = torch.nn.Linear(3, 1).double()
    return model, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), (x[:48], y[:48]), (x[48:], y[48:])


def test_a_function_in_three_lines() -> None:
    res = ol.lab.compare(_make_regression, ["adam", "sgd"], lrs=[0.01, 0.1], steps=20, seeds=2)
    assert {r["problem"] for r in res.records} == {"_make_regression"}  # keyed by its name
    (study,) = res.studies()
    assert study.evaluation == "held-out" and study.metric.short == "held-out loss"
    assert "held-out loss" in res.table()
    # a name of your own, and the name is what the store keys the runs by
    res = ol.lab.compare(_make_regression, ["adam"], [0.1], 5, seeds=1, name="regression")
    assert res.records[0]["problem"] == "regression"
    assert problems.get("regression").name == "regression"


def test_a_task_object_and_a_problem_object() -> None:
    model, loss, data, val = _make_regression(0)
    before = [p.detach().clone() for p in model.parameters()]
    task = TorchTask(model, loss, iter(lambda: data, None), val)
    res = ol.lab.compare(task, ["sgd"], [0.01, 0.1], 10, seeds=3, name="my_task")
    # one task object: fixed weights and batches, so one seed, and the note says why
    assert {r["seed"] for r in res.records} == {0} and len(res) == 2
    assert any("seeds change nothing" in n for n in res.notes)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    obj = problems.get("ravine", condition=10.0, start="random")
    res = ol.lab.compare(obj, ["adam"], [0.1], 10, seeds=2, name="my_ravine")
    assert len(res) == 2 and res.studies()[0].evaluation == "objective"
    with pytest.raises(ValueError, match="name is needed"):
        ol.lab.compare(lambda: _make_regression(0), ["sgd"], [0.1], 5, seeds=1)
    with pytest.raises(ValueError, match="'mlp' is a built-in problem"):
        ol.lab.compare(_make_regression, ["sgd"], [0.1], 5, seeds=1, name="mlp")


def test_the_temporary_folder_is_removed_unless_kept() -> None:
    res = ol.lab.compare("ravine", ["sgd"], [0.01], 5, seeds=1)
    folder = res.folder
    assert folder.is_dir()
    subset = res.filter(optimizer="sgd")
    del res
    gc.collect()
    assert folder.is_dir()  # results filtered from it still read it
    assert len(subset.curve(subset.records[0]["run_id"])["loss"]) == 5
    del subset
    gc.collect()
    assert not folder.exists()
    kept = ol.lab.compare("ravine", ["sgd"], [0.01], 5, seeds=1, keep=True)
    path = kept.folder
    assert f"results kept in {path}" in kept.notes
    del kept
    gc.collect()
    assert path.is_dir()
    shutil.rmtree(path)


def test_no_temporary_folder_is_left_at_exit(tmp_path: Path) -> None:
    code = (
        "import optimlab as ol\n"
        "res = ol.lab.compare('ravine', ['sgd'], [0.1], 5, seeds=1)\n"
        "print(res.folder)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not Path(proc.stdout.strip()).exists()


def test_problem_files_and_modules_resolve_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "olab_my_models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for spec in ("olab_my_models.py:mlp", "olab_my_models:mlp"):
        argv = ["compare", "--problem", spec, "--optimizer", "adam", "--lrs", "0.01"]
        argv += ["--steps", "10", "--seeds", "2", "--out", f"out_{spec[-5:-4]}", "-q"]
        code = main([*argv, "--no-report"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "held-out loss" in " ".join(out.split())
    assert str(tmp_path) not in sys.path  # the current folder was on the path only to import
