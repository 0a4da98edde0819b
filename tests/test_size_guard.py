"""The size guard: before a sweep starts, its number of runs and the size of their results
are estimated; above 1 GB it is refused in one line unless confirmed (``--yes``,
``max_store_bytes=None``), before any run or any file is made (issue 10: a typo such as
``--lrs 1e-3:1:100000`` silently built a 1.4 GB store)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optimlab.cli import main
from optimlab.lab import compare, sweep
from optimlab.lab.config import expand_grid, grid_size
from optimlab.lab.store import sizing
from optimlab.lab.store.sizing import SizeEstimate, StoreTooLarge, human

TYPO = (
    "this grid has 4,500,000 runs, about 114 GB of results in '{out}', over the 1 GB "
    "guard: check the grid (learning rates, seeds, hyperparameter lists), or pass --yes "
    "to run it anyway"
)


def test_a_typo_in_the_lr_range_is_refused_at_once_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res"
    code = main(["compare", "--lrs", "1e-3:1:100000", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"optimlab: error: {TYPO.format(out=out)}\n"
    assert not out.exists()  # nothing made: no folder, no store


def test_the_cli_confirms_with_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sizing, "MAX_STORE_BYTES", 10_000.0)
    argv = ["compare", "--problem", "rosenbrock:start=random", "--optimizer", "adam"]
    argv += ["--lrs", "1e-3:1e-1:3"]
    argv += ["--seeds", "2", "--steps", "30", "--no-report", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "this grid has 6 runs, about 34 kB of results" in err
    assert "over the 10 kB guard" in err and "pass --yes" in err
    assert not (tmp_path / "optimlab.sqlite").exists()
    assert main([*argv, "--yes"]) == 0
    err = capsys.readouterr().err
    assert err == f"compare: 6 runs, about 34 kB of results in {tmp_path}\n"  # the estimate
    assert main([*argv, "--yes", "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_the_python_api_has_the_same_guard(tmp_path: Path) -> None:
    with pytest.raises(StoreTooLarge, match=r"pass max_store_bytes=None to run it anyway$"):
        compare("rosenbrock", ["adam", "sgd"], "1e-3:1:10000000", 200, 3, out=str(tmp_path))
    with pytest.raises(StoreTooLarge, match=r"^this grid has 4 runs, about 61 kB"):
        sweep(
            "rosenbrock",
            {"adam": {"lr": [1e-3, 1e-2], "beta2": [0.99, 0.999]}},
            100,
            1,
            out=str(tmp_path),
            max_store_bytes=1000,
        )
    assert list(tmp_path.iterdir()) == []
    seen: list[SizeEstimate] = []
    res = compare(
        "rosenbrock",
        ["adam"],
        [1e-3, 1e-2],
        20,
        1,
        out=str(tmp_path),
        max_store_bytes=None,
        on_estimate=seen.append,
    )
    assert len(res) == 2 and [e.runs for e in seen] == [2]


def test_the_estimate_is_close_to_the_store_it_writes(tmp_path: Path) -> None:
    seen: list[SizeEstimate] = []
    compare(
        "rosenbrock:start=random",  # seeds count (from a fixed start one run per setting)
        ["adam", "sgd"],
        "1e-4:1e-1:10",
        300,
        3,
        out=str(tmp_path),
        on_estimate=seen.append,
    )
    (estimate,) = seen
    size = sum(os.path.getsize(p) for p in tmp_path.glob("optimlab.sqlite*"))
    assert estimate.runs == 60
    assert 0.75 < size / estimate.bytes < 1.25, (size, estimate)


@pytest.mark.parametrize(
    ("optimizers", "lrs", "seeds", "hyperparams", "schedules"),
    [
        (["adam"], "1e-3:1:5", 3, None, 1),
        (["adam", "sgd", "lion"], {"adam": [0.1, 0.2], "default": "1e-3:1e-1:4"}, "0,5", None, 2),
        (["adam", "momentum"], [1e-2], 2, {"adam": {"beta2": [0.9, 0.99]}, "*": {}}, 1),
        (["sgd"], [0.1], 1, {"*": {"weight_decay": [0.0, 0.1, 0.2]}}, 3),
    ],
)
def test_grid_size_counts_what_expand_grid_makes(optimizers, lrs, seeds, hyperparams, schedules):
    scheds = [(None, {}), ("cosine", {}), ("linear", {})][:schedules]
    n = grid_size(optimizers, lrs, seeds, hyperparams=hyperparams, schedules=scheds)
    configs = expand_grid("rosenbrock", optimizers, lrs, 50, seeds, hyperparams=hyperparams)
    assert n == len(configs) * schedules


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [(999, "999 bytes"), (1000, "1 kB"), (33_400, "33 kB"), (1.4e9, "1.4 GB"), (6.4e11, "640 GB")],
)
def test_sizes_read_as_people_write_them(nbytes: float, text: str) -> None:
    assert human(nbytes) == text
