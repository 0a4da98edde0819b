"""Analysis on hand-made runs with known answers: best setting by median over seeds,
spread, targets, steps/time to target, LR sensitivity and converging-range width."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from optimlab.lab import analysis, verdicts
from optimlab.lab.config import RunConfig, full_hyperparams
from optimlab.lab.record import Trace
from optimlab.lab.results import Results
from optimlab.lab.store import Store

STEPS = 11


def _store(folder: Path, finals: dict[tuple[str, float], list[float | None]]) -> Results:
    """Runs whose loss falls linearly from 10 to the given final value; None = diverged."""
    results, configs = {}, []
    for (opt, lr), per_seed in finals.items():
        for seed, final in enumerate(per_seed):
            cfg = RunConfig("ravine", opt, full_hyperparams(opt, {"lr": lr}), STEPS, seed=seed)
            configs.append(cfg)
            if final is None:
                loss = np.array([10.0] * 3 + [1e9])
                status, dstep = "diverged", 3
            else:
                loss = np.linspace(10.0, final, STEPS)
                status, dstep = "finished", None
            n = len(loss)
            results[cfg.run_id] = Trace(
                status,
                loss,
                np.full(n, lr),
                loss,
                loss,
                np.arange(1, n + 1) * 0.5,
                diverged_step=dstep,
            )
    with Store(folder) as store:
        store.add(configs)
        store.claim([c.run_id for c in configs])
        assert len(store.finish(results)) == len(results)
    return Results.load(folder)


def test_best_is_lowest_median_and_divergence_counts_as_inf(tmp_path: Path) -> None:
    res = _store(
        tmp_path,
        {
            ("adam", 0.01): [2.0, 1.0, 3.0],
            ("adam", 0.1): [0.1, None, None],  # best single run, but diverges on most seeds
            ("adam", 0.001): [4.0, 4.0, 5.0],
            ("sgd", 0.01): [
                6.0,
                7.0,
                8.0,
            ],
        },
    )
    (study,) = res.studies()
    best = study.best()
    assert list(best) == ["adam", "sgd"]  # ordered by median
    a = best["adam"]
    assert a.lr == 0.01 and a.median == 2.0 and a.n_seeds == 3 and a.n_diverged == 0
    assert (a.q25, a.q75, a.min, a.max) == (1.5, 2.5, 1.0, 3.0)
    div = next(s for s in study.settings if s.lr == 0.1)
    assert div.median == math.inf and div.n_diverged == 2 and div.min == 0.1
    rows = res.best()
    assert [r["optimizer"] for r in rows] == ["adam", "sgd"]
    assert all(r["steps"] == STEPS and r["seeds"] == 3 for r in rows)


def test_target_and_steps_and_time_to_target(tmp_path: Path) -> None:
    res = _store(tmp_path, {("adam", 0.01): [0.0, 0.0], ("sgd", 0.01): [5.0, 5.0]})
    (study,) = res.studies()
    assert study.initial_loss == 10.0 and study.best_loss == 0.0
    # the weakest optimizer's best median final loss: every best setting reaches it
    assert study.target == 5.0 and not study.explicit_target
    rows = {r["optimizer"]: r for r in res.best()}
    # adam: loss = 10 - k reaches 5 at k = 5, after 5 updates; time[k] = (k + 1) * 0.5 is
    # the cumulative time after update k, so 5 updates took time[4] = 2.5 s
    assert rows["adam"]["steps_to_target"] == 5 and rows["adam"]["time_to_target"] == 2.5
    assert rows["adam"]["reached"] == 2
    # sgd: loss = 10 - 0.5 k reaches 5 only at the end
    assert rows["sgd"]["steps_to_target"] == 10 and rows["sgd"]["time_to_target"] == 5.0
    # an explicit target, which one of them never reaches
    (study,) = res.studies(target=2.0)
    assert study.explicit_target
    with res.curves() as curves:
        rows = {r["optimizer"]: r for r in verdicts.best_table(study, curves)}
    assert rows["adam"]["steps_to_target"] == 8
    assert rows["sgd"]["steps_to_target"] == math.inf and rows["sgd"]["reached"] == 0


def test_lr_range_is_the_contiguous_block_reaching_the_target(tmp_path: Path) -> None:
    finals = {
        ("adam", 1e-4): [9.0, 9.0],  # too slow
        ("adam", 1e-3): [0.5, 0.5],
        ("adam", 1e-2): [0.0, 0.0],
        ("adam", 1e-1): [0.9, 0.9],
        ("adam", 1.0): [0.1, None],  # one seed diverged: does not converge
        ("adam", 10.0): [0.2, 0.2],  # converges, but not contiguous with the best LR
        ("sgd", 1e-2): [1.0, 1.0],  # the weakest best: sets the target to 1.0
    }
    res = _store(tmp_path, finals)
    (study,) = res.studies()
    assert study.target == 1.0
    variant = study.best()["adam"].variant
    assert study.lr_range(variant) == (1e-3, 1e-1)
    rows = {r["optimizer"]: r for r in res.best()}
    assert rows["adam"]["lr_decades"] == pytest.approx(2.0)
    assert rows["sgd"]["lr_decades"] == 0.0  # the weakest reaches its own level at one LR
    sens = [r for r in verdicts.sensitivity_rows(study) if r["optimizer"] == "adam"]
    assert [r["lr"] for r in sens] == [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    assert [r["converges"] for r in sens] == [False, True, True, True, False, True]


def test_table_states_budget_and_seeds(tmp_path: Path) -> None:
    res = _store(tmp_path, {("adam", 0.01): [1.0, 2.0, 3.0]})
    text = res.table()
    assert f"budget {STEPS} steps, 3 seeds" in text
    assert "adam lr=0.01" in text
    assert res.filter(optimizer="adam").records == res.records
    assert len(res.filter(optimizer="sgd")) == 0


def test_best_lr_at_the_grid_edge_is_flagged() -> None:
    import optimlab.lab as lab

    # SGD on the ravine keeps improving up to the largest of these small LRs
    res = lab.compare("ravine", ["sgd"], lrs=[1e-4, 1e-3, 1e-2], steps=50, seeds=[0])
    (study,) = res.studies()
    with res.curves() as curves:
        rows = verdicts.best_table(study, curves)
    assert rows[0]["lr"] == 1e-2 and rows[0]["grid_edge"] == "high"
    (note,) = verdicts.edge_notes(rows)
    assert "sgd" in note and "largest" in note
    # an interior best is not flagged
    res = lab.compare("ravine", ["sgd"], lrs=[1e-4, 1e-2, 10.0], steps=50, seeds=[0])
    (study,) = res.studies()
    with res.curves() as curves:
        rows = verdicts.best_table(study, curves)
    assert rows[0]["lr"] == 1e-2 and rows[0]["grid_edge"] == "" and not verdicts.edge_notes(rows)


def test_an_unknown_metric_to_rank_by_or_a_bad_target_is_refused() -> None:
    # a misspelt metric scored every run +inf and ranked nothing, silently
    with pytest.raises(ValueError, match="unknown metric to rank by 'final-loss'"):
        analysis.studies([], "final-loss")
    with pytest.raises(ValueError, match="target must be None or a finite number, got nan"):
        analysis.studies([], target=math.nan)
    with pytest.raises(ValueError, match="target must be None or a number, got True"):
        analysis.studies([], target={"ravine": True})
