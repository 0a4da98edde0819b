"""Peak memory of ``optimlab report --json/--csv`` on a large store. Prints; never asserts.

Builds a store of N runs (default 10,000; Adam on Rosenbrock, 200 steps, a 201-point
trajectory each: what ``optimlab compare`` stores) directly with the store API, with
synthetic curves instead of computed ones, then runs ``optimlab report`` in a child
process for each export and prints its peak resident set size (``ru_maxrss``); then the
memory the export itself allocates (``tracemalloc``), which does not grow with the runs.

    python benchmarks/report_memory.py                 # 10,000 runs
    python benchmarks/report_memory.py --runs 1000     # smaller
    python benchmarks/report_memory.py --store DIR     # reuse (or build once in) DIR
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from optimlab.lab.config import RunConfig, full_hyperparams
from optimlab.lab.record import Trace
from optimlab.lab.results import Results
from optimlab.lab.store import Store


def build_store(folder: Path, runs: int, steps: int = 200, chunk: int = 500) -> None:
    """``runs`` finished Adam runs on Rosenbrock (distinct learning rates) in ``folder``."""
    rng = np.random.default_rng(0)
    lrs = np.logspace(-5, 0, runs)
    with Store(folder) as store:
        for start in range(0, runs, chunk):
            configs = [
                RunConfig("rosenbrock", "adam", full_hyperparams("adam", {"lr": float(lr)}), steps)
                for lr in lrs[start : start + chunk]
            ]
            store.add(configs)
            store.claim([c.run_id for c in configs])
            traces = {}
            for c in configs:
                loss = np.exp(-np.linspace(0, 5, steps)) * rng.uniform(1, 2)
                traces[c.run_id] = Trace(
                    status="finished",
                    loss=loss,
                    lr=np.full(steps, c.lr),
                    grad_norm=loss * 2,
                    update_norm=np.full(steps, c.lr),
                    time=np.arange(1, steps + 1) * 1e-4,
                    trajectory=rng.normal(size=(steps + 1, 2)),
                )
            store.finish(traces)


def peak_rss_mib(argv: list[str]) -> float:
    """Peak RSS of ``optimlab ARGV`` run in a child process, in MiB."""
    code = (
        "import resource, sys\n"
        "from optimlab.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    )
    return int(proc.stderr.strip().splitlines()[-1]) / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--store", default=None, help="store folder (built if empty)")
    args = parser.parse_args()
    folder = Path(args.store or tempfile.mkdtemp(prefix="optimlab-mem-"))
    if not (folder / "optimlab.sqlite").exists():
        start = time.perf_counter()
        build_store(folder, args.runs)
        print(f"built {args.runs} runs in {time.perf_counter() - start:.1f} s: {folder}")
    size = os.path.getsize(folder / "optimlab.sqlite") / 2**20
    print(f"store: {size:.0f} MiB")
    out = Path(tempfile.mkdtemp(prefix="optimlab-mem-out-"))
    base = ["report", str(folder), "--out", str(out / "report.html")]
    print(f"report (HTML only)       peak RSS {peak_rss_mib(base):7.0f} MiB")
    for flag, name in (("--csv", "runs.csv"), ("--json", "runs.json")):
        rss = peak_rss_mib([*base, flag, str(out / name)])
        file_mib = os.path.getsize(out / name) / 2**20
        print(f"report {flag:<6} ({file_mib:5.0f} MiB) peak RSS {rss:7.0f} MiB")
    results = Results.load(folder)
    for name, export in (
        ("csv", lambda: results.to_csv(out / "again.csv")),
        ("json", lambda: results.to_json(out / "again.json", with_curves=True)),
    ):
        tracemalloc.start()
        export()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"export {name:<4} alone (records loaded): peak traced {peak / 2**20:7.2f} MiB")


if __name__ == "__main__":
    main()
