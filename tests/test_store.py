"""The SQLite results store: idempotent inserts, exclusive claims, owner-only writes,
stale-run recovery, foreign databases refused, exports."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optimlab.lab.config import RunConfig, full_hyperparams
from optimlab.lab.record import Trace
from optimlab.lab.results import Results
from optimlab.lab.store import Store, StoreError


def _configs(n: int = 3, steps: int = 5) -> list[RunConfig]:
    return [
        RunConfig("rosenbrock", "adam", full_hyperparams("adam", {"lr": 10.0**-k}), steps)
        for k in range(1, n + 1)
    ]


def _result(cfg: RunConfig, status: str = "finished", scale: float = 1.0) -> Trace:
    steps = cfg.steps
    loss = scale * np.linspace(4.0, 1.0, steps)
    return Trace(
        status=status,
        loss=loss,
        lr=np.full(steps, cfg.lr),
        grad_norm=loss / 2,
        update_norm=np.full(steps, 0.1),
        time=np.arange(1, steps + 1) * 0.01,
        evals=[(steps, {"loss": float(loss[-1]), "distance": 0.5})],
        trajectory=np.stack([np.arange(steps + 1.0), np.zeros(steps + 1)], axis=1),
        diverged_step=steps - 1 if status == "diverged" else None,
    )


def test_add_is_idempotent_and_counts(tmp_path: Path) -> None:
    cfgs = _configs()
    with Store(tmp_path) as store:
        assert store.add(cfgs) == {"new": 3, "done": 0, "requeued": 0, "pending": 0}
        assert store.add(cfgs) == {"new": 0, "done": 0, "requeued": 0, "pending": 3}
        assert store.counts()["queued"] == 3
        n_rows = store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        assert n_rows == 3


def test_claims_are_exclusive_and_only_the_owner_writes(tmp_path: Path) -> None:
    cfgs = _configs()
    with Store(tmp_path) as a, Store(tmp_path) as b:
        a.add(cfgs)
        ids = [c.run_id for c in cfgs]
        got_a = a.claim(ids[:2])
        got_b = b.claim(ids)
        assert got_a == ids[:2] and got_b == ids[2:]
        # b cannot write a's runs; a's write lands
        assert b.finish({ids[0]: _result(cfgs[0], scale=99.0)}) == []
        assert a.finish({ids[0]: _result(cfgs[0]), ids[1]: _result(cfgs[1], "diverged")}) == ids[:2]
        assert b.finish({ids[2]: _result(cfgs[2])}) == ids[2:]
        # a finished run is never overwritten, not even by its former owner
        assert a.finish({ids[0]: _result(cfgs[0], scale=99.0)}) == []
        assert a.metrics(ids[0])["loss"][0] == 4.0
        assert a.counts() == {"queued": 0, "running": 0, "finished": 2, "diverged": 1, "failed": 0}
        assert a.add(cfgs)["done"] == 3
        assert a.claim(ids) == []


def test_result_round_trip(tmp_path: Path) -> None:
    cfg = _configs(1)[0]
    res = _result(cfg)
    res.loss[2] = np.nan  # NaN survives as NaN (stored as NULL)
    with Store(tmp_path) as store:
        store.add([cfg])
        store.claim([cfg.run_id])
        store.finish({cfg.run_id: res})
        m = store.metrics(cfg.run_id)
        assert np.array_equal(m["step"], np.arange(cfg.steps))
        np.testing.assert_array_equal(m["loss"], res.loss)
        np.testing.assert_array_equal(m["time"], res.time)
        assert store.evals(cfg.run_id) == [(cfg.steps, {"distance": 0.5, "loss": 1.0})]
        np.testing.assert_array_equal(store.trajectory(cfg.run_id), res.trajectory)
        row = store.runs()[0]
        assert row["status"] == "finished" and row["final_loss"] == 1.0
        assert row["initial_loss"] == 4.0 and row["min_loss"] == 1.0
        assert row["config"] == cfg.canonical()
        assert store.integrity_ok()


def test_release_and_fail_and_requeue_of_failed(tmp_path: Path) -> None:
    cfgs = _configs()
    ids = [c.run_id for c in cfgs]
    with Store(tmp_path) as store:
        store.add(cfgs)
        store.claim(ids)
        store.release(ids[:1])
        store.fail(ids[1:2], "RuntimeError: boom")
        assert store.status_of(ids) == {ids[0]: "queued", ids[1]: "failed", ids[2]: "running"}
        assert store.runs(status=("failed",))[0]["error"] == "RuntimeError: boom"
        assert store.add(cfgs) == {"new": 0, "done": 0, "requeued": 1, "pending": 2}
        assert store.status_of(ids)[ids[1]] == "queued"


def test_rows_of_a_dead_process_are_requeued_live_ones_kept(tmp_path: Path) -> None:
    cfgs = _configs()
    ids = [c.run_id for c in cfgs]
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    with Store(tmp_path) as a, Store(tmp_path) as b:
        a.add(cfgs)
        a.claim(ids)  # held by a live owner (this process)
        with a.transaction() as c:  # pretend run 0 was held by a process that has died
            c.execute(
                "UPDATE runs SET pid = ?, owner = 'gone' WHERE run_id = ?", (dead_pid, ids[0])
            )
            c.execute(
                "UPDATE runs SET heartbeat = 0, host = 'elsewhere', owner = 'far' WHERE run_id = ?",
                (ids[1],),
            )
        assert b.requeue_stale(stale_after=600) == 2
        assert b.status_of(ids) == {ids[0]: "queued", ids[1]: "queued", ids[2]: "running"}


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "optimlab.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="another program"):
        Store(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "optimlab.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not an optimlab results store"):
        Store(tmp_path / "x")


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path) as store, store.transaction() as c:
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(tmp_path)


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no results store"):
        Store(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_exports_csv_and_json(tmp_path: Path) -> None:
    cfgs = _configs()
    with Store(tmp_path) as store:
        store.add(cfgs)
        store.claim([c.run_id for c in cfgs])
        store.finish(
            {
                c.run_id: _result(c, s)
                for c, s in zip(cfgs, ["finished", "diverged", "finished"], strict=True)
            }
        )
    res = Results.load(tmp_path)
    assert len(res) == 3
    assert res.to_csv(tmp_path / "runs.csv") is None  # written row by row
    rows = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert (tmp_path / "runs.csv").read_text() == res.to_csv()
    assert {r["run_id"] for r in rows} == {c.run_id for c in cfgs}
    assert sorted(r["status"] for r in rows) == ["diverged", "finished", "finished"]
    assert {float(r["hp_lr"]) for r in rows} == {0.1, 0.01, 0.001}
    assert all(r["eval_distance"] == "0.5" for r in rows)
    assert res.to_json(tmp_path / "runs.json", with_curves=True) is None  # run by run
    data = json.loads(res.to_json(with_curves=True))
    assert len(data) == 3
    assert all(len(d["curve"]["loss"]) == 5 for d in data)
    assert json.loads((tmp_path / "runs.json").read_text()) == data
    # the store holds only plain SQL values: no blobs, nothing to unpickle
    con = sqlite3.connect(tmp_path / "optimlab.sqlite")
    for table in ("runs", "metrics", "evals", "trajectory", "meta"):
        types: set[str] = set()
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        for col in cols:
            types |= {t for (t,) in con.execute(f"SELECT DISTINCT typeof({col}) FROM {table}")}
        assert "blob" not in types, table
    con.close()


def test_rows_under_this_pid_but_no_live_owner_are_stale(tmp_path: Path) -> None:
    # a killed process whose pid was later reused by this one must not block us forever
    cfgs = _configs(2)
    ids = [c.run_id for c in cfgs]
    with Store(tmp_path) as a, Store(tmp_path) as b:
        a.add(cfgs)
        a.claim(ids)
        with a.transaction() as c:
            c.execute("UPDATE runs SET owner = 'previous-process' WHERE run_id = ?", (ids[0],))
        assert b.requeue_stale() == 1  # a is open in this process: its run stays running
        assert b.status_of(ids) == {ids[0]: "queued", ids[1]: "running"}


def _open_store(folder: str, barrier: Any, queue: Any) -> None:
    barrier.wait()
    try:
        with Store(folder):
            queue.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        queue.put(repr(exc))


def test_processes_creating_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    """F10's start: several processes opening a new results folder at the same instant.

    Switching a new database to WAL can fail with "database is locked" at once, without
    waiting on the busy timeout; that must be retried, never reported as a foreign store.
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for trial in range(20):
        folder = str(tmp_path / f"t{trial}")
        barrier, queue = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_store, args=(folder, barrier, queue)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [queue.get(timeout=5) for _ in procs] == ["ok"] * 6


