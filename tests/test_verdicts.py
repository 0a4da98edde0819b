"""Verdicts users can trust: what is ranked (the evaluation after the last update), honest
seeds, intervals and ties, tuning budgets, rankings that disagree, other metrics."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from numerics import assert_close

from optimlab import problems
from optimlab.cli import main
from optimlab.lab import analysis, api, stats, verdicts
from optimlab.lab.config import RunConfig, full_hyperparams
from optimlab.lab.record import Trace
from optimlab.lab.results import Results
from optimlab.lab.store import Store

STEPS = 10


def _store(folder: Path, problem: str, runs: dict[tuple[str, float, int], tuple]) -> Results:
    """Hand-made runs: (optimizer, lr, seed) -> (per-step losses, held-out loss after the
    last update, held-out accuracy); a ``None`` held-out loss marks a diverged run."""
    results, configs = {}, []
    for (opt, lr, seed), (loss, held_out, accuracy) in runs.items():
        cfg = RunConfig(problem, opt, full_hyperparams(opt, {"lr": lr}), STEPS, seed=seed)
        configs.append(cfg)
        loss = np.asarray(loss, dtype=np.float64)
        n = len(loss)
        evals = [] if held_out is None else [(STEPS, {"loss": held_out, "accuracy": accuracy})]
        results[cfg.run_id] = Trace(
            "finished" if held_out is not None else "diverged",
            loss,
            np.full(n, lr),
            np.ones(n),
            np.ones(n),
            np.arange(1, n + 1) * 0.1,
            evals=evals,
            diverged_step=None if held_out is not None else n - 1,
        )
    with Store(folder) as store:
        store.add(configs)
        store.claim([c.run_id for c in configs])
        assert len(store.finish(results)) == len(results)
    return Results.load(folder)


def _falling(final: float) -> np.ndarray:
    return np.linspace(2.0, final, STEPS)


def test_ranking_uses_the_held_out_loss_after_the_last_update(tmp_path: Path) -> None:
    # adam has the lower training loss on every seed; sgd the lower held-out loss after
    # the last update: the held-out loss decides, and the table says the rankings disagree
    runs = {}
    for seed in range(3):
        runs[("adam", 0.01, seed)] = (_falling(0.10 + 0.01 * seed), 0.90 + 0.01 * seed, 0.60)
        runs[("sgd", 0.1, seed)] = (_falling(0.40 + 0.01 * seed), 0.70 + 0.01 * seed, 0.70)
    res = _store(tmp_path, "mlp", runs)
    (study,) = res.studies()
    assert study.metric.key == "loss" and study.metric.short == "held-out loss"
    assert list(study.best()) == ["sgd", "adam"]
    rows = {r["optimizer"]: r for r in res.best()}
    assert rows["sgd"]["rank"] == 1 and rows["sgd"]["median"] == pytest.approx(0.71)
    assert rows["adam"]["versus"] == "worse"  # worse on every one of the 3 shared seeds
    # training loss: the mean of the last STEPS // 10 = 1 mini-batch losses
    assert rows["adam"]["train_loss"] == pytest.approx(0.11)
    text = res.table()
    assert "ranked by held-out loss after the last update" in text
    assert "by train loss the order would be adam, sgd" in text
    # ranking by training loss or by accuracy instead
    assert list(res.studies("train_loss")[0].best()) == ["adam", "sgd"]
    (acc,) = res.studies("accuracy")
    assert acc.metric.higher_better and list(acc.best()) == ["sgd", "adam"]
    assert res.best("accuracy")[0]["median"] == pytest.approx(0.7)


def test_the_default_comparison_ranks_the_held_out_loss_after_the_last_update() -> None:
    # the real engine, small: every rank-1 row holds the best held-out median of all
    # settings, and each row's median is the median over seeds of the stored evaluation
    res = api.compare("mlp", ["sgd", "adam"], [0.01, 0.1], 20, seeds=3)
    (study,) = res.studies()
    rows = res.best()
    for row in rows:
        mine = [
            r["eval_loss"]
            for r in res.records
            if r["optimizer"] == row["optimizer"] and r["lr"] == row["lr"]
        ]
        assert row["median"] == float(np.median(mine))
        assert row["ci_lo"] <= row["median"] <= row["ci_hi"]
    assert rows[0]["rank"] == 1
    assert rows[0]["median"] == min(s.median for s in study.settings)
    # the engine evaluated periodically ("auto": about 20 per run) and after the last update
    with res.curves() as curves:
        steps = [k for k, _ in curves.evals(res.records[0]["run_id"])]
    assert steps[-1] == 20 and len(steps) == 21


def test_steps_1_reports_the_loss_after_one_update(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = problems.get("rosenbrock")
    x0 = p.init(0)
    after = float(p.loss(x0 - 0.001 * p.grad(x0)))  # one SGD update from the start
    assert after != p.loss(x0)
    res = api.compare("rosenbrock", ["sgd"], [0.001], 1, seeds=1, out=str(tmp_path))
    (row,) = res.best()
    assert_close(np.array(row["median"]), np.array(after))
    code = main(
        ["compare", "--problem", "rosenbrock", "--optimizer", "sgd", "--lrs", "0.001"]
        + ["--steps", "1", "--seeds", "1", "--out", str(tmp_path), "-q", "--no-report"]
    )
    out = capsys.readouterr().out
    assert code == 0 and f" {after:.4g} " in out and " 4 " not in out  # 4: the initial loss


def test_a_deterministic_problem_is_not_reported_as_3_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # beale from its fixed start: seeds cannot change anything, so one seed runs
    res = api.compare("beale", ["adam", "sgd"], [0.01, 0.1], 20, seeds=3)
    assert {r["seed"] for r in res.records} == {0} and len(res) == 4
    assert any("seeds change nothing" in n and "instead of 3" in n for n in res.notes)
    text = res.table()
    assert "3 seeds" not in text and "1 run (seeds change nothing here)" in text
    code = main(
        ["compare", "--problem", "beale", "--optimizer", "adam", "--lrs", "0.01,0.1"]
        + ["--steps", "20", "--seeds", "3", "--out", str(tmp_path), "-q", "--no-report"]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "3 seeds" not in out and "1 run" in out
    assert "runs: 2 requested" in out

    # a user problem whose runs ignore the seed: 3 seeds ran, and the table says they gave
    # identical runs instead of "3 seeds"
    def fixed() -> tuple:
        import torch

        x = torch.linspace(-1, 1, 16, dtype=torch.float64)[:, None]
        model = torch.nn.Linear(1, 1).double()
        with torch.no_grad():
            model.weight.fill_(0.5)
            model.bias.fill_(0.0)
        return model, lambda m, b: ((m(b[0]) - 2 * b[0]) ** 2).mean(), (x,)

    res = api.compare(fixed, ["sgd"], [0.1, 0.3], 5, seeds=3)
    assert {r["seed"] for r in res.records} == {0, 1, 2}
    (study,) = res.studies()
    assert study.identical and study.budget == "5 steps, 1 run (3 seeds gave identical runs)"
    assert "3 seeds" not in res.table().replace("(3 seeds gave identical runs)", "")


def test_seeds_state_what_they_change() -> None:
    assert problems.get("beale").seed_changes == ()
    assert problems.get("beale", start="random").seed_changes == ("start",)
    assert problems.get("mlp").seed_changes == ("init", "batch order")
    assert problems.get("least_squares").seed_changes == ("init",)  # full batch: no order
    assert problems.get("mlp").evaluation == "held-out"
    assert problems.get("least_squares").evaluation == "training"
    assert problems.get("ravine").evaluation == "objective"


def test_intervals_and_paired_ties() -> None:
    assert stats.bootstrap_median(np.array([3.0, 1.0, 2.0])) == (1.0, 3.0)
    assert stats.bootstrap_median(np.array([5.0])) == (5.0, 5.0)
    lo, hi = stats.bootstrap_median(np.arange(20.0))
    assert 5.0 <= lo < 9.5 < hi <= 14.0  # narrower than the range with more seeds
    assert stats.bootstrap_median(np.array([1.0, math.inf, math.inf]))[1] == math.inf
    a = np.array([1.0, 2.0, 3.0])
    assert stats.paired_worse(a, a + 0.5)  # worse on every seed
    assert not stats.paired_worse(a, np.array([1.5, 1.9, 3.5]))  # better on one seed
    assert not stats.paired_worse(a, a)
    assert stats.paired_worse(a, np.array([math.inf, math.inf, math.inf]))
    # both diverged on a seed is no difference there
    assert not stats.paired_worse(np.array([math.inf, 1.0]), np.array([math.inf, 1.0]))


def test_ties_are_called_on_shared_seeds(tmp_path: Path) -> None:
    runs = {}
    for seed in range(3):
        runs[("adam", 0.01, seed)] = (_falling(0.5), 1.0 + seed, 0.5)
        runs[("sgd", 0.01, seed)] = (_falling(0.5), [1.1, 2.05, 2.9][seed], 0.5)  # better once
        runs[("momentum", 0.01, seed)] = (_falling(0.5), 1.5 + seed, 0.5)  # worse on each
    rows = {r["optimizer"]: r for r in _store(tmp_path, "mlp", runs).best()}
    assert rows["adam"]["rank"] == 1 and rows["adam"]["versus"] == "-"
    assert rows["sgd"]["versus"] == "tie" and rows["momentum"]["versus"] == "worse"
    assert (rows["adam"]["ci_lo"], rows["adam"]["ci_hi"]) == (1.0, 3.0)


def test_different_tuning_budgets_are_stated_and_warned(tmp_path: Path) -> None:
    res = api.sweep(
        "ravine:start=random",
        {"adam": {"lr": "1e-3:1e-1:3", "beta2": [0.99, 0.999]}, "sgd": {"lr": [0.01]}},
        20,
        seeds=2,
        out=str(tmp_path),
    )
    (study,) = res.studies()
    assert study.tried() == {"adam": 6, "sgd": 1}
    rows = {r["optimizer"]: r for r in res.best()}
    assert rows["adam"]["tried"] == 6 and rows["sgd"]["tried"] == 1
    note = verdicts.budget_note(study)
    assert note is not None and "adam 6, sgd 1" in note
    text = " ".join(res.table().split())
    assert "tuning budgets differ (settings tried: adam 6, sgd 1)" in text
    assert "settings tried" in text  # the column appears when budgets differ


def test_rank_by_steps_to_target_and_bad_metrics(tmp_path: Path) -> None:
    res = api.compare("ravine:start=random", ["sgd", "adam"], [0.01, 0.1], 40, seeds=2)
    (by_steps,) = res.studies("steps")
    rows = res.best("steps")
    assert [r["optimizer"] for r in rows] == list(by_steps.best())
    assert rows[0]["steps_to_target"] <= rows[1]["steps_to_target"]
    with pytest.raises(ValueError, match="unknown metric to rank by 'acuracy'"):
        res.studies("acuracy")
    # the CLI refuses an unknown metric before running anything
    code = main(["compare", "--out", str(tmp_path), "--rank-by", "acuracy", "-q"])
    assert code == 2 and not (tmp_path / "optimlab.sqlite").exists()


def test_target_reached_at_the_end_counts(tmp_path: Path) -> None:
    # the optimizer whose best median sets the target reaches it after its last update
    res = api.compare("ravine:start=random", ["sgd", "adam"], [1e-3, 0.1], 30, seeds=3)
    rows = res.best()
    weakest = rows[-1]
    assert weakest["steps_to_target"] <= 30 and weakest["reached"] >= 2


def test_records_carry_the_training_loss_tail(tmp_path: Path) -> None:
    res = api.compare("mlp", ["adam"], [0.01], 20, seeds=1, out=str(tmp_path))
    (rec,) = res.records
    curve = res.curve(rec["run_id"])
    k = analysis.tail_steps(20)
    assert k == 2 and rec["tail_loss"] == pytest.approx(curve["loss"][-k:].mean(), rel=1e-12)


def test_tables_never_cut_a_number(tmp_path: Path) -> None:
    from optimlab.lab.tables import render

    header = ["#", "setting with a long label", "value [95% CI]"]
    rows = [["1", "adamw lr=0.00316 weight_decay=0.1", "1.754e-94\n[7.99e-100, 7.92e-26]"]]
    for width in (80, 60, 40, 30, 20):
        text = render(header, rows, width)
        assert max(len(line) for line in text.splitlines()) <= width, text
        for number in ("1.754e-94", "7.99e-100", "7.92e-26", "0.00316"):
            assert re.search(rf"(?<![\d.e-]){re.escape(number)}(?![\d.e-])", text), (width, text)
    assert "…" not in render(header, rows, 20)


def test_a_metric_a_problem_lacks_falls_back_to_loss_with_a_note() -> None:
    res = api.compare(["ravine:start=random", "mlp"], ["adam", "sgd"], [0.01, 0.1], 10, seeds=2)
    mlp, ravine = res.studies("accuracy")
    assert mlp.metric.key == "accuracy" and mlp.metric.higher_better
    assert ravine.metric.key == "loss"
    assert ravine.notes == ["ravine(start=random) records no accuracy: ranked by loss"]
    assert "note: ravine(start=random) records no accuracy: ranked by loss" in res.table("accuracy")


def test_summary_across_problems_is_the_performance_profile_score() -> None:
    from optimlab.lab import summary

    res = api.compare(
        ["ravine:start=random", "rosenbrock:start=random"], ["adam", "sgd"], [0.01, 0.1], 40, 2
    )
    with res.curves() as curves:
        tables = [(s, verdicts.best_table(s, curves)) for s in res.studies()]
    rows = {r["optimizer"]: r for r in summary.summary_rows(tables)}
    for study, table in tables:
        key = f"{study.label} ({study.steps} steps)"
        steps = {r["optimizer"]: max(1.0, r["steps_to_target"]) for r in table}
        for opt, r in rows.items():
            assert r["ratios"][key] == steps[opt] / min(steps.values())
            assert r["ranks"][key] == next(t["rank"] for t in table if t["optimizer"] == opt)
    for r in rows.values():  # the normalised area under rho(tau), 1 <= tau <= 4, exactly
        expected = np.mean([max(0.0, 4.0 - v) for v in r["ratios"].values()]) / 3.0
        assert r["score"] == pytest.approx(expected, abs=1e-15)
        taus = np.linspace(1, 4, 30001)
        area = np.trapezoid(summary.profile(r["ratios"], taus), taus) / 3.0
        assert area == pytest.approx(r["score"], abs=1e-3)
    assert summary.score({"a": 1.0, "b": 2.0, "c": math.inf}) == pytest.approx(5 / 9)


def test_sweeps_answer_their_question_axis_by_axis() -> None:
    from optimlab.lab import summary

    res = api.sweep(
        "rosenbrock:start=random",
        {"adam": {"lr": [0.01, 0.1], "beta2": [0.99, 0.999]}, "sgd": {"lr": [1e-3]}},
        30,
        seeds=2,
        schedules=[None, "cosine"],
    )
    (study,) = res.studies()
    axes = summary.swept_axes(study)
    assert set(axes) == {"beta2", "schedule"}
    assert [(r["optimizer"], r["value"]) for r in axes["beta2"]] == [
        ("adam", 0.99),
        ("adam", 0.999),
    ]
    assert {(r["optimizer"], r["value"]) for r in axes["schedule"]} == {
        ("adam", "constant"),
        ("adam", "cosine"),
        ("sgd", "constant"),
        ("sgd", "cosine"),
    }
    for r in axes["beta2"]:  # the best median among the settings with that value
        mine = [s for s in study.settings if s.runs[0]["hyperparams"].get("beta2") == r["value"]]
        assert r["median"] == min(s.median for s in mine) and r["tried"] == 4
    text = res.table()
    assert "the best setting at each beta2, per optimizer" in text
    assert "the best setting at each schedule, per optimizer" in text
