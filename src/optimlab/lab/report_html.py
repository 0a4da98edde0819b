"""The HTML pieces of the report: a study's verdict, protocol and tables, the summary
across problems, the sweep-axis tables (``report`` assembles the page)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from . import summary, verdicts
from .analysis import Study, setting_label
from .metrics import metric_for
from .tables import fmt
from .text import axis_cells, best_columns, breakable, study_notes


def esc(x: Any) -> str:
    return html.escape(str(x))


def cell(text: str) -> str:
    """A cell's text: stacked lines become lines (the second one small)."""
    first, *rest = str(text).split("\n")
    return esc(first) + "".join(f"<br><span class='ci'>{esc(r)}</span>" for r in rest)


def table(
    caption: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    left: int = 1,
    classes: Sequence[str] | None = None,
) -> str:
    """A table in a scrolling box, so a narrow window scrolls it instead of the page."""
    th = "".join(
        f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(header)
    )
    body = []
    for j, row in enumerate(rows):
        cls = f' class="{classes[j]}"' if classes and classes[j] else ""
        tds = "".join(
            f'<td class="{"l" if i < left else ""}">{cell(v)}</td>' for i, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{tds}</tr>")
    return (
        f"<div class='tw'><table><caption>{esc(caption)}</caption><thead><tr>{th}</tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def verdict(study: Study, rows: list[dict[str, Any]]) -> str:
    """One sentence: the winner with its interval, and who ties with it."""
    if not rows:
        return ""
    top = rows[0]
    ties = [r["optimizer"] for r in rows[1:] if r["versus"] == "tie"]
    ci = "" if top["distinct"] <= 1 else f" [{fmt(top['ci_lo'])}, {fmt(top['ci_hi'])}]"
    text = (
        f"Best: <b>{esc(top['setting'])}</b>, {esc(study.metric.short)} "
        f"{esc(fmt(top['median'], '.4g'))}{esc(ci)} (median over seeds, 95% interval). "
    )
    if ties:
        text += f"Tied with it: {esc(', '.join(ties))}."
    elif len(rows) > 1:
        text += "Every other optimizer is worse on the shared seeds."
    return f"<p class='verdict'>{text}</p>"


def protocol(study: Study) -> str:
    """The protocol as a definition list."""
    recs = study.records
    items = [
        ("problem", study.label),
        ("budget", f"{study.steps} steps per run"),
        ("seeds", f"{len(study.seeds)} ({', '.join(map(str, study.seeds))}); {study.seeds_text}"),
    ]
    tried = study.tried()
    for opt in sorted({r["optimizer"] for r in recs}):
        mine = [r for r in recs if r["optimizer"] == opt]
        lrs = sorted({r["lr"] for r in mine})
        text = f"{len(lrs)} learning rates from {lrs[0]:.3g} to {lrs[-1]:.3g}"
        for k in sorted(mine[0]["hyperparams"]):
            vals = sorted({repr(r["hyperparams"][k]) for r in mine})
            if k != "lr" and len(vals) > 1:
                text += f"; {k} in {{{', '.join(vals)}}}"
        scheds = sorted(
            {setting_label(r, with_lr=False).partition("+ ")[2] or "constant" for r in mine}
        )
        text += f"; schedules: {', '.join(scheds)}; {tried.get(opt, 0)} settings tried"
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
            f"median over seeds of the {study.metric.label}; a diverged run counts as the "
            f"worst value; interval: 95% bootstrap of the median over seeds; median "
            f"initial loss {fmt(study.initial_loss)}, best final {study.loss_metric.short} "
            f"of any run {fmt(study.best_loss)}",
        )
    )
    if study.evaluation in ("held-out", "unknown"):
        items.append(("train loss", verdicts_train_text(study)))
    items += [(k, v) for k, v in definitions(study)]
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def verdicts_train_text(study: Study) -> str:
    return metric_for("train_loss", study.evaluation, study.steps, True).label


def definitions(study: Study) -> list[tuple[str, str]]:
    rule = "stated" if study.explicit_target else "the weakest optimizer's best median"
    return [
        (
            "target",
            f"{study.loss_metric.short} <= {fmt(study.target, '.4g')} ({rule}); steps and "
            "seconds to target are medians over seeds",
        ),
        (
            "tie",
            "tied with #1 unless worse by a paired bootstrap over the seeds both ran (the "
            "95% interval of the median difference lies above 0; with 3 seeds: worse on "
            "every seed)",
        ),
        (
            "converging LR",
            "no seed diverged and median final loss <= target; range width = log10(hi/lo) "
            "of the contiguous block of converging grid LRs around the best LR",
        ),
    ]


def best_html(study: Study, rows: list[dict[str, Any]]) -> str:
    """The best-per-optimizer table: the terminal's columns, with the seconds to target
    and the seeds that reached it stacked under the steps."""
    header, body = best_columns(study, rows)
    if "steps to target" in header:
        i = header.index("steps to target")
        header[i] = "steps to target (seconds; seeds reaching it)"
        for r, cells in zip(rows, body, strict=True):
            cells[i] += f"\n{fmt(r['time_to_target'], '.3g')} s; {r['reached']}/{r['seeds']}"
    caption = (
        f"Best setting per optimizer - {study.label}, budget {study.budget}, ranked by "
        f"{study.metric.short} (median over seeds)"
    )
    notes = "".join(f"<p class='note'>{esc(n)}</p>" for n in study_notes(study, rows))
    return table(caption, header, body, left=2) + notes


def sensitivity_html(study: Study) -> str:
    rows = verdicts.sensitivity_rows(study)
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
    caption = f"{study.metric.short} against learning rate - {study.label}, budget {study.budget}"
    classes = ["div" if r["diverged"] else "" for r in rows]
    header = ["setting", "lr", f"median {study.metric.short}", "IQR", "diverged", "converges"]
    return table(caption, header, body, left=1, classes=classes)


def axes_html(study: Study, axes: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for axis, rows in axes.items():
        body = [axis_cells(r) for r in rows]
        header = ["optimizer", axis, f"best {study.metric.short}", "with", "settings tried"]
        parts.append(
            table(f"The best setting at each {axis} - {study.label}", header, body, left=2)
        )
    return "".join(parts)


def summary_html(tables: Sequence[tuple[Study, list[dict[str, Any]]]]) -> str:
    rows = summary.summary_rows(tables)
    keys = [f"{s.label} ({s.steps} steps)" for s, _ in tables]
    header = ["optimizer", *[breakable(s.label) for s, _ in tables], "solved", "profile score"]
    body = []
    for r in rows:
        cells: list[Any] = [r["optimizer"]]
        for k in keys:
            ratio = r["ratios"].get(k, math.inf)
            cells.append(f"#{r['ranks'].get(k) or '-'}\n{fmt(ratio, '.2f')}x the fastest")
        cells += [f"{r['solved']}/{r['problems']}", fmt(r["score"], ".2f")]
        body.append(cells)
    caption = (
        f"Across {len(tables)} problems: rank, steps to target as a multiple of the fastest "
        f"optimizer's, problems solved, performance-profile score (tau <= {summary.TAU_MAX:g})"
    )
    return table(caption, header, body, left=1)
