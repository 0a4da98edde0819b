"""The step benchmark runs (tiny sizes) and the CLI wraps it; timings are never asserted."""

from __future__ import annotations

import pytest
from torch_cases import one_thread

from optimlab.cli import main
from optimlab.optim import bench

pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread


def test_bench_rows_cover_every_path() -> None:
    rows = bench.run(bench.parse_layouts("2e3x1,2e3x20"), repeats=1)
    assert [(r.optimizer, r.layout, r.path) for r in rows][: len(bench.PATHS)] == [
        ("adamw", "2e+03 in 1 tensor", path) for path in bench.PATHS
    ]
    assert len(rows) == 2 * 2 * len(bench.PATHS)
    assert all(r.ms > 0 and r.first_ms > 0 and r.gb_s > 0 for r in rows)
    foreach = [r for r in rows if r.path == "torch foreach"]
    assert all(r.vs_foreach == 1.0 for r in foreach)
    assert all(r.vs_fused == 1.0 for r in rows if r.path == "torch fused")
    text = bench.format_table(rows, bandwidth=10.0)
    assert "x foreach" in text and "x fused" in text and text.count("\n") == len(rows) + 1


def test_bench_lion_adafactor_muon_against_their_alternatives() -> None:
    """Each runs against what torch has (Lion: a foreach reference); matrices where the
    rule factors or needs them; paths that do not apply are left out."""
    rows = bench.run(
        bench.parse_layouts("2400x4"),
        ["lion", "adafactor", "muon"],
        ["torch for-loop", "torch foreach", "torch fused", "optimlab plain", "optimlab"],
        repeats=1,
        bandwidth=10.0,
    )
    seen = {(r.optimizer, r.path) for r in rows}
    assert seen == {
        ("lion", "torch foreach"),
        ("lion", "optimlab plain"),
        ("lion", "optimlab"),
        ("adafactor", "torch for-loop"),
        ("adafactor", "torch foreach"),
        ("adafactor", "optimlab plain"),
        ("adafactor", "optimlab"),
        ("muon", "torch for-loop"),
        ("muon", "optimlab plain"),
        ("muon", "optimlab"),
    }
    assert bench.Layout(2400, 4).shape(True) == (24, 25)
    assert all(r.x_floor > 0 and r.vs_fused > 0 for r in rows)


@pytest.mark.slow
def test_compile_times_cold_then_warm() -> None:
    times = bench.compile_times(numel=1000)
    assert set(times) == {"cold", "warm"} and all(t > 0 for t in times.values())


def test_parse_layouts() -> None:
    assert bench.parse_layouts("1e7x2000, 10") == [bench.Layout(10**7, 2000), bench.Layout(10, 1)]
    for bad in ("1e7y", "x3", "10x20", "0x1"):
        with pytest.raises(ValueError, match="bad size"):
            bench.parse_layouts(bad)


def test_cli_bench(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "--sizes",
            "1e3x1",
            "--repeats",
            "1",
            "--optimizers",
            "sgd_momentum",
            "--paths",
            "torch foreach,optimlab",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "in-place bandwidth" in out and "sgd_momentum" in out and "optimlab" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "--sizes", "big"], "bad size 'big'"),
        (["bench", "--optimizers", "adamx", "--sizes", "1e3"], "unknown 'adamx'"),
        (["bench", "--repeats", "0", "--sizes", "1e3"], "repeats must be an integer >= 1, got 0"),
    ],
)
def test_cli_bench_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
