"""Faults of the results store's environment, through the command line (subprocesses,
marked slow): pages corrupted past the header, a full disk during a sweep and before the
store exists, a read-only results folder, files that are not ours (F13 of the contract).

Each gives one line on stderr naming the file and what to do, never a traceback; exit
code 2 for a mistake in the request (a foreign file), 3 for a fault of the environment
(full disk, read-only folder, corrupted store); a file that is not ours stays
byte-identical, and no finished run is lost: the same command, once the fault is gone,
finds every run finished before it in the store and skips it.

A full disk is a small tmpfs where this process may mount one (root), else a file-size
limit (``RLIMIT_FSIZE``, which SQLite sees as a failing write); a read-only folder is a
read-only bind mount as root, else ``chmod a-w``.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMALL = [
    "--problem",
    "rosenbrock:start=random",
    "--optimizer",
    "adam",
    "--lrs",
    "1e-3,1e-2,1e-1",
    "--seeds",
]
SMALL_RUN = ["compare", *SMALL, "2", "--steps", "50", "-q", "--no-report"]
N_SMALL = 6
# more than 2 MiB of results (each run stores 200 steps of metrics and its trajectory),
# committed 20 runs at a time
BIG_SWEEP = [
    "sweep",
    "--problem",
    "rosenbrock:start=random",
    "--optimizer",
    "adam,momentum",
    "--lrs",
    "1e-4:1e-1:30",
    "--seeds",
    "4",
    "--steps",
    "200",
    "--max-batch",
    "20",
    "-q",
    "--no-report",
]
N_BIG = 2 * 30 * 4


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def optimlab(*argv: str, preexec: Callable[[], None] | None = None) -> Outcome:
    proc = subprocess.run(
        [sys.executable, "-m", "optimlab", *argv],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        preexec_fn=preexec,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def one_line(result: Outcome, code: int, *needles: str) -> str:
    """The run failed with ``code`` and one line on stderr holding every needle."""
    lines = result.err.strip().splitlines()
    assert result.code == code, result
    assert len(lines) == 1 and lines[0].startswith("optimlab: error: "), result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def finished(folder: Path) -> int:
    """Finished or diverged runs in the store of ``folder`` (read without writing)."""
    con = sqlite3.connect(f"{(folder / 'optimlab.sqlite').as_uri()}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return con.execute(
            "SELECT COUNT(*) FROM runs WHERE status IN ('finished', 'diverged')"
        ).fetchone()[0]
    finally:
        con.close()


def counts(stdout: str) -> tuple[int, int, int]:
    """(requested, computed, skipped) from the summary line of compare/sweep."""
    m = re.search(r"runs: (\d+) requested, (\d+) computed .*?, (\d+) already in the store", stdout)
    assert m, stdout
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


# -- a small disk ----------------------------------------------------------------------------
@dataclass
class SmallDisk:
    """``path`` lives on a disk of about ``size`` bytes until ``grow()``; commands must be
    run with ``preexec`` (the file-size limit where no tmpfs could be mounted)."""

    path: Path
    mounted: bool
    limit: int | None

    def preexec(self) -> Callable[[], None] | None:
        if self.limit is None:
            return None
        limit = self.limit

        def set_limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a kill

        return set_limit

    def grow(self) -> None:
        if self.mounted:
            assert _mount("-o", "remount,size=256m", str(self.path))
        self.limit = None

    def fill(self) -> None:
        """Use every byte left (the tmpfs), or forbid any write (the file-size limit)."""
        if not self.mounted:
            self.limit = 0
            return
        with contextlib.suppress(OSError), open(self.path / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)
        self.grow()


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: int = 2 << 20) -> Iterator[SmallDisk]:
    path = tmp_path / "disk"
    path.mkdir()
    if os.geteuid() == 0 and _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        try:
            yield SmallDisk(path, True, None)
        finally:
            subprocess.run(["umount", "-l", str(path)], check=True)
    else:
        yield SmallDisk(path, False, size)


# -- a read-only folder ----------------------------------------------------------------------
@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """A read-only view of ``folder``: a read-only bind mount as root, else ``chmod a-w``."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield folder
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    if not _mount("--bind", str(folder), str(view)):
        pytest.skip("root without mount permission: no way to make a folder read-only")
    try:
        if not _mount("-o", "remount,ro,bind", str(view)):
            pytest.skip("cannot remount read-only")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=True)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- corruption ------------------------------------------------------------------------------
def test_pages_corrupted_past_the_header_are_one_line_and_left_as_they_are(
    tmp_path: Path,
) -> None:
    out = tmp_path / "res"
    assert optimlab(*SMALL_RUN, "--out", str(out)).code == 0
    db = out / "optimlab.sqlite"
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page :] = bytes(range(256)) * ((len(data) - 2 * page) // 256) + bytes(
        (len(data) - 2 * page) % 256
    )
    db.write_bytes(bytes(data))
    before = _snapshot(out)
    for argv in (
        ["report", str(out), "--out", str(tmp_path / "r.html")],
        [*SMALL_RUN, "--out", str(out)],
    ):
        one_line(optimlab(*argv), 3, str(db), "is corrupted", "move it aside")
    assert _snapshot(out) == before  # nothing written: a corrupted store is left for rescue


