"""Fault injection on the lab (subprocesses, marked slow): SIGKILL mid-sweep then resume
(F4), SIGKILL inside a store transaction (F3), two sweeps sharing a folder (F10),
SIGTERM (F11)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SWEEP = [
    "sweep",
    "--problem",
    "rosenbrock:start=random",
    "--optimizer",
    "adam,momentum",
    "--lrs",
    "1e-4:1e-2:6",
    "--steps",
    "2000",
    "--seeds",
    "2",
    "-q",
    "--no-report",
]
N_RUNS = 2 * 6 * 2


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "optimlab", *SWEEP, "--out", str(out), *extra]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _n_final(out: Path) -> int:
    db = out / "optimlab.sqlite"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(
                "SELECT COUNT(*) FROM runs WHERE status IN ('finished', 'diverged')"
            ).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not there yet
        return 0


def _wait_for(out: Path, proc: subprocess.Popen[str], n: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = _n_final(out)
        if done >= n:
            return done
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} runs finished in {timeout} s")


def _counts(stdout: str) -> tuple[int, int, int]:
    m = re.search(r"runs: (\d+) requested, (\d+) computed .*?, (\d+) already in the store", stdout)
    assert m, stdout
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _snapshot(out: Path) -> dict[str, tuple]:
    """run config -> (status, final loss, all per-step losses); also checks the store."""
    con = sqlite3.connect(out / "optimlab.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT run_id, config, status, final_loss FROM runs").fetchall()
    snap = {}
    for rid, config, status, final in rows:
        loss = np.array(
            [
                v
                for (v,) in con.execute(
                    "SELECT loss FROM metrics WHERE run_id = ? ORDER BY step", (rid,)
                )
            ],
            dtype=float,
        )
        snap[config] = (status, final, loss)
    dup = con.execute(
        "SELECT COUNT(*) FROM (SELECT run_id, step FROM metrics "
        "GROUP BY run_id, step HAVING COUNT(*) > 1)"
    ).fetchone()[0]
    assert dup == 0
    con.close()
    return snap


def _assert_same(a: dict[str, tuple], b: dict[str, tuple]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k][0] == b[k][0], k
        np.testing.assert_allclose(a[k][2], b[k][2], rtol=1e-12, atol=0)


def test_f4_sigkill_mid_sweep_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(killed, "--max-batch", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_for(killed, proc, 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done_at_kill = _n_final(killed)
    assert 3 <= done_at_kill < N_RUNS, "the sweep finished before it could be killed"
    con = sqlite3.connect(killed / "optimlab.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # F3
    running = con.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]
    con.close()
    assert running <= 1  # the run the kill interrupted
    rerun = subprocess.run(
        _cmd(killed, "--max-batch", "1"), capture_output=True, text=True, env=_env(), timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert _counts(rerun.stdout) == (N_RUNS, N_RUNS - done_at_kill, done_at_kill)
    whole = tmp_path / "whole"
    ref = subprocess.run(_cmd(whole), capture_output=True, text=True, env=_env(), timeout=300)
    assert ref.returncode == 0, ref.stderr
    resumed, uninterrupted = _snapshot(killed), _snapshot(whole)
    assert len(resumed) == N_RUNS
    assert all(v[0] in ("finished", "diverged") for v in resumed.values())
    assert all(len(v[2]) == 2000 or v[0] == "diverged" for v in resumed.values())
    _assert_same(resumed, uninterrupted)


def test_f3_sigkill_inside_a_store_transaction(tmp_path: Path) -> None:
    script = f"""
import os, signal, time
import numpy as np
from optimlab.lab.config import expand_grid
from optimlab.lab.record import Trace
from optimlab.lab.store import Store
cfgs = expand_grid("ravine", ["adam"], [0.1], 50, 1)
s = Store({str(tmp_path)!r})
s.add(cfgs)
s.claim([cfgs[0].run_id])
loss = np.linspace(1, 0, 50)
res = Trace("finished", loss, loss, loss, loss, loss)
with s.transaction() as c:
    s._write_result(c, cfgs[0].run_id, res, time.time())
    os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    from optimlab.lab import api
    from optimlab.lab.store import Store

    with Store(tmp_path) as store:
        assert store.integrity_ok()
        (row,) = store.runs()
        assert row["status"] == "running"  # the write never committed
        assert store.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == 0
    res = api.compare("ravine", ["adam"], [0.1], 50, 1, out=str(tmp_path))
    assert res.counts.requeued_stale == 1 and res.counts.computed == 1
    assert len(res.curve(res.records[0]["run_id"])["loss"]) == 50


def test_f10_two_sweeps_on_one_folder(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    procs = [
        subprocess.Popen(
            _cmd(out, "--max-batch", "2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr
    counts = [_counts(stdout) for stdout, _ in outputs]
    assert all(c[0] == N_RUNS for c in counts)
    assert sum(c[1] for c in counts) == N_RUNS  # every run computed exactly once
    snap = _snapshot(out)
    assert len(snap) == N_RUNS
    con = sqlite3.connect(out / "optimlab.sqlite")
    assert con.execute("SELECT MAX(attempts), MIN(attempts) FROM runs").fetchone() == (1, 1)
    n_metrics = con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    con.close()
    assert n_metrics == sum(len(v[2]) for v in snap.values())
    # both printed the complete table (every optimizer of the sweep)
    for stdout, _ in outputs:
        assert "adam lr=" in stdout and "momentum lr=" in stdout


def test_f11_sigterm_releases_runs_and_says_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "term"
    proc = subprocess.Popen(
        _cmd(out, "--max-batch", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_for(out, proc, 2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    con = sqlite3.connect(out / "optimlab.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    status = dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    con.close()
    assert "running" not in status and status.get("queued", 0) > 0


def test_report_while_a_sweep_writes_and_overlapping_sweeps(tmp_path: Path) -> None:
    # readers never block writers (WAL): reports drawn mid-sweep show what is finished
    from optimlab.lab.report import render

    out = tmp_path / "live"
    proc = subprocess.Popen(
        _cmd(out, "--max-batch", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_for(out, proc, 2)
    html = render(out)
    assert "Best setting per optimizer" in html
    # a second, overlapping sweep (one more seed) on the same folder while the first runs
    other = subprocess.run(
        [
            sys.executable,
            "-m",
            "optimlab",
            *SWEEP[:-4],
            "--seeds",
            "3",
            "-q",
            "--no-report",
            "--out",
            str(out),
            "--max-batch",
            "4",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert other.returncode == 0, other.stderr
    first, second = _counts(stdout), _counts(other.stdout)
    assert first[0] == N_RUNS and second[0] == N_RUNS // 2 * 3
    snap = _snapshot(out)
    assert len(snap) == N_RUNS // 2 * 3  # the union, each run once
    con = sqlite3.connect(out / "optimlab.sqlite")
    assert con.execute("SELECT MAX(attempts) FROM runs").fetchone()[0] == 1
    con.close()
    # every run was computed by exactly one of the two (or by neither if found finished)
    assert first[1] + second[1] == len(snap)
