"""The engine on torch models: vmap over stacked parameters == one run per setting.

The vmapped batch and the per-setting loop are two computations (batched matmuls): in
float64 they agree within ``tests/numerics.py``'s tolerance, in float32 within its stated
float32 bound. Isolation (a batch with diverging settings vs the batch without them) is
checked the same way, since dropping rows changes the batched matmuls' shapes. The
per-setting loop itself is checked against torch.optim.Adam/SGD stepping the same model
on the same batches.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import RTOL_FLOAT32, assert_close

import optimlab
from optimlab import problems
from optimlab.lab.engine import Setting, Trace, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small(name: str) -> problems.Problem:
    kw = {
        "mlp": {"hidden": 16, "n_train": 256, "n_val": 64, "batch_size": 32},
        "logistic": {"n_train": 256, "n_val": 64, "batch_size": 32},
        "least_squares": {"features": 6, "n_train": 50},
        "shapes": {"n_train": 128, "n_val": 64, "batch_size": 16},
        "adding": {"length": 6, "hidden": 8, "n_train": 128, "n_val": 64, "batch_size": 16},
    }[name]
    return problems.get(name, dtype="float64", **kw)


def _close(a: Trace, b: Trace, rtol: float | None = None) -> None:
    """Within the numerics tolerance (float64 models), or ``rtol`` where stated."""
    assert a.status == b.status and a.diverged_step == b.diverged_step
    assert len(a.loss) == len(b.loss)
    for field in ("loss", "grad_norm", "update_norm"):
        assert_close(getattr(a, field), getattr(b, field), rtol, what=field)
    np.testing.assert_array_equal(a.lr, b.lr)
    assert [s for s, _ in a.evals] == [s for s, _ in b.evals]
    for (_, ma), (_, mb) in zip(a.evals, b.evals, strict=True):
        assert ma.keys() == mb.keys()
        for k in ma:
            assert_close(ma[k], mb[k], rtol, what=k)


@pytest.mark.parametrize("name", ["mlp", "logistic", "least_squares", "shapes", "adding"])
def test_vmap_equals_per_setting_runs(name):
    p = _small(name)
    settings = [
        Setting("adam", {"lr": lr, "beta1": b1}, seed=s)
        for lr, b1, s in [(1e-3, 0.9, 0), (1e-2, 0.8, 1), (3e-2, 0.9, 0), (1e-2, 0.9, 2)]
    ]
    settings.append(Setting("adam", {"lr": 1e-2}, "warmup_cosine", seed=1))
    batched = run(p, settings, 12, eval_every=5)
    alone = run(p, settings, 12, eval_every=5, batched=False)
    for a, b in zip(batched, alone, strict=True):
        assert a.status == "finished" and a.trajectory is None
        _close(a, b)
    assert [s for s, _ in batched[0].evals] == [0, 5, 10, 12]


def test_shared_seed_batches_and_every_optimizer():
    p = _small("mlp")
    for opt in optimlab.list_optimizers():  # Muon too: its other parameters go to AdamW
        settings = [Setting(opt, {"lr": lr}) for lr in (1e-3, 1e-2)]
        batched = run(p, settings, 4)
        alone = run(p, settings, 4, batched=False)
        for a, b in zip(batched, alone, strict=True):
            _close(a, b)


def test_sequential_runs_match_torch_optim():
    """The per-setting loop (the rule on the model's parameters) == torch.optim on the task."""
    p = _small("mlp")
    cases = [
        (
            "adam",
            {"lr": 1e-2, "weight_decay": 0.01},
            torch.optim.Adam,
            {"lr": 1e-2, "weight_decay": 0.01},
        ),
        ("momentum", {"lr": 0.05}, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    ]
    for name, hp, cls, torch_hp in cases:
        tr = run(p, [Setting(name, hp, seed=3)], 15, batched=False)[0]
        task = p.torch_task(3)
        opt = cls(task.model.parameters(), **torch_hp)
        losses = []
        for _ in range(15):
            opt.zero_grad()
            loss = task.loss(task.model, next(task.batches))
            loss.backward()
            losses.append(loss.item())
            opt.step()
        np.testing.assert_allclose(tr.loss, losses, rtol=1e-12)
        with torch.no_grad():
            final = task.metrics(task.model, task.val_batch)
        assert tr.evals[-1][0] == 15
        np.testing.assert_allclose(tr.evals[-1][1]["loss"], final["loss"].item(), rtol=1e-12)


def test_divergence_in_a_vmapped_batch_leaves_the_others_untouched():
    """F8/F9 on a torch model: one setting blows up, the others keep their numbers."""
    p = _small("mlp")
    ok = [Setting("sgd", {"lr": 0.1}, seed=0), Setting("sgd", {"lr": 0.01}, seed=1)]
    bad = [Setting("sgd", {"lr": 1e4}, seed=0), Setting("sgd", {"lr": 1e6}, seed=1)]
    mixed = run(p, [bad[0], ok[0], bad[1], ok[1]], 20, eval_every=10)
    clean = run(p, ok, 20, eval_every=10)
    for a, b in zip(mixed[1::2], clean, strict=True):
        assert a.status == "finished"
        _close(a, b)
    for tr in mixed[0::2]:
        assert tr.status == "diverged" and tr.diverged_step is not None
        assert len(tr.loss) == tr.diverged_step + 1 and np.isnan(tr.update_norm[-1])
        alone = run(p, [tr.setting], 20, batched=False)[0]
        assert alone.status == "diverged" and alone.diverged_step == tr.diverged_step


def test_progress_on_torch():
    seen: list[int] = []
    run(
        _small("logistic"),
        [Setting("adam", {"lr": 1e-2}, seed=s) for s in (0, 1)],
        5,
        progress=seen.append,
    )
    assert seen == [2, 4, 6, 8, 10]


def test_test_function_torch_tasks_run_sequentially_too():
    """The torch view of a test function gives the NumPy engine's numbers."""
    p = problems.get("rosenbrock")
    settings = [Setting("adam", {"lr": 1e-2})]
    a = run(p, settings, 30)[0]
    task = p.torch_task(0)
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-2)
    for t in range(30):
        opt.zero_grad()
        loss = task.loss(task.model, next(task.batches))
        np.testing.assert_allclose(loss.item(), a.loss[t], rtol=1e-10)
        loss.backward()
        opt.step()


def test_float32_models_run_batched():
    """The default dtype: vmap and per-setting runs agree to float32 rounding."""
    p = problems.get("mlp", hidden=16, n_train=256, n_val=64, batch_size=32)
    assert p.init(0)["0.weight"].dtype == torch.float32
    settings = [Setting("adamw", {"lr": lr}, seed=s) for lr, s in [(1e-3, 0), (1e-2, 1)]]
    batched = run(p, settings, 10, eval_every=5)
    alone = run(p, settings, 10, eval_every=5, batched=False)
    for a, b in zip(batched, alone, strict=True):
        assert a.loss.dtype == np.float64 and a.status == "finished"
        assert_close(a.loss, b.loss, RTOL_FLOAT32)  # float32 models
        assert set(a.evals[-1][1]) == {"loss", "accuracy"}


def _storm_problem(storm_seed: int) -> problems.Problem:
    """Linear regression whose batches turn NaN from step 3 on, for one seed only."""

    def make(seed: int):
        g = torch.Generator().manual_seed(7)
        x = torch.randn(32, 4, generator=g, dtype=torch.float64)
        y = x.sum(1)

        def batches():
            step = 0
            while True:
                xb = x if not (seed == storm_seed and step >= 3) else torch.full_like(x, np.nan)
                yield xb, y
                step += 1

        model = torch.nn.Linear(4, 1).double()
        return model, lambda m, b: ((m(b[0])[:, 0] - b[1]) ** 2).mean(), batches(), (x, y)

    return problems.from_callable(make, name="storm")


def test_nan_storm_in_one_seeds_data_marks_only_that_setting():
    """F8 on vmap with per-seed batches: NaN data for seed 1 stops only seed 1's setting."""
    settings = [Setting("adam", {"lr": 1e-2}, seed=s) for s in (0, 1, 2)]
    mixed = run(_storm_problem(storm_seed=1), settings, 10, eval_every=5)
    clean = run(_storm_problem(storm_seed=-1), settings, 10, eval_every=5)
    assert mixed[1].status == "diverged" and mixed[1].diverged_step == 3
    assert np.isnan(mixed[1].loss[-1]) and len(mixed[1].loss) == 4
    np.testing.assert_array_equal(mixed[1].loss[:3], clean[1].loss[:3])
    for i in (0, 2):
        assert mixed[i].status == "finished"
        _close(mixed[i], clean[i])
