"""Sweeps on a local Ray cluster started by the test (slow; needs ``optimlab[ray]``).

The cluster is this process's own (``ray.init(num_cpus=2)`` on 127.0.0.1), so the
workers killed here are its descendants. A sweep run on Ray equals the same sweep run
locally (every loss curve within the numerics tolerance), a rerun recomputes nothing,
the command line reaches the cluster through ``--address``, and a worker killed
mid-task has its batch rerun by another worker with nothing lost.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from numerics import assert_close

from optimlab import lab
from optimlab.lab.ray_engine import TASK_NAME
from optimlab.lab.store import Store

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'optimlab[ray]'")

pytestmark = pytest.mark.slow

GRID = {"adam": {"lr": [1e-3, 1e-2, 1e-1]}, "sgd": {"lr": [1e-2, 1e-1]}, "lion": {"lr": [1e-3]}}


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A two-CPU Ray cluster of this process on 127.0.0.1; yields its address."""
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def records(folder: Path) -> dict[str, tuple[str, Any, dict[str, float]]]:
    """run id -> (status, loss curve, final held-out metrics) of every run in a folder."""
    with Store(folder, create=False) as store:
        return {
            row["run_id"]: (
                row["status"],
                store.metrics(row["run_id"])["loss"],
                row["final_evals"],
            )
            for row in store.runs()
        }


def assert_same_results(folder: Path, reference: Path) -> None:
    """The same runs, statuses, loss curves and final metrics (within the tolerance)."""
    got, want = records(folder), records(reference)
    assert got.keys() == want.keys() and want
    for run_id, (status, curve, evals) in want.items():
        assert got[run_id][0] == status, run_id
        assert_close(got[run_id][1], curve)
        assert got[run_id][2].keys() == evals.keys()
        for name, value in evals.items():
            assert_close(got[run_id][2][name], value)


def test_sweep_on_ray_equals_the_local_engine_and_reruns_nothing(cluster, tmp_path) -> None:
    problems = ["rosenbrock:start=random", "mlp"]
    kwargs: dict[str, Any] = {"steps": 60, "seeds": 2, "torch_threads": 1}
    local = lab.sweep(problems, GRID, out=str(tmp_path / "local"), **kwargs)
    remote = lab.sweep(problems, GRID, out=str(tmp_path / "ray"), engine="ray", **kwargs)
    n = 2 * 2 * 6  # problems x seeds x settings
    assert (local.counts.computed, remote.counts.computed, remote.counts.failed) == (n, n, 0)
    assert_same_results(tmp_path / "ray", tmp_path / "local")
    again = lab.sweep(problems, GRID, out=str(tmp_path / "ray"), engine="ray", **kwargs)
    assert (again.counts.computed, again.counts.skipped) == (0, n)


def test_command_line_runs_on_the_cluster_at_address(cluster, tmp_path) -> None:
    args = [
        sys.executable,
        "-m",
        "optimlab.cli",
        "sweep",
        "--problem",
        "ravine",
        "--optimizer",
        "adam,momentum",
        "--lrs",
        "1e-3:1e-1:3",
        "--steps",
        "50",
        "--seeds",
        "1",
        "--no-report",
        "-q",
    ]
    env = {**os.environ, "RAY_ADDRESS": ""}  # only --address may name the cluster
    remote = [*args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--address", cluster]
    for expected in ("6 computed", "0 computed"):  # the rerun finds everything stored
        done = subprocess.run(remote, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout, done.stdout
    local = subprocess.run([*args, "--out", str(tmp_path / "local")], capture_output=True)
    assert local.returncode == 0
    assert_same_results(tmp_path / "ray", tmp_path / "local")


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def _descends_from_us(pid: int) -> bool:
    try:
        while pid > 1:
            pid = _parent(pid)
            if pid == os.getpid():
                return True
    except (OSError, ValueError, IndexError):
        return False
    return False


def running_batches() -> list[int]:
    """Our cluster's worker processes running a batch now (titled ray::optimlab_batch)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if title == f"ray::{TASK_NAME}" and _descends_from_us(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_a_worker_killed_mid_task_has_its_batch_rerun(cluster, tmp_path) -> None:
    kwargs: dict[str, Any] = {"steps": 600, "seeds": 1, "torch_threads": 1}
    outcome: dict[str, Any] = {}

    def sweep_on_ray() -> None:
        try:
            outcome["results"] = lab.sweep(
                "mlp", GRID, out=str(tmp_path / "ray"), engine="ray", **kwargs
            )
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    driver = threading.Thread(target=sweep_on_ray)
    driver.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and driver.is_alive() and time.monotonic() < deadline:
        running = running_batches()
        if running:
            time.sleep(0.3)  # well inside the batch (it takes seconds), and still in it
            victim = running[0] if running[0] in running_batches() else None
        time.sleep(0.05)
    assert victim is not None, "no worker was seen running a batch"
    os.kill(victim, signal.SIGKILL)
    driver.join(timeout=600)
    assert not driver.is_alive()
    assert "error" not in outcome, outcome.get("error")
    counts = outcome["results"].counts
    assert (counts.computed, counts.failed) == (6, 0), counts
    with Store(tmp_path / "ray", create=False) as store:
        assert store.counts().get("finished", 0) + store.counts().get("diverged", 0) == 6
    lab.sweep("mlp", GRID, out=str(tmp_path / "local"), **kwargs)
    assert_same_results(tmp_path / "ray", tmp_path / "local")