def test_interrupt_right_after_begin_still_gives_runs_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl+C (or SIGTERM) can land just after BEGIN IMMEDIATE returned, before the
    # transaction's body: the transaction must still be rolled back, so that giving the
    # claimed runs back works and the interrupt (not a sqlite error) reaches the caller
    from optimlab.lab import runner

    configs = _configs(3)
    run_ids = [c.run_id for c in configs]
    orig_retry, orig_finish = Store._execute_retry, Store.finish
    armed: list[bool] = []

    def retry(self: Store, sql: str) -> None:
        orig_retry(self, sql)
        if sql == "BEGIN IMMEDIATE" and armed:
            armed.clear()
            raise KeyboardInterrupt

    def finish(self: Store, results: Any) -> list[str]:
        armed.append(True)
        return orig_finish(self, results)

    monkeypatch.setattr(Store, "_execute_retry", retry)
    monkeypatch.setattr(Store, "finish", finish)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(configs, str(tmp_path))
    monkeypatch.undo()
    with Store(tmp_path) as store:
        assert set(store.status_of(run_ids).values()) == {"queued"}
        assert store.integrity_ok()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_rows_of_a_killed_but_unreaped_process_are_requeued(tmp_path: Path) -> None:
    # a sweep killed by a parent that has not waited for it yet is a zombie: os.kill(pid, 0)
    # still succeeds, but it will never finish its runs; waiting 10 min for it is wrong
    import signal
    import time

    cfgs = _configs(1)
    ids = [c.run_id for c in cfgs]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.send_signal(signal.SIGKILL)
        for _ in range(200):  # until the kernel has made it a zombie
            state = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0]
            if state == "Z":
                break
            time.sleep(0.01)
        with Store(tmp_path) as a:
            a.add(cfgs)
            a.claim(ids)
            with a.transaction() as c:
                c.execute(
                    "UPDATE runs SET pid = ?, owner = 'killed' WHERE run_id = ?",
                    (child.pid, ids[0]),
                )
            assert a.requeue_stale(stale_after=600) == 1
    finally:
        child.wait()
