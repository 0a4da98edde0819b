"""The Ray engine's entry points without Ray (fast): the install hint, option checks, and
the runner's dispatch path driven by a stand-in for ``RayDispatch``.

The Ray cluster tests themselves are tests/test_ray.py (slow, need ``optimlab[ray]``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optimlab.cli import main
from optimlab.lab import ray_engine, runner
from optimlab.lab.config import expand_grid
from optimlab.lab.store import Store

SWEEP = ["sweep", "--problem", "ravine", "--lrs", "0.01,0.1", "--steps", "5", "--seeds", "1"]


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import ray`` fail (and ``find_spec("ray")`` find nothing), as without it."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_engine_ray_without_ray_says_how_to_install_it(no_ray, tmp_path, capsys) -> None:
    code = main([*SWEEP, "--out", str(tmp_path / "out"), "--engine", "ray", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "optimlab: error: --engine ray needs Ray, which is not installed: "
        "pip install 'optimlab[ray]'\n"
    )
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_api_engine_ray_without_ray_raises_before_anything_runs(no_ray, tmp_path) -> None:
    configs = expand_grid("ravine", ["adam"], [0.1], 5, 1)
    with pytest.raises(ImportError, match=r"pip install 'optimlab\[ray\]'"):
        runner.execute(configs, str(tmp_path / "out"), engine="ray")
    assert not (tmp_path / "out").exists()


def test_address_needs_engine_ray(tmp_path, capsys) -> None:
    code = main([*SWEEP, "--out", str(tmp_path), "--address", "127.0.0.1:6379", "-q"])
    assert code == 2
    assert capsys.readouterr().err == "optimlab: error: --address is for --engine ray\n"
    configs = expand_grid("ravine", ["adam"], [0.1], 5, 1)
    with pytest.raises(ValueError, match="address is for engine 'ray', got engine 'local'"):
        runner.execute(configs, str(tmp_path), address="127.0.0.1:6379")


def test_unknown_engine_is_refused(tmp_path, capsys) -> None:
    assert main([*SWEEP, "--out", str(tmp_path), "--engine", "dask"]) == 2
    assert "invalid choice: 'dask'" in capsys.readouterr().err
    configs = expand_grid("ravine", ["adam"], [0.1], 5, 1)
    with pytest.raises(ValueError, match="engine must be one of 'local', 'ray', got 'dask'"):
        runner.execute(configs, str(tmp_path), engine="dask")


class StandIn:
    """``RayDispatch``'s interface, run here: jobs finish in reverse order, and a job
    whose settings use ``fail_for`` ends with the engine's exception, as a task would."""

    fail_for = "sgd"
    made: list[StandIn] = []

    def __init__(self, address: str | None = None) -> None:
        self.address, self.beats, self.jobs, self.threads = address, 0, 0, set()
        StandIn.made.append(self)

    def map(self, engine: Any, jobs: list[Any], heartbeat: Any):
        self.jobs = len(jobs)
        self.threads = {job.threads for job in jobs}
        for i in reversed(range(len(jobs))):
            heartbeat()
            self.beats += 1
            if any(s.optimizer == self.fail_for for s in jobs[i].settings):
                yield i, RuntimeError(f"boom in {self.fail_for}")
            else:
                yield i, jobs[i].run(engine)


def curves(folder: Path) -> dict[str, tuple[str, np.ndarray]]:
    with Store(folder, create=False) as store:
        return {
            r["run_id"]: (r["status"], store.metrics(r["run_id"])["loss"]) for r in store.runs()
        }


def test_dispatched_batches_are_written_here_like_local_ones(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(ray_engine, "RayDispatch", StandIn)
    StandIn.made.clear()
    configs = expand_grid("ravine", ["adam", "sgd", "lion"], [0.01, 0.1], 20, 2)
    seen: list[tuple[int, int]] = []
    counts = runner.execute(
        configs,
        str(tmp_path / "ray"),
        engine="ray",
        address="127.0.0.1:6379",
        torch_threads=1,
        progress=lambda done, total: seen.append((done, total)),
    )
    (dispatch,) = StandIn.made
    # ravine is a test function: the workers need no torch threads set
    assert (dispatch.address, dispatch.threads, dispatch.jobs) == ("127.0.0.1:6379", {None}, 3)
    assert dispatch.beats == 3
    assert (counts.computed, counts.failed) == (8, 4)
    assert counts.errors == ["RuntimeError: boom in sgd"]
    assert seen[-1] == (len(configs) * 20, len(configs) * 20)
    runner.execute([c for c in configs if c.optimizer != "sgd"], str(tmp_path / "local"))
    got, want = curves(tmp_path / "ray"), curves(tmp_path / "local")
    failed = [r for r, (status, _) in got.items() if status == "failed"]
    assert len(failed) == 4 and set(got) - set(failed) == set(want)
    for run_id, (status, loss) in want.items():  # the same computation, repeated
        assert got[run_id][0] == status
        np.testing.assert_array_equal(got[run_id][1], loss)
    StandIn.fail_for = "none"
    try:
        again = runner.execute(configs, str(tmp_path / "ray"), engine="ray")
    finally:
        StandIn.fail_for = "sgd"
    assert (again.computed, again.skipped, again.failed) == (4, 8, 0)  # only the failed ones


def test_workers_get_the_torch_threads_of_torch_problems(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(ray_engine, "RayDispatch", StandIn)
    StandIn.made.clear()
    configs = expand_grid("mlp", ["adam"], [0.01], 2, 1)
    counts = runner.execute(configs, str(tmp_path), engine="ray", torch_threads=1)
    assert counts.computed == 1
    assert StandIn.made[0].threads == {1}
