"""The HTML report of a results folder: one self-contained file, read only from the store.

``write_report(folder)`` writes ``folder/report.html``: per study (problem x budget) the
protocol (problem, budget, seeds, grid, definitions), the best setting per optimizer with
its spread across seeds, steps and time to target and converging LR range, the LR
sensitivity table, and the figures (loss curves, trajectories over contours for 2-D
problems, LR sensitivity, schedules) embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import analysis
from .results import Results, _atomic_write, fmt
from .store import Store

REPORT_NAME = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}caption{text-align:left;font-weight:600;
padding:.3em 0}.figs{display:flex;flex-wrap:wrap;gap:1em}.figs img{max-width:100%;
border:1px solid #eee}.note{color:#555;font-size:.9em}dl{display:grid;
grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
tr.div td{color:#a33}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _table(
    caption: str,
    header: list[str],
    rows: list[list[Any]],
    left: int = 1,
    classes: list[str] | None = None,
) -> str:
    th = "".join(
        f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(header)
    )
    body = []
    for j, row in enumerate(rows):
        cls = f' class="{classes[j]}"' if classes and classes[j] else ""
        tds = "".join(
            f'<td class="{"l" if i < left else ""}">{_esc(v)}</td>' for i, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{tds}</tr>")
    return (
        f"<table><caption>{_esc(caption)}</caption><thead><tr>{th}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _grid_text(study: analysis.Study) -> list[tuple[str, str]]:
    """The protocol as (term, description) pairs."""
    recs = study.records
    items = [
        ("problem", study.label),
        ("budget", f"{study.steps} steps per run"),
        ("seeds", f"{len(study.seeds)} ({', '.join(map(str, study.seeds))})"),
    ]
    for opt in sorted({r["optimizer"] for r in recs}):
        mine = [r for r in recs if r["optimizer"] == opt]
        lrs = sorted({r["lr"] for r in mine})
        text = f"{len(lrs)} learning rates from {lrs[0]:.3g} to {lrs[-1]:.3g}"
        varied = {}
        for k in sorted(mine[0]["hyperparams"]):
            vals = sorted({repr(r["hyperparams"][k]) for r in mine})
            if k != "lr" and len(vals) > 1:
                varied[k] = vals
        if varied:
            text += "; " + "; ".join(f"{k} in {{{', '.join(v)}}}" for k, v in varied.items())
        scheds = sorted(
            {
                analysis.setting_label(r, with_lr=False).partition("+ ")[2] or "constant"
                for r in mine
            }
        )
        text += f"; schedules: {', '.join(scheds)}"
        items.append((opt, text))
    n = {s: sum(r["status"] == s for r in recs) for s in ("finished", "diverged", "failed")}
    items.append(
        (
            "runs",
            f"{len(recs)} ({n['finished']} finished, {n['diverged']} diverged, "
            f"{n['failed']} failed)",
        )
    )
    items.append(
        (
            "ranking",
            f"median over seeds of {study.criterion}; a diverged run counts "
            f"as +inf; median initial loss {fmt(study.initial_loss)}, best "
            f"final loss of any run {fmt(study.best_loss)}",
        )
    )
    rule = "stated" if study.explicit_target else analysis.TARGET_RULE
    items.append(
        (
            "target",
            f"loss <= {fmt(study.target, '.4g')} ({rule}); steps and "
            f"seconds to target are medians over seeds",
        )
    )
    items.append(
        (
            "converging LR",
            "no seed diverged and median final loss <= target; range "
            "width = log10(hi/lo) of the contiguous block of converging "
            "grid LRs around the best LR",
        )
    )
    return items


def _best_html(study: analysis.Study, rows: list[dict[str, Any]]) -> str:
    eval_names = sorted({k for r in rows for k in r["evals"]})
    header = [
        "#",
        "best setting",
        "median",
        "IQR",
        "min-max",
        "diverged",
        "steps to target",
        "time to target (s)",
        "reached",
        "LR range (decades)",
        *(f"eval {e}" for e in eval_names),
    ]
    body = [
        [
            r["rank"],
            r["setting"],
            fmt(r["median"], ".4g"),
            f"{fmt(r['q25'])} - {fmt(r['q75'])}",
            f"{fmt(r['min'])} - {fmt(r['max'])}",
            f"{r['diverged']}/{r['seeds']}",
            fmt(r["steps_to_target"], "d"),
            fmt(r["time_to_target"], ".3g"),
            f"{r['reached']}/{r['seeds']}",
            (
                f"{r['lr_decades']:.2f} ({r['lr_lo']:.2g} - {r['lr_hi']:.2g})"
                if math.isfinite(r["lr_decades"])
                else "none converges"
            ),
            *(fmt(r["evals"].get(e), ".4g") for e in eval_names),
        ]
        for r in rows
    ]
    caption = (
        f"Best setting per optimizer - {study.label}, budget {study.budget}, "
        f"{study.criterion} (median over seeds)"
    )
    return _table(caption, header, body, left=2)


def _sensitivity_html(study: analysis.Study) -> str:
    rows = analysis.sensitivity_rows(study)
    body = [
        [
            r["variant"],
            f"{r['lr']:.3g}",
            fmt(r["median"], ".4g"),
            f"{fmt(r['q25'])} - {fmt(r['q75'])}",
            f"{r['diverged']}/{r['seeds']}",
            "yes" if r["converges"] else "no",
        ]
        for r in rows
    ]
    caption = f"Final loss against learning rate - {study.label}, budget {study.budget}"
    classes = ["div" if r["diverged"] else "" for r in rows]
    return _table(
        caption,
        ["setting", "lr", "median final loss", "IQR", "diverged", "converges"],
        body,
        left=1,
        classes=classes,
    )


def _problem_object(study: analysis.Study) -> Any | None:
    try:
        from .. import problems

        return problems.get(study.problem, **study.problem_kwargs)
    except Exception:  # the report still works without contours
        return None


def _figures(study: analysis.Study, curves: Any) -> list[str]:
    from . import plots

    figs = [(plots.loss_curves(study, curves), "loss curves")]
    traj = plots.trajectories(study, curves.trajectory, _problem_object(study))
    if traj is not None:
        figs.append((traj, "trajectories"))
    figs.append((plots.lr_sensitivity(study), "LR sensitivity"))
    sched = plots.lr_schedules(study, curves)
    if sched is not None:
        figs.append((sched, "schedules"))
    return [_img(plots.to_png(fig), alt) for fig, alt in figs]


def render(
    folder: str | os.PathLike[str],
    *,
    criterion: str = "final_loss",
    target: float | Mapping[str, float] | None = None,
) -> str:
    """The report of ``folder`` as an HTML string (read only from its store)."""
    results = Results.load(folder)
    with Store(folder, create=False, readonly=True) as store:
        counts = store.counts()
        failed = store.runs(status=("failed",))
    parts = [
        f"<h1>optimlab report</h1><p class='note'>Results folder "
        f"<code>{_esc(Path(folder).resolve())}</code>, generated "
        f"{_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} from its store "
        f"({', '.join(f'{v} {k}' for k, v in counts.items() if v)}).</p>"
    ]
    studies = results.studies(criterion, target)
    if not studies:
        parts.append("<p>No finished runs yet.</p>")
    with results.curves() as curves:
        for study in studies:
            rows = analysis.best_table(study, curves)
            parts.append(f"<h2>{_esc(study.label)} - {study.steps} steps</h2>")
            parts.append(
                "<h3>Protocol</h3><dl>"
                + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in _grid_text(study))
                + "</dl>"
            )
            if not study.settings:
                parts.append("<p>No finished or diverged runs in this study yet.</p>")
                continue
            parts.append(
                "<h3>Best setting per optimizer</h3>"
                + _best_html(study, rows)
                + "".join(f"<p class='note'>Note: {_esc(n)}</p>" for n in analysis.edge_notes(rows))
            )
            parts.append(
                "<h3>Figures</h3><div class='figs'>" + "".join(_figures(study, curves)) + "</div>"
            )
            parts.append("<h3>Learning-rate sensitivity</h3>" + _sensitivity_html(study))
    if failed:
        rows_f = [
            [r["problem"], r["optimizer"], f"{r['lr']:.3g}", r["seed"], (r["error"] or "")[:200]]
            for r in failed
        ]
        parts.append(
            "<h2>Failed runs</h2>"
            + _table(
                "Runs whose computation raised (rerun the command to retry them)",
                ["problem", "optimizer", "lr", "seed", "error"],
                rows_f,
                left=5,
            )
        )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>optimlab report</title>"
        f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_report(
    folder: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    criterion: str = "final_loss",
    target: float | Mapping[str, float] | None = None,
) -> Path:
    """Write the report of ``folder`` (default ``folder/report.html``) atomically; its path."""
    out = Path(path) if path is not None else Path(folder) / REPORT_NAME
    _atomic_write(out, render(folder, criterion=criterion, target=target))
    return out
