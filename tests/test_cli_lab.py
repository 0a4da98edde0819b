"""The lab's commands in-process: compare (the default comparison, small budget), rerun
skips everything, sweep from flags and config files, report, list, user mistakes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from optimlab.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _counts(out: str) -> tuple[int, int, int]:
    m = re.search(r"runs: (\d+) requested, (\d+) computed .*?, (\d+) already in the store", out)
    assert m, out
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def test_default_compare_small_budget_then_rerun_skips_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "compare",
        "--out",
        str(tmp_path),
        "--steps",
        "12",
        "--seeds",
        "2",
        "--lrs",
        "1e-3:1e-1:3",
        "-q",
    ]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    # default problems and optimizers: 3 problems x 5 optimizers x 3 lrs x 2 seeds
    assert _counts(out) == (90, 90, 0)
    for problem in ("rosenbrock", "ravine", "mlp"):
        assert f"{problem}" in out
    assert out.count("best setting per optimizer - budget 12 steps, 2 seeds") == 3
    for opt in ("sgd", "momentum", "rmsprop", "adam", "adamw"):
        assert re.search(rf"\b{opt} lr=", out), opt
    report = tmp_path / "report.html"
    assert f"report: {report}" in out and report.is_file()
    assert err == ""  # no progress bar when not a terminal
    code, out2, _ = _run(capsys, *argv)
    assert code == 0 and _counts(out2) == (90, 0, 90)
    con = sqlite3.connect(tmp_path / "optimlab.sqlite")
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 90
    assert con.execute("SELECT MAX(attempts) FROM runs").fetchone()[0] == 1
    con.close()


def test_sweep_from_flags_and_from_config_files_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys,
        "sweep",
        "--problem",
        "ravine",
        "--optimizer",
        "adam,sgd",
        "--lrs",
        "adam=1e-2:1e-1:2",
        "--lrs",
        "sgd=0.01",
        "--hp",
        "adam.beta2=0.99,0.999",
        "--schedule",
        "constant",
        "--schedule",
        "cosine",
        "--steps",
        "15",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "flags"),
        "-q",
        "--no-report",
    )
    assert code == 0, err
    assert _counts(out) == ((2 * 2 + 1) * 2, 10, 0)
    assert not (tmp_path / "flags" / "report.html").exists()
    toml = tmp_path / "sweep.toml"
    toml.write_text(
        'problem = "ravine"\nsteps = 15\nseeds = 1\n'
        'schedules = ["constant", "cosine"]\n'
        '[grid.adam]\nlr = "1e-2:1e-1:2"\nbeta2 = [0.99, 0.999]\n'
        "[grid.sgd]\nlr = [0.01]\n"
    )
    code, out, err = _run(capsys, "sweep", str(toml), "--out", str(tmp_path / "flags"), "-q")
    assert code == 0, err
    assert _counts(out) == (10, 0, 10)  # the same runs: all found finished
    cfg = {
        "problem": "ravine",
        "steps": 15,
        "seeds": 1,
        "schedules": ["constant", "cosine"],
        "grid": {"adam": {"lr": "1e-2:1e-1:2", "beta2": [0.99, 0.999]}, "sgd": {"lr": [0.01]}},
    }
    js = tmp_path / "sweep.json"
    js.write_text(json.dumps(cfg))
    code, out, err = _run(capsys, "sweep", str(js), "--out", str(tmp_path / "flags"), "-q")
    assert code == 0 and _counts(out) == (10, 0, 10)


def test_report_command_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "compare",
                "--problem",
                "beale",
                "--optimizer",
                "adam",
                "--lrs",
                "0.01,0.1",
                "--steps",
                "10",
                "--seeds",
                "1",
                "--out",
                str(tmp_path),
                "-q",
                "--no-report",
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, out, err = _run(
        capsys,
        "report",
        str(tmp_path),
        "--csv",
        str(tmp_path / "r.csv"),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert code == 0, err
    assert (tmp_path / "report.html").is_file()
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 3
    assert len(json.loads((tmp_path / "r.json").read_text())) == 2
    assert "csv:" in out and "json:" in out
    code, out, err = _run(capsys, "report", str(tmp_path), "--target", "0.25")
    assert code == 0, err
    assert "loss &lt;= 0.25 (stated)" in (tmp_path / "report.html").read_text()
    code, _, err = _run(capsys, "report", str(tmp_path), "--target", "inf")
    assert code == 2 and "--target must be a finite number" in err


def test_user_problem_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "myproblem.py").write_text(
        "import torch\n"
        "def make(seed):\n"
        "    x = torch.randn(64, 3)\n"
        "    y = x @ torch.tensor([1.0, -2.0, 0.5])\n"
        "    model = torch.nn.Linear(3, 1)\n"
        "    def loss(m, batch):\n"
        "        return ((m(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()\n"
        "    return model, loss, (x, y)\n"
    )
    spec = f"{tmp_path / 'myproblem.py'}:make"
    code, out, err = _run(
        capsys,
        "compare",
        "--problem",
        spec,
        "--optimizer",
        "sgd,adam",
        "--lrs",
        "0.01,0.1",
        "--steps",
        "30",
        "--seeds",
        "2",
        "--out",
        str(tmp_path / "o"),
        "-q",
    )
    assert code == 0, err
    assert _counts(out) == (8, 8, 0)
    assert "best setting per optimizer - budget 30 steps, 2 seeds" in " ".join(out.split())


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for word in (
        "optimizers",
        "adam",
        "lr=0.001",
        "schedules",
        "warmup_cosine",
        "problems",
        "rosenbrock",
    ):
        assert word in out
    code, out, _ = _run(capsys, "list", "optimizers")
    assert code == 0 and "rosenbrock" not in out and "sgd" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["compare", "--optimizer", "adma"],
            "unknown optimizer 'adma'; did you mean 'adamax' or 'adam'",
        ),
        (["compare", "--problem", "rosenbrok"], "did you mean 'rosenbrock'"),
        (["compare", "--lrs", "1e-4:1"], "lrs range must be 'lo:hi:n'"),
        (["compare", "--lrs", "1:1e-4:3"], "0 < lo <= hi"),
        (["compare", "--seeds", "x"], "seeds must be an integer >= 1, got 'x'"),
        (["compare", "--steps", "0"], "steps must be an integer >= 1, got 0"),
        (["compare", "--hp", "beta2"], "--hp must be [OPT.]NAME=VALUE"),
        (["compare", "--hp", "adam.beta1=1.5"], "beta1 must be in [0, 1), got 1.5"),
        (["compare", "--schedule", "cosin"], "did you mean 'cosine'"),
        (["compare", "--max-batch", "0"], "--max-batch must be an integer >= 1, got 0"),
        (["compare", "--threads", "0"], "--threads must be an integer >= 1, got 0"),
        (["compare", "--eval-every", "0"], "--eval-every must be an integer >= 1, got 0"),
        (["compare", "--schedule", "cosine:foo=1"], "unknown argument 'foo'"),
        (["compare", "--schedule", "cosine:eta_min=1,eta_min=2"], "eta_min is given twice"),
        (
            ["compare", "--hp", "adam.beta1=(0.8"],
            "--hp adam.beta1 must have balanced brackets and quotes, got '(0.8'",
        ),
        (
            ["compare", "--schedule", "warmup_cosine:warmup_steps=500", "--steps", "100"],
            "warmup_steps must be < total_steps",
        ),
        (["compare", "--problem", "ravine:conditon=10"], "unknown argument 'conditon'"),
        (["compare", "--steps", "ten"], "invalid int value: 'ten'"),
        (["sweep", "missing.toml"], "config file not found: 'missing.toml'"),
        (["sweep", "--optimizer", "adam", "--hp", "sgd.momentum=0.5"], "not in the sweep"),
        (["report", "no/such/folder"], "results folder not found"),
        (["list", "things"], "invalid choice: 'things'"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written outside tmp_path
    code, out, err = _run(
        capsys,
        *argv,
        *([] if argv[0] in ("report", "list") else ["--out", str(tmp_path / "o"), "-q"]),
    )
    assert code == 2
    assert needle in err
    assert err.startswith("optimlab: error: ") and err.count("\n") == 1
    assert "Traceback" not in err + out
    assert not (tmp_path / "o" / "optimlab.sqlite").exists() or argv[0] == "sweep"


def test_foreign_results_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    con = sqlite3.connect(tmp_path / "optimlab.sqlite")
    con.execute("CREATE TABLE other (x)")
    con.commit()
    con.close()
    code, _, err = _run(
        capsys,
        "compare",
        "--problem",
        "ravine",
        "--optimizer",
        "adam",
        "--steps",
        "5",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "-q",
    )
    assert code == 2 and "another program" in err and err.count("\n") == 1
    (tmp_path / "file").write_text("x")
    code, _, err = _run(
        capsys,
        "compare",
        "--problem",
        "ravine",
        "--optimizer",
        "adam",
        "--steps",
        "5",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "file"),
        "-q",
    )
    assert code == 2 and "out must be a folder" in err
    code, _, err = _run(capsys, "report", str(tmp_path / "empty_dir_missing"))
    assert code == 2
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, "report", str(tmp_path / "empty"))
    assert code == 2 and "no results store" in err


def test_progress_bar_on_a_terminal_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = [
        "compare",
        "--problem",
        "ravine",
        "--optimizer",
        "adam",
        "--lrs",
        "0.1",
        "--steps",
        "10",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--no-report",
    ]
    code, out, err = _run(capsys, *argv)
    assert code == 0
    assert _counts(out) == (1, 1, 0)
    # the bar's description, percentage, runs done/total, rate and time left
    assert "compare" in err and "%" in err and "1/1 runs" in err and "ETA" in err
    assert "ETA" not in out and "1/1 runs" not in out  # the bar never lands in stdout
    code, out, err = _run(capsys, *argv, "--quiet")
    assert code == 0 and err == ""


def test_lab_imports_stay_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, optimlab, optimlab.lab, optimlab.lab.api, optimlab.lab.store, "
        "optimlab.lab.report, optimlab.lab.plots, optimlab.cli.compare, optimlab.cli.sweep\n"
        "import optimlab.lab as lab; lab.compare; lab.Results; lab.load\n"
        "heavy = [m for m in ('torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("seeds = 2.5", "seeds must be an integer >= 1, got 2.5"),
        ('seeds = [1, "a"]', "seeds must be an integer >= 0, got 'a'"),
        ("problem = 5", "problem must be a name"),
        ("schedules = 5", "schedules must be"),
        ("[grid.adam]\nlr = true", "lrs must be"),
        ("problem = []", "problem must name at least one problem"),
        ("step = 3", "got unknown key 'step'; did you mean 'steps'?"),
    ],
)
def test_config_file_mistakes_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text("steps = 3\n" + text + "\n")
    code, out, err = _run(
        capsys, "sweep", str(cfg), "--out", str(tmp_path / "o"), "-q", "--no-report"
    )
    assert code == 2, err
    assert needle in err
    assert err.startswith("optimlab: error: ") and err.count("\n") == 1
    assert "Traceback" not in err + out


def test_config_file_single_schedule_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `schedules = "cosine"` is one schedule, not the schedules 'c', 'o', 's', ...
    cfg = tmp_path / "s.toml"
    cfg.write_text('steps = 3\nseeds = 1\nschedules = "cosine"\n[grid.adam]\nlr = [0.1]\n')
    code, out, err = _run(
        capsys, "sweep", str(cfg), "--out", str(tmp_path / "o"), "-q", "--no-report"
    )
    assert code == 0, err
    from optimlab.lab.results import Results

    assert [r["schedule"] for r in Results.load(tmp_path / "o")] == ["cosine"]


@pytest.mark.parametrize("option", ["--out", "--csv", "--json"])
def test_report_to_an_unwritable_path_is_one_line_exit_2(
    tmp_path: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "compare",
                "--problem",
                "beale",
                "--optimizer",
                "adam",
                "--lrs",
                "0.1",
                "--steps",
                "3",
                "--seeds",
                "1",
                "--out",
                str(tmp_path / "res"),
                "-q",
                "--no-report",
            ]
        )
        == 0
    )
    capsys.readouterr()
    (tmp_path / "adir").mkdir()
    code, out, err = _run(capsys, "report", str(tmp_path / "res"), option, str(tmp_path / "adir"))
    assert code == 2, err
    assert err.startswith("optimlab: error: cannot write") and err.count("\n") == 1
    assert "adir" in err
    assert "Traceback" not in out + err
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["compare", "--optimizer", "adam", "--hp", "sgd.momentum=0.5"], "not compared"),
        (["compare", "--optimizer", "adam", "--lrs", "sgd=0.1"], "not compared"),
        (["sweep", "--optimizer", "adam", "--lrs", "sgd=0.1"], "not in the sweep"),
        (["compare", "--optimizer", "adam", "--lrs", "0.1", "--lrs", "0.01"], "twice"),
        (["compare", "--optimizer", "adam", "--lrs", "adam=0.1", "--lrs", "adam=0.01"], "twice"),
    ],
)
def test_options_that_would_be_silently_ignored_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = _run(
        capsys,
        *argv,
        "--steps",
        "3",
        "--seeds",
        "1",
        "--problem",
        "ravine",
        "--out",
        str(tmp_path / "o"),
        "-q",
        "--no-report",
    )
    assert code == 2, out + err
    assert needle in err and err.startswith("optimlab: error: ") and err.count("\n") == 1
    assert not (tmp_path / "o" / "optimlab.sqlite").exists()


def test_report_help_states_the_default_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "weakest optimizer's best median final loss" in text


def test_config_file_out_must_be_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text("steps = 3\nseeds = 1\nout = 5\n[grid.adam]\nlr = [0.1]\n")
    code, out, err = _run(capsys, "sweep", "s.toml", "-q", "--no-report")
    assert code == 2 and "config 'out' must be a folder path" in err and err.count("\n") == 1
    assert "Traceback" not in out + err


def test_unprefixed_hp_that_some_optimizers_lack_suggests_a_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys,
        "compare",
        "--optimizer",
        "sgd,adam",
        "--hp",
        "beta1=0.8",
        "--out",
        str(tmp_path),
        "-q",
    )
    assert code == 2 and not out
    assert err.strip().splitlines() == [
        "optimlab: error: --hp beta1=... applies to every optimizer, but 'beta1' is not a "
        "hyperparameter of sgd; write --hp adam.beta1=... to set it for adam only"
    ]
    assert not (tmp_path / "optimlab.sqlite").exists()  # refused before anything ran
    code, _, err = _run(
        capsys,
        "sweep",
        "--optimizer",
        "sgd,momentum",
        "--hp",
        "beta1=0.8",
        "--out",
        str(tmp_path),
        "-q",
    )
    assert code == 2 and "none of sgd, momentum has it" in err


def test_optimlab_debug_shows_the_traceback_instead_of_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "--optimizer", "adamm"]) == 2
    monkeypatch.setenv("OPTIMLAB_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        main(["compare", "--optimizer", "adamm"])


def test_compare_takes_the_schedule_specs_the_schedules_command_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # one spec parser: brackets keep their commas, names are spelled as schedules.get takes
    for spec in ("multistep:milestones=(3,6),gamma=0.5", "Warmup-Cosine:warmup_steps=2"):
        assert main(["schedules", spec, "--steps", "10", "--out", str(tmp_path / "s.png")]) == 0
        code, out, err = _run(
            capsys,
            "compare",
            "--problem",
            "ravine",
            "--optimizer",
            "sgd",
            "--lrs",
            "0.01",
            "--steps",
            "10",
            "--seeds",
            "1",
            "--schedule",
            spec,
            "--out",
            str(tmp_path / "o"),
            "-q",
            "--no-report",
        )
        assert code == 0, err
        assert _counts(out) == (1, 1, 0)
    from optimlab.lab.results import Results

    res = Results.load(tmp_path / "o")
    by_schedule = {r["schedule"]: r for r in res.records}
    assert set(by_schedule) == {"multistep", "warmup_cosine"}
    assert by_schedule["multistep"]["schedule_kwargs"] == {"milestones": [3, 6], "gamma": 0.5}
    lr = res.curve(by_schedule["multistep"]["run_id"])["lr"]
    np.testing.assert_array_equal(lr, [0.01] * 3 + [0.005] * 3 + [0.0025] * 4)
