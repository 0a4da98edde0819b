"""Readable everywhere: the tables of ``optimlab compare`` and of the docs' sweep example
hold every number in full at 80 columns and when piped; progress on stderr for every
long command (compare, lr-find, bench)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from optimlab.cli import main
from optimlab.lab import summary, verdicts
from optimlab.lab.results import Results
from optimlab.lab.tables import fmt

DOCS = Path(__file__).parent.parent / "docs" / "lab.md"


def _numbers(results: Results) -> set[str]:
    """Every number the verdict tables print, as printed."""
    out: set[str] = set()
    with results.curves() as curves:
        for study in results.studies():
            for r in verdicts.best_table(study, curves):
                out |= {fmt(r["median"], ".4g"), fmt(r["steps_to_target"], "d")}
                if r["distinct"] > 1:
                    out |= {fmt(r["ci_lo"]), fmt(r["ci_hi"])}
                out |= {fmt(v, ".4g") for v in r["evals"].values()}
            for rows in summary.swept_axes(study).values():
                out |= {fmt(r["median"], ".4g") for r in rows}
    return {n for n in out if n not in ("-", "never")}


def _check(out: str, numbers: set[str], width: int | None) -> None:
    assert "…" not in out and "..." not in out
    if width is not None:
        long = [line for line in out.splitlines() if len(line) > width]
        assert not long, long
    for n in numbers:  # each number whole: not preceded or followed by more of a number
        assert re.search(rf"(?<![\d.e+-]){re.escape(n)}(?![\d.e+-]*\d)", out), n


@pytest.mark.parametrize("columns", ["80", None])
def test_compare_at_80_columns_and_piped_holds_every_number(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: str | None,
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)  # piped: no width limit
    else:
        monkeypatch.setenv("COLUMNS", columns)
    argv = ["compare", "--out", str(tmp_path), "--steps", "12", "--seeds", "2"]
    argv += ["--lrs", "1e-3:1e-1:3", "-q", "--no-report"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    numbers = _numbers(Results.load(tmp_path))
    assert len(numbers) > 30
    _check(out, numbers, None if columns is None else int(columns))
    assert out.count("best setting per optimizer") == 3 and "across 3 problems" in out


@pytest.mark.parametrize("columns", ["80", None])
def test_the_docs_sweep_example_at_80_columns_and_piped(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: str | None,
) -> None:
    (toml,) = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
    (tmp_path / "sweep.toml").write_text(toml)
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    out_dir = tmp_path / "out"
    code = main(["sweep", str(tmp_path / "sweep.toml"), "--out", str(out_dir), "-q", "--no-report"])
    assert code == 0
    out = capsys.readouterr().out
    numbers = _numbers(Results.load(out_dir))
    _check(out, numbers, None if columns is None else int(columns))
    # the sweep answers its question: a table per swept axis
    assert "the best setting at each beta2" in out and "the best setting at each schedule" in out


def _tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)


def test_lr_find_and_bench_show_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _tty(monkeypatch)
    code = main(["lr-find", "--problem", "least_squares", "--num-iter", "20"])
    out, err = capsys.readouterr()
    assert code == 0 and ("suggested lr" in out or "no suggestion" in out)
    assert "lr-find" in err and "/21 steps" in err and "ETA" in err
    code = main(["bench", "--sizes", "1e3x1", "--repeats", "1", "--optimizers", "adamw"])
    out, err = capsys.readouterr()
    assert code == 0 and "bench" in err and "measurements" in err and "ETA" in err
    assert "optimlab plain" in out  # the table's rows: stdout is not a terminal here
    # quiet, or not a terminal: nothing on stderr
    code = main(["lr-find", "--problem", "least_squares", "--num-iter", "20", "-q"])
    assert code == 0 and capsys.readouterr().err == ""
