"""``optimlab report DIR``: regenerate the HTML report (and exports) from a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.checks import real
from . import UsageError, writing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="results folder (holds optimlab.sqlite)")
    parser.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="where to write the HTML report (default DIR/report.html)",
    )
    parser.add_argument("--csv", default=None, metavar="FILE", help="also export runs as CSV")
    parser.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="also export runs (with per-step curves) as JSON",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        metavar="LOSS",
        help="state the loss to reach (default: the weakest optimizer's best "
        "median final loss, per study)",
    )
    parser.add_argument(
        "--rank-by",
        default="loss",
        metavar="METRIC",
        help="what ranks the settings: loss (default: held-out loss, or the loss at the "
        "final point of a test function, after the last update), train_loss, accuracy "
        "(or another evaluation), steps or time (to the target)",
    )


def run(args: argparse.Namespace) -> int:
    from ..lab.report import write_report
    from ..lab.results import Results

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"results folder not found: {args.folder!r}")
    if args.target is not None:
        real("--target", args.target)
    outputs = [p for p in (args.out, args.csv, args.json) if p]
    for path in outputs:  # every output's folder exists, before any work
        with writing(path):
            pass
    results = Results.load(folder)  # a folder without a store: FileNotFoundError, one line
    html = args.out or folder / "report.html"
    hint = "" if args.out else "; write the report elsewhere with --out FILE"
    with writing(html, hint):
        path = write_report(folder, args.out, rank_by=args.rank_by, target=args.target)
    print(f"report: {path}")
    if args.csv:
        with writing(args.csv):
            results.to_csv(args.csv)
        print(f"csv: {args.csv} ({len(results)} runs)")
    if args.json:
        with writing(args.json):
            results.to_json(args.json, with_curves=True)
        print(f"json: {args.json} ({len(results)} runs)")
    return 0
