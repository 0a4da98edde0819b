"""User problems: ``problems.get("module:function")``, ``from_callable``, and their errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from optimlab import problems
from optimlab.lab.engine import Setting, run

MODULE = textwrap.dedent("""
    import torch

    def _data():
        g = torch.Generator().manual_seed(100)
        x = torch.randn(64, 3, generator=g, dtype=torch.float64)
        y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        return x, y

    def loss_fn(model, batch):
        x, y = batch
        return ((model(x)[:, 0] - y) ** 2).mean()

    def make(seed):
        x, y = _data()
        model = torch.nn.Linear(3, 1).double()
        return model, loss_fn, [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]

    def full_batch():
        x, y = _data()
        return torch.nn.Linear(3, 1).double(), loss_fn, (x, y), (x[:8], y[:8])

    def with_batchnorm():
        x, y = _data()
        model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1)).double()
        return model, loss_fn, [(x[:32], y[:32]), (x[32:], y[32:])]

    def one_shot():
        x, y = _data()
        return torch.nn.Linear(3, 1).double(), loss_fn, iter([(x, y), (x, y)])

    def bad():
        return 3
""")


@pytest.fixture
def usermod(tmp_path, monkeypatch):
    (tmp_path / "olab_usermod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "olab_usermod.py"


def test_module_function_problem(usermod):
    p = problems.get("olab_usermod:make")
    assert p.kind == "torch" and p.name == "olab_usermod:make"
    a, b, c = p.torch_task(0), p.torch_task(0), p.torch_task(1)
    assert torch.equal(a.model.weight, b.model.weight)
    assert not torch.equal(a.model.weight, c.model.weight)
    first = [next(a.batches) for _ in range(5)]
    assert torch.equal(first[4][0], first[0][0])  # a list of 4 batches is cycled
    assert torch.equal(a.val_batch[0], first[0][0])  # val_batch defaults to the first batch
    assert set(a.metrics(a.model, a.val_batch)) == {"loss"}
    rng_before = torch.random.get_rng_state()
    p.torch_task(5)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # caller's RNG untouched


def test_file_path_and_full_batch(usermod):
    p = problems.get(f"{usermod}:full_batch")
    task = p.torch_task(0)
    x, y = next(task.batches)
    assert x.shape == (64, 3) and torch.equal(next(task.batches)[0], x)
    assert task.val_batch[0].shape == (8, 3)


def test_engine_runs_user_problems_batched_and_sequentially(usermod):
    p = problems.get("olab_usermod:make")
    settings = [Setting("adam", {"lr": lr}, seed=s) for lr, s in [(1e-2, 0), (1e-1, 1), (3e-2, 0)]]
    batched = run(p, settings, 20, eval_every=10)
    alone = run(p, settings, 20, eval_every=10, batched=False)
    for a, b in zip(batched, alone, strict=True):
        assert a.status == "finished"
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-10, atol=0)
        np.testing.assert_allclose(a.evals[-1][1]["loss"], b.evals[-1][1]["loss"], rtol=1e-10)
    assert batched[1].loss[-1] < batched[1].loss[0]


def test_models_vmap_cannot_run_fall_back_to_one_at_a_time(usermod):
    p = problems.get("olab_usermod:with_batchnorm")
    settings = [Setting("sgd", {"lr": lr}) for lr in (1e-2, 1e-1)]
    with pytest.warns(RuntimeWarning, match="one setting at a time"):
        batched = run(p, settings, 6)
    alone = run(p, settings, 6, batched=False)
    for a, b in zip(batched, alone, strict=True):
        np.testing.assert_array_equal(a.loss, b.loss)


def test_from_callable():
    def fn():
        model = torch.nn.Linear(2, 1).double()
        x = torch.ones(4, 2, dtype=torch.float64)
        return model, lambda m, b: (m(b[0]) ** 2).mean(), [(x,)]

    p = problems.from_callable(fn, name="mine")
    assert p.name == "mine"
    tr = run(p, [Setting("sgd", {"lr": 0.1})], 5)[0]
    assert tr.status == "finished" and tr.loss[-1] < tr.loss[0]


def test_user_problem_errors(usermod, tmp_path):
    with pytest.raises(ValueError, match="cannot import problem module 'olab_no_such_mod'"):
        problems.get("olab_no_such_mod:make")
    with pytest.raises(ValueError, match="has no function 'nope' .*make"):
        problems.get("olab_usermod:nope")
    with pytest.raises(FileNotFoundError, match="problem file not found"):
        problems.get(f"{tmp_path / 'missing.py'}:make")
    with pytest.raises(ValueError, match="'module:function'"):
        problems.get(":make")
    with pytest.raises(ValueError, match="takes no keyword arguments"):
        problems.get("olab_usermod:make", dim=3)
    with pytest.raises(ValueError, match=r"must return \(model, loss_fn, data\)"):
        problems.get("olab_usermod:bad").torch_task(0)
    task = problems.get("olab_usermod:one_shot").torch_task(0)
    next(task.batches), next(task.batches)
    with pytest.raises(ValueError, match="data ran out after 2 batches"):
        next(task.batches)
    with pytest.raises(ValueError, match="fn must be callable"):
        problems.from_callable(3)


@pytest.mark.parametrize(
    "code, message",
    [
        ("def make(:\n    pass\n", "SyntaxError: "),
        ("import olab_no_such_module_either\n", "ModuleNotFoundError: No module named"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ],
)
def test_a_broken_problem_file_is_one_line(tmp_path, code, message):
    """A syntax error or an exception in the user's file is a ValueError naming the file
    (the CLI turns it into one line and exit 2), and leaves no half-loaded module."""
    import sys

    path = tmp_path / "olab_broken_problem.py"
    path.write_text(code)
    with pytest.raises(ValueError) as info:
        problems.get(f"{path}:make")
    text = str(info.value)
    assert text.startswith(f"cannot load problem file '{path}': {message}"), text
    assert "\n" not in text
    assert "olab_broken_problem" not in sys.modules


def test_a_module_that_fails_on_import_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "olab_failing_mod.py").write_text("x = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        ValueError,
        match="^cannot import problem module 'olab_failing_mod': "
        "ZeroDivisionError: division by zero$",
    ):
        problems.get("olab_failing_mod:make")


def test_a_model_without_trainable_parameters_is_refused():
    def frozen():
        model = torch.nn.Linear(2, 1).double().requires_grad_(False)
        x = torch.ones(4, 2, dtype=torch.float64)
        return model, lambda m, b: m(b[0]).mean(), [(x,)]

    p = problems.from_callable(frozen, name="frozen")
    for batched in (True, False):
        with pytest.raises(ValueError, match="'frozen': the model has no trainable parameters"):
            run(p, [Setting("sgd", {"lr": 0.1}), Setting("sgd", {"lr": 0.2})], 3, batched=batched)
