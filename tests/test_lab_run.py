"""compare/sweep end to end with the real engine (small budgets), reruns, divergence,
engine failures and interruptions."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from optimlab.lab import api, runner
from optimlab.lab.store import Store


def _finals(res) -> dict[str, float]:
    return {r["run_id"]: r["final_loss"] for r in res.records}


def test_compare_then_rerun_recomputes_nothing(tmp_path: Path) -> None:
    kw = dict(out=str(tmp_path), seeds=2)
    problem = "rosenbrock:start=random"  # seeds draw the start: two seeds, two runs
    res = api.compare(problem, ["sgd", "adam"], "1e-4:1e-3:2", 30, **kw)
    assert len(res) == 8
    assert res.counts.computed == 8 and res.counts.skipped == 0
    assert {r["status"] for r in res.records} == {"finished"}
    again = api.compare(problem, ["sgd", "adam"], "1e-4:1e-3:2", 30, **kw)
    assert again.counts.computed == 0 and again.counts.skipped == 8
    assert _finals(again) == _finals(res)
    # a wider grid computes only what is new
    wider = api.compare(problem, ["sgd", "adam"], "1e-5:1e-3:3", 30, **kw)
    assert wider.counts.computed == 4 and wider.counts.skipped == 8
    with Store(tmp_path) as store:
        assert store.counts()["finished"] == 12
        n_metrics = store.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        assert n_metrics == 12 * 30
        assert store.integrity_ok()


def test_diverged_runs_are_stored_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # F9: plain SGD on a ravine with a too-large step grows geometrically (no NaN yet)
    # until the divergence rule stops it; the other settings finish.
    res = api.sweep("ravine", {"sgd": {"lr": [1e-3, 0.01, 10.0]}}, 40, seeds=1, out=str(tmp_path))
    status = {r["lr"]: r for r in res.records}
    assert status[10.0]["status"] == "diverged"
    assert status[10.0]["diverged_step"] is not None
    assert status[1e-3]["status"] == status[0.01]["status"] == "finished"
    assert res.counts.diverged == 1 and res.counts.computed == 3
    curve = res.curve(status[10.0]["run_id"])
    assert len(curve["loss"]) == status[10.0]["diverged_step"] + 1
    assert np.isfinite(curve["loss"][:-1]).all()
    # diverged is a final result: not recomputed
    again = api.sweep("ravine", {"sgd": {"lr": [1e-3, 0.01, 10.0]}}, 40, seeds=1, out=str(tmp_path))
    assert again.counts.computed == 0 and again.counts.skipped == 3


def test_batched_equals_one_by_one(tmp_path: Path) -> None:
    grid = {"adam": {"lr": "1e-3:1e-1:3", "beta2": [0.99, 0.999]}, "momentum": {"lr": [1e-3]}}
    a = api.sweep("rosenbrock", grid, 25, seeds=1, out=str(tmp_path / "a"))
    b = api.sweep("rosenbrock", grid, 25, seeds=1, out=str(tmp_path / "b"), batched=False)
    assert len(a) == len(b) == 7
    fa, fb = _finals(a), _finals(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k] == pytest.approx(fb[k], rel=1e-12, abs=1e-300)


def test_sweep_over_schedules(tmp_path: Path) -> None:
    res = api.sweep(
        "ravine",
        {"adam": {"lr": [0.1]}},
        20,
        seeds=1,
        out=str(tmp_path),
        schedules=[None, "cosine", ("linear", {})],
    )
    assert len(res) == 3
    scheds = {r["schedule"]: r for r in res.records}
    assert set(scheds) == {None, "cosine", "linear"}
    lr_const = res.curve(scheds[None]["run_id"])["lr"]
    lr_cos = res.curve(scheds["cosine"]["run_id"])["lr"]
    assert np.all(lr_const == 0.1)
    assert lr_cos[0] == pytest.approx(0.1) and lr_cos[-1] < 0.01
    with pytest.raises(ValueError, match="unknown schedule 'cosin'; did you mean 'cosine'"):
        api.sweep("ravine", {"adam": {"lr": [0.1]}}, 20, schedules=["cosin"], out=str(tmp_path))


def _engine(fail_for: str | None = None, interrupt: bool = False) -> types.ModuleType:
    from optimlab.lab import engine

    def run(problem, settings, steps, **kw):
        if interrupt:
            raise KeyboardInterrupt
        if any(s.optimizer == fail_for for s in settings):
            raise RuntimeError(f"boom in {fail_for}")
        return engine.run(problem, settings, steps, **kw)

    return types.SimpleNamespace(Setting=engine.Setting, run=run)  # type: ignore[return-value]


def test_engine_failure_marks_only_that_batch_failed_and_rerun_retries(tmp_path: Path) -> None:
    from optimlab.lab.config import expand_grid

    configs = expand_grid("ravine", ["sgd", "adam"], [0.01, 0.1], 10, 1)
    counts = runner.execute(configs, str(tmp_path), engine=_engine(fail_for="sgd"))
    assert counts.failed == 2 and counts.computed == 2
    assert counts.errors == ["RuntimeError: boom in sgd"]
    with Store(tmp_path) as store:
        assert store.counts()["failed"] == 2
        assert store.counts()["finished"] + store.counts()["diverged"] == 2
    counts = runner.execute(configs, str(tmp_path))
    assert counts.computed == 2 and counts.skipped == 2 and counts.failed == 0
    with Store(tmp_path) as store:
        counts_now = store.counts()
        assert counts_now["finished"] + counts_now["diverged"] == 4
        assert counts_now["failed"] == 0


def test_interrupt_gives_claimed_runs_back(tmp_path: Path) -> None:
    from optimlab.lab.config import expand_grid

    configs = expand_grid("ravine", ["adam"], [0.01, 0.1], 10, 1)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(configs, str(tmp_path), engine=_engine(interrupt=True))
    with Store(tmp_path) as store:
        assert store.counts()["queued"] == 2 and store.counts()["running"] == 0
    assert runner.execute(configs, str(tmp_path)).computed == 2


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    api.compare(
        "ravine:start=random",
        ["adam"],
        [0.01, 0.1],
        15,
        2,
        out=str(tmp_path),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (60, 60)
    assert all(d1 <= d2 for (d1, _), (d2, _) in zip(seen, seen[1:], strict=False))


def test_bad_problem_and_optimizer_names_suggest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="did you mean 'rosenbrock'"):
        api.compare("rosenbrok", ["adam"], [0.1], 10, 1, out=str(tmp_path))
    with pytest.raises(ValueError, match="did you mean 'adam'"):
        api.compare("rosenbrock", ["adan"], [0.1], 10, 1, out=str(tmp_path))
    with pytest.raises(ValueError, match="use sweep for grids"):
        api.compare("rosenbrock", ["adam"], [0.1], 10, 1, hyperparams={"adam": {"beta1": [0.8]}})


def test_api_bad_shapes_of_arguments_are_clear_errors(tmp_path: Path) -> None:
    out = str(tmp_path)
    # one optimizer name as a string is that optimizer, not its letters 'a', 'd', ...
    res = api.compare("ravine", "adam", [0.1], 3, seeds=1, out=out)
    assert {r["optimizer"] for r in res.records} == {"adam"}
    with pytest.raises(ValueError, match=r"hyperparams\['adam'\] must be a mapping"):
        api.compare("ravine", ["adam"], [0.1], 3, seeds=1, hyperparams={"adam": 0.9}, out=out)
    with pytest.raises(ValueError, match=r"grid\['adam'\] must be a mapping"):
        api.sweep("ravine", {"adam": [0.1]}, 3, seeds=1, out=out)


def _dropout_net(seed: int = 0):  # noqa: ANN202
    import torch

    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)
    )
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def loss_fn(m, b):  # noqa: ANN001, ANN202
        return ((m(b[0]) - b[1]) ** 2).mean()

    return model, loss_fn, (x, y)


def test_evaluations_do_not_change_training_of_a_dropout_model() -> None:
    # eval_every is not part of a run's identity, so evaluating must not perturb training:
    # metrics are taken in eval mode and draw nothing from the training RNG
    pytest.importorskip("torch")
    from optimlab.lab.engine import Setting, run
    from optimlab.problems.user import from_callable

    problem = from_callable(_dropout_net, "dropout_net")
    settings = [Setting("adam", {"lr": 0.01}, seed=s) for s in (0, 1)]
    with pytest.warns(RuntimeWarning, match="vmap does not apply"):
        plain = run(problem, settings, 12)
    with pytest.warns(RuntimeWarning, match="vmap does not apply"):
        evaluated = run(problem, settings, 12, eval_every=1)
    for a, b in zip(plain, evaluated, strict=True):
        np.testing.assert_array_equal(a.loss, b.loss)
    assert len(evaluated[0].evals) == 13
    # and a run's dropout draws come from its seed, not from what the process did before
    import torch

    torch.manual_seed(12345)
    with pytest.warns(RuntimeWarning, match="vmap does not apply"):
        again = run(problem, settings[::-1], 12)
    np.testing.assert_array_equal(again[1].loss, plain[0].loss)
    assert not np.array_equal(plain[0].loss, plain[1].loss)  # seeds differ


def _shuffled_loader_net(seed: int = 0):  # noqa: ANN202
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)

    def loss_fn(m, b):  # noqa: ANN001, ANN202
        return ((m(b[0]) - b[1]) ** 2).mean()

    return model, loss_fn, DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)


def test_a_shuffling_data_loader_is_reproducible_batched_and_alone() -> None:
    # the loader shuffles with torch's global RNG: each seed must get its own stream, so
    # that a run does not depend on the process's history, and batched == one at a time
    pytest.importorskip("torch")
    from optimlab.lab.engine import Setting, run
    from optimlab.problems.user import from_callable

    problem = from_callable(_shuffled_loader_net, "shuffled")
    settings = [Setting("adam", {"lr": 0.01}, seed=s) for s in (0, 1)]
    first, second = run(problem, settings, 10), run(problem, settings, 10)
    alone = run(problem, settings, 10, batched=False)
    for a, b, c in zip(first, second, alone, strict=True):
        np.testing.assert_array_equal(a.loss, b.loss)
        np.testing.assert_allclose(a.loss, c.loss, rtol=1e-5)


def test_runs_that_another_process_failed_are_counted(tmp_path: Path) -> None:
    # while this call computes its first batch, "another process" claims the second
    # batch and fails it: this call must not report "0 failed" (the CLI would exit 0)
    from optimlab.lab import engine
    from optimlab.lab.config import expand_grid

    configs = expand_grid("ravine", ["adam", "sgd"], [0.1], 5, 1)
    sgd_ids = [c.run_id for c in configs if c.optimizer == "sgd"]

    def run(problem, settings, steps, **kw):  # noqa: ANN001, ANN202
        if settings[0].optimizer == "adam":
            with Store(tmp_path) as other:
                assert other.claim(sgd_ids) == sgd_ids
                other.fail(sgd_ids, "RuntimeError: elsewhere")
        return engine.run(problem, settings, steps, **kw)

    fake = types.SimpleNamespace(Setting=engine.Setting, run=run)
    counts = runner.execute(configs, str(tmp_path), engine=fake)
    assert counts.computed == 1 and counts.failed == 0
    assert counts.failed_by_others == 1
