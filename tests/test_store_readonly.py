"""Reading a store never writes it: ``Store(folder, readonly=True)``, used by ``Results``
and the report (the read-only folder itself: ``tests/test_store_faults.py``, slow)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from optimlab.lab import compare
from optimlab.lab.store import Store, StoreError
from optimlab.lab.store.faults import StoreFault, fault


def _store(folder: Path) -> None:
    compare("rosenbrock", ["adam"], [1e-2, 1e-1], 10, 1, out=str(folder))


def test_a_reader_writes_nothing_and_leaves_no_wal_files(tmp_path: Path) -> None:
    _store(tmp_path)
    db = tmp_path / "optimlab.sqlite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimlab.sqlite"]  # tidy
    before = db.read_bytes()
    with Store(tmp_path, readonly=True) as store:
        assert store.counts()["finished"] == 2
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.conn.execute("DELETE FROM runs")
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimlab.sqlite"]


def test_a_reader_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no results store"):
        Store(tmp_path, readonly=True)
    db = tmp_path / "optimlab.sqlite"
    db.write_bytes(b"")  # left by a disk that was full before the store existed
    with pytest.raises(FileNotFoundError, match=r"optimlab.sqlite is empty\); run 'optimlab"):
        Store(tmp_path, readonly=True)
    db.unlink()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE notes (body TEXT)")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        Store(tmp_path, readonly=True)
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("name", "kind", "needle"),
    [
        ("SQLITE_FULL", "full", "disk full writing"),
        ("SQLITE_IOERR_WRITE", "io", "disk I/O error on"),
        ("SQLITE_CORRUPT", "corrupt", "is corrupted"),
        ("SQLITE_NOTADB", "corrupt", "is corrupted"),
        ("SQLITE_READONLY", "readonly", "is read-only"),
        ("SQLITE_BUSY", "locked", "stayed locked by another process for 60 s"),
    ],
)
def test_sqlite_errors_become_one_line_naming_the_file(
    tmp_path: Path, name: str, kind: str, needle: str
) -> None:
    exc = sqlite3.OperationalError("what sqlite said")
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    found = fault(tmp_path / "optimlab.sqlite", exc, 60.0)
    assert isinstance(found, StoreFault) and found.kind == kind
    text = str(found)
    assert needle in text and repr(str(tmp_path / "optimlab.sqlite")) in text
    assert "\n" not in text


def test_errors_that_are_not_the_environments_stay_bugs(tmp_path: Path) -> None:
    exc = sqlite3.OperationalError("no such column: x")
    exc.sqlite_errorname = "SQLITE_ERROR"  # type: ignore[attr-defined]
    assert fault(tmp_path / "optimlab.sqlite", exc) is None
