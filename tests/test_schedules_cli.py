"""Plotting schedules, and the `optimlab schedules` / `optimlab lr-find` commands (in-process)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from numerics import assert_close

from optimlab import schedules as S
from optimlab.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_draws_every_schedule(tmp_path) -> None:
    path = tmp_path / "s.png"
    fig = S.plot(["cosine", "one_cycle", S.get("wsd", total_steps=200, lr=0.5)], 200, path=path)
    assert path.read_bytes()[:8] == PNG
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["cosine", "one_cycle", "WarmupStableDecay"]
    # the plot evaluates an array of steps: equal to step-by-step values within rounding
    assert_close(
        lines[2].get_ydata(), [S.get("wsd", total_steps=200, lr=0.5)(t) for t in range(200)]
    )
    np.testing.assert_array_equal(
        lines[0].get_ydata(), S.get("cosine", total_steps=200)(np.arange(200))
    )


def test_plot_on_given_axes_and_bad_input() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert S.plot("cosine", 50, ax=ax, lr=0.1, logy=True) is fig
    assert ax.get_yscale() == "log" and len(ax.get_lines()) == 1
    with pytest.raises(ValueError, match="did you mean"):
        S.plot(["cosin"], 10)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        S.plot(["cosine"], 0)
    with pytest.raises(ValueError, match="at least one"):
        S.plot([], 10)
    with pytest.raises(ValueError, match="several values"):
        S.plot([S.Constant(lr=np.array([0.1, 0.2]))], 10)
    with pytest.raises(ValueError, match="labels must name"):
        S.plot(["cosine", "wsd"], 10, labels=["a"])


def test_import_stays_light() -> None:
    import subprocess

    code = (
        "import sys, optimlab; from optimlab import schedules; "
        "schedules.get('cosine', total_steps=5)(3); "
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_schedules_writes_png(tmp_path, capsys) -> None:
    out = tmp_path / "sched.png"
    rc = main(
        [
            "schedules",
            "warmup_cosine:warmup_steps=50",
            "one_cycle",
            "cyclic",
            "--steps",
            "300",
            "--out",
            str(out),
            "--lr",
            "0.1",
        ]
    )
    assert rc == 0
    assert out.read_bytes()[:8] == PNG
    text = capsys.readouterr().out
    assert "warmup_cosine:warmup_steps=50" in text and f"wrote {out}" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["schedules", "cosin", "--steps", "10"], "did you mean 'cosine'"),
        (["schedules", "cosine", "--steps", "0"], "--steps must be an integer >= 1, got 0"),
        (["schedules", "cosine:T_max=3", "--steps", "10"], "unknown argument 'T_max'"),
        (["schedules", "warmup_cosine:warmup_steps=20", "--steps", "10"], "warmup_steps must be <"),
        (["schedules", "cosine", "--out", "/no/such/folder/x.png"], "does not exist"),
        (["lr-find", "--problem", "least_squares", "--optimizer", "adamm"], "unknown optimizer"),
        (["lr-find", "--problem", "least_squars"], "unknown problem"),
        (["lr-find", "--problem", "least_squares", "--num-iter", "1"], "--num-iter must be"),
        (["lr-find", "--problem", "least_squares", "--hp", "beta1"], "key=value, got 'beta1'"),
        (
            ["lr-find", "--problem", "least_squares", "--hp", "beta1=x y"],
            "beta1 must be a number, got 'x y'",
        ),
        (
            ["lr-find", "--problem", "least_squares", "--hp", "beta1=0.8", "--hp", "beta1=0.9"],
            "--hp gives beta1 twice",
        ),
        (["lr-find", "--problem", "least_squares", "--hp", "lr=0.1"], "must not set lr"),
        (["lr-find", "--problem", "least_squares", "--hp", "beta9=0.1"], "beta9"),
    ],
)
def test_cli_mistakes_are_one_line_exit_2(tmp_path, capsys, argv, message) -> None:
    rc = main(
        [
            *argv,
            *(
                []
                if "--out" in argv or argv[0] == "lr-find"
                else ["--out", str(tmp_path / "x.png")]
            ),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_lr_find(tmp_path, capsys) -> None:
    out = tmp_path / "lr.png"
    rc = main(
        [
            "lr-find",
            "--problem",
            "least_squares",
            "--optimizer",
            "sgd",
            "--num-iter",
            "40",
            "--start-lr",
            "1e-5",
            "--end-lr",
            "10",
            "--out",
            str(out),
            "--hp",
            "momentum=0.5",
            "--hp",
            "nesterov=True",
        ]
    )
    assert rc == 0
    assert out.read_bytes()[:8] == PNG
    text = capsys.readouterr().out
    assert "suggested lr" in text and f"wrote {out}" in text