# -- a full disk -----------------------------------------------------------------------------
def test_disk_full_during_a_sweep_keeps_finished_runs_and_the_rerun_completes(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path) as disk:
        out = disk.path / "res"
        result = optimlab(*BIG_SWEEP, "--out", str(out), preexec=disk.preexec())
        one_line(result, 3, str(out / "optimlab.sqlite"), "disk", "run the same command again")
        done = finished(out)
        assert 0 < done < N_BIG
        disk.grow()
        again = optimlab(*BIG_SWEEP, "--out", str(out))
        assert again.code == 0, again
        assert counts(again.out) == (N_BIG, N_BIG - done, done)  # nothing finished was lost
        assert finished(out) == N_BIG


def test_disk_full_before_the_store_exists_then_the_same_command_works(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path, 1 << 20) as disk:
        disk.fill()
        out = disk.path / "res"
        result = optimlab(*SMALL_RUN, "--out", str(out), preexec=disk.preexec())
        line = one_line(result, 3, str(out / "optimlab.sqlite"), "disk")
        assert "not an optimlab results store" not in line
        disk.free()
        again = optimlab(*SMALL_RUN, "--out", str(out))
        assert again.code == 0, again
        assert counts(again.out) == (N_SMALL, N_SMALL, 0)


# -- a read-only folder ----------------------------------------------------------------------
def test_a_read_only_store_is_reported_elsewhere_and_never_written(tmp_path: Path) -> None:
    out = tmp_path / "res"
    assert optimlab(*SMALL_RUN, "--out", str(out)).code == 0
    before = _snapshot(out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with read_only(out) as ro:
        report = optimlab(
            "report",
            str(ro),
            "--out",
            str(elsewhere / "r.html"),
            "--json",
            str(elsewhere / "runs.json"),
            "--csv",
            str(elsewhere / "runs.csv"),
        )
        assert report.code == 0, report
        assert f"json: {elsewhere / 'runs.json'} ({N_SMALL} runs)" in report.out
        one_line(optimlab("report", str(ro)), 3, str(ro / "report.html"), "--out FILE")
        # the same sweep: every run is finished, so it only reads; the report cannot be written
        rerun = optimlab(*SMALL_RUN[:-1], "--out", str(ro))
        if rerun.code == 0:  # SQLite could open the store (its -shm file was there)
            assert counts(rerun.out) == (N_SMALL, 0, N_SMALL)
        else:
            one_line(rerun, 3, str(ro / "optimlab.sqlite"), "read-only", "optimlab report")
        more = optimlab(*SMALL_RUN, "--seeds", "3", "--out", str(ro))  # 3 runs to compute
        one_line(more, 3, str(ro), "read-only", "choose another --out")
    assert _snapshot(out) == before


def test_an_empty_read_only_folder_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with read_only(empty) as ro:
        one_line(optimlab("report", str(ro)), 2, str(ro), "no results store")
        one_line(optimlab(*SMALL_RUN, "--out", str(ro)), 3, str(ro), "read-only")
        one_line(optimlab(*SMALL_RUN, "--out", str(ro / "sub")), 3, str(ro / "sub"), "read-only")
    assert list(empty.iterdir()) == []


def test_unmerged_wal_in_a_read_only_folder_is_read_from_a_private_copy(
    tmp_path: Path,
) -> None:
    """A writer killed with its results still in the -wal file, whose -shm file is gone:
    ``immutable=1`` alone would not see those runs."""
    out = tmp_path / "res"
    writer = (
        "import os, signal, sys\n"
        "from optimlab.lab.api import compare\n"
        "from optimlab.lab.store import Store\n"
        "held = Store(sys.argv[1])  # so that compare's own close does not merge the WAL\n"
        "compare('rosenbrock:start=random', ['adam'], [1e-3, 1e-2, 1e-1], 50, 2, out=sys.argv[1])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(out)], env=_env(), timeout=300)
    wal = out / "optimlab.sqlite-wal"
    assert wal.stat().st_size > 0
    (out / "optimlab.sqlite-shm").unlink()
    before = _snapshot(out)
    with read_only(out) as ro:
        csv_path = tmp_path / "runs.csv"
        report = optimlab(
            "report", str(ro), "--out", str(tmp_path / "r.html"), "--csv", str(csv_path)
        )
        assert report.code == 0, report
    assert len(csv_path.read_text().splitlines()) == 1 + N_SMALL
    assert _snapshot(out) == before


# -- files that are not ours -----------------------------------------------------------------
def _foreign_rollback(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users (name TEXT)")
    con.execute("INSERT INTO users VALUES ('ada')")
    con.commit()
    con.close()


def _foreign_wal(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE notes (body TEXT)")
    con.commit()
    con.close()


def _other_app(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('app', 'someone-else')")
    con.commit()
    con.close()


def _not_sqlite(db: Path) -> None:
    db.write_bytes(b"PK\x03\x04 a zip file, say" * 200)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_foreign_rollback, "a SQLite file of another program (tables: users)"),
        (_foreign_wal, "a SQLite file of another program (tables: notes)"),
        (_other_app, "belongs to 'someone-else'"),
        (_not_sqlite, "not a SQLite file"),
    ],
    ids=["rollback-journal", "wal", "other-app", "not-sqlite"],
)
def test_a_file_that_is_not_ours_stays_byte_identical(
    tmp_path: Path, make: Callable[[Path], None], needle: str
) -> None:
    out = tmp_path / "res"
    out.mkdir()
    db = out / "optimlab.sqlite"
    make(db)
    before = _snapshot(out)
    for argv in ([*SMALL_RUN, "--out", str(out)], ["report", str(out)]):
        one_line(optimlab(*argv), 2, str(db), needle)
        after = _snapshot(out)
        assert after[db.name] == before[db.name]  # the same bytes
        if make is not _foreign_wal:  # a WAL reader makes -wal and -shm, as any would
            assert after == before
    shutil.rmtree(out)
