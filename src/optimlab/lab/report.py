"""The HTML report of a results folder: one self-contained file, read only from the store.

``write_report(folder)`` writes ``folder/report.html``: per study (problem x budget) the
verdict (the best setting with its interval and who ties with it), the best setting per
optimizer with intervals, ties, training loss, steps and time to target and converging LR
range, the notes (budgets that differ, rankings that disagree), the figures (training
loss, held-out loss, gradient and update norms, trajectories over contours for 2-D
problems, the ranked metric against LR, schedules), a table and a figure per swept axis,
the protocol (problem, budget, what a seed changes, the grid and settings tried per
optimizer, definitions) and the LR sensitivity table; with two or more studies, a summary
across problems and a performance profile. Images are embedded as
base64 PNG; where there is nothing to draw the report says why.
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import summary, verdicts
from .analysis import Study
from .report_html import (
    axes_html,
    best_html,
    esc,
    protocol,
    sensitivity_html,
    summary_html,
    verdict,
)
from .report_html import table as html_table
from .results import Results, _atomic_write
from .store import Store

REPORT_NAME = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;
max-width:1100px;color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.tw{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.6em 0 .4em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f2f2f2;font-weight:600}td.l,th.l{text-align:left}
td{white-space:nowrap}td.l{white-space:normal}
.ci{color:#666;font-size:.9em}caption{text-align:left;font-weight:600;padding:.3em 0}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs img{max-width:100%;height:auto;
border:1px solid #eee}.note{color:#555;font-size:.9em;margin:.2em 0}
.verdict{background:#f4f8ff;border-left:4px solid #4a7bd0;padding:.4em .8em}
.empty{color:#a33;font-style:italic}dl{display:grid;
grid-template-columns:max-content minmax(0,1fr);gap:.2em 1em}dt{font-weight:600}dd{margin:0}
tr.div td{color:#a33}
@media (max-width:700px){dl{grid-template-columns:1fr}body{padding:0 .5em}}
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _problem_object(study: Study) -> Any | None:
    try:
        from .. import problems

        return problems.get(study.problem, **study.problem_kwargs)
    except Exception:  # the report still works without contours
        return None


def _empty(text: str) -> str:
    return f"<p class='empty'>{esc(text)}</p>"


def _figures(study: Study, curves: Any) -> list[str]:
    """The study's figures as <img> tags, and a sentence where one has nothing to draw."""
    from . import plots

    out = []
    loss = plots.loss_curves(study, curves)
    if loss is None:
        out.append(_empty("No loss curve: every run diverged before a finite loss was recorded."))
    made = [
        (loss, "loss curves"),
        (plots.heldout_curves(study, curves), "held-out curves"),
        (plots.norm_curves(study, curves), "gradient and update norms"),
        (plots.trajectories(study, curves.trajectory, _problem_object(study)), "trajectories"),
        (plots.lr_sensitivity(study), "LR sensitivity"),
        (plots.lr_schedules(study, curves), "schedules"),
    ]
    out += [_img(plots.to_png(fig), alt) for fig, alt in made if fig is not None]
    return out


def _study_html(study: Study, rows: list[dict[str, Any]], curves: Any) -> list[str]:
    from . import plots

    parts = [f"<h2>{esc(study.label)} - {study.steps} steps</h2>", verdict(study, rows)]
    if not study.settings:
        return [
            *parts,
            "<h3>Protocol</h3>" + protocol(study),
            "<p>No finished or diverged runs in this study yet.</p>",
        ]
    parts.append("<h3>Best setting per optimizer</h3>" + best_html(study, rows))
    parts.append("<h3>Figures</h3><div class='figs'>" + "".join(_figures(study, curves)) + "</div>")
    axes = summary.swept_axes(study)
    if axes:
        figs = [plots.axis_figure(study, axis, r) for axis, r in axes.items()]
        imgs = "".join(_img(plots.to_png(f), "sweep axis") for f in figs if f is not None)
        parts.append(
            "<h3>What the sweep found, axis by axis</h3>"
            + axes_html(study, axes)
            + f"<div class='figs'>{imgs}</div>"
        )
    parts.append("<h3>Protocol</h3>" + protocol(study))
    parts.append("<h3>Learning-rate sensitivity</h3>" + sensitivity_html(study))
    return parts


def render(
    folder: str | os.PathLike[str],
    *,
    rank_by: str = "loss",
    target: float | Mapping[str, float] | None = None,
) -> str:
    """The report of ``folder`` as an HTML string (read only from its store)."""
    from . import plots

    results = Results.load(folder)
    with Store(folder, create=False, readonly=True) as store:
        counts = store.counts()
        failed = store.runs(status=("failed",))
    parts = [
        f"<h1>optimlab report</h1><p class='note'>Results folder "
        f"<code>{esc(Path(folder).resolve())}</code>, generated "
        f"{_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} from its store "
        f"({', '.join(f'{v} {k}' for k, v in counts.items() if v)}).</p>"
    ]
    tables = []
    with results.curves() as curves:
        from .analysis import studies

        for study in studies(results.records, rank_by, target, curves):
            rows = verdicts.best_table(study, curves)
            tables.append((study, rows))
            parts += _study_html(study, rows, curves)
    if not tables:
        parts.append("<p>No finished runs yet.</p>")
    if len(tables) >= 2:
        fig = plots.performance_profile(tables)
        parts.append("<h2>Across problems</h2>" + summary_html(tables))
        if fig is not None:
            parts.append(
                f"<div class='figs'>{_img(plots.to_png(fig), 'performance profile')}</div>"
            )
    if failed:
        rows_f = [
            [r["problem"], r["optimizer"], f"{r['lr']:.3g}", r["seed"], (r["error"] or "")[:200]]
            for r in failed
        ]
        parts.append(
            "<h2>Failed runs</h2>"
            + html_table(
                "Runs whose computation raised (rerun the command to retry them)",
                ["problem", "optimizer", "lr", "seed", "error"],
                rows_f,
                left=5,
            )
        )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>optimlab report</title>"
        f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_report(
    folder: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    rank_by: str = "loss",
    target: float | Mapping[str, float] | None = None,
) -> Path:
    """Write the report of ``folder`` (default ``folder/report.html``) atomically; its path.
    ``rank_by`` and ``target`` as in ``Results.studies``."""
    out = Path(path) if path is not None else Path(folder) / REPORT_NAME
    _atomic_write(out, render(folder, rank_by=rank_by, target=target))
    return out
