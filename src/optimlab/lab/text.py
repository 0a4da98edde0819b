"""The lab's verdicts as plain text: one table per study, the summary across problems and
one table per swept axis, each with the sentences that say what was ranked and how sure
it is. ``width`` is the terminal's width (``None``: no limit); nothing is ever cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import summary, verdicts
from .analysis import Study
from .metrics import metric_for
from .tables import fmt, paragraph, render

CI = "[95%\u00a0CI]"  # a no-break space: the header wraps around it, never inside


def breakable(label: str) -> str:
    """``ravine (start=random)``: a study label that may wrap before its arguments."""
    return label.replace("(", " (", 1)


def interval(lo: float, hi: float) -> str:
    """``[0.275, 0.36]``: the words of an interval, which may wrap at the space."""
    return f"[{fmt(lo)}, {fmt(hi)}]"


def ranked_cell(row: dict[str, Any]) -> str:
    """The ranked median with its interval stacked below it (none for one run)."""
    med = fmt(row["median"], ".4g")
    if row["distinct"] <= 1 or not math.isfinite(row["median"]):
        return med
    return f"{med}\n{interval(row['ci_lo'], row['ci_hi'])}"


def best_columns(study: Study, rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a study's best-per-optimizer table."""
    metric = study.metric
    side = "loss" if metric.key == "train_loss" else "train_loss"
    show_side = study.evaluation in ("held-out", "unknown") and metric.key in ("loss", "train_loss")
    evals = sorted({k for r in rows for k in r["evals"] if k not in ("loss", metric.key)})
    show_div = any(r["diverged"] for r in rows)
    show_tried = len({r["tried"] for r in rows}) > 1
    side_name = "train loss" if side == "train_loss" else study.loss_metric.short
    prefix = "held-out " if study.evaluation == "held-out" else ""
    ranked = f"{metric.short} median {CI}" if study.distinct_seeds > 1 else metric.short
    header = ["#", "setting", ranked, "vs #1"]
    header += [side_name] if show_side else []
    header += [f"{prefix}{e}" for e in evals]
    header += ["diverged"] if show_div else []
    header += ["steps to target", "LR range (decades)"] if metric.key != "steps" else []
    header += ["time to target (s)"] if metric.key == "steps" else []
    header += ["settings tried"] if show_tried else []
    body = []
    for r in rows:
        cells = [str(r["rank"]), r["setting"], ranked_cell(r), r["versus"]]
        cells += [fmt(r[side], ".4g")] if show_side else []
        cells += [fmt(r["evals"].get(e), ".4g") for e in evals]
        cells += [f"{r['diverged']}/{r['seeds']}"] if show_div else []
        if metric.key != "steps":
            decades = fmt(r["lr_decades"], ".1f") if math.isfinite(r["lr_decades"]) else "none"
            cells += [fmt(r["steps_to_target"], "d"), decades]
        else:
            cells += [fmt(r["time_to_target"], ".3g")]
        cells += [str(r["tried"])] if show_tried else []
        body.append(cells)
    return header, body


def study_notes(study: Study, rows: list[dict[str, Any]]) -> list[str]:
    """The sentences under a study's table: the target, what a tie is, the notes."""
    rule = "stated" if study.explicit_target else verdicts_target_rule(study)
    notes = [
        f"target: {study.loss_metric.short} <= {fmt(study.target, '.4g')} ({rule}); steps "
        "to target: median over seeds of the updates until the first evaluation at or "
        "below it"
    ]
    if len(rows) > 1:
        notes.append(
            "vs #1: tie unless worse by a paired bootstrap over the seeds both ran (the "
            "95% interval of the median difference lies above 0)"
            if study.distinct_seeds > 1
            else "vs #1: one run per setting, so any difference counts (no seeds to vary)"
        )
    if study.evaluation in ("held-out", "unknown") and study.metric.key in ("loss", "train_loss"):
        notes.append(metric_for("train_loss", study.evaluation, study.steps, True).label)
    extra = [
        *study.notes,
        verdicts.budget_note(study),
        verdicts.disagreement_note(study),
        *verdicts.edge_notes(rows),
    ]
    return notes + [f"note: {n}" for n in extra if n]


def verdicts_target_rule(study: Study) -> str:
    return f"the weakest optimizer's best median {study.loss_metric.short}"


def study_title(study: Study) -> list[str]:
    """The lines above a study's table: what is ranked, over what budget and seeds."""
    tried = study.tried()
    n = next(iter(tried.values()), 0)
    same = len(set(tried.values())) == 1
    budget = f"each optimizer tried {n} setting{'' if n == 1 else 's'}" if same and tried else ""
    over = "median over seeds" if study.distinct_seeds > 1 else "one run per setting"
    return [
        f"{study.label}: best setting per optimizer - budget {study.budget}",
        f"ranked by {study.metric.label} ({over}); {study.seeds_text}"
        + (f"; {budget}" if budget else ""),
    ]


def study_text(study: Study, rows: list[dict[str, Any]], width: int | None = None) -> str:
    """A study's title, best-per-optimizer table and notes."""
    if not rows:
        return "\n".join([*study_title(study)[:1], "no finished or diverged runs yet"])
    header, body = best_columns(study, rows)
    parts = [paragraph(line, width, "  ") for line in study_title(study)]
    parts.append(render(header, body, width))
    parts += [paragraph(n, width, "  ") for n in study_notes(study, rows)]
    return "\n".join(parts)


def summary_text(
    tables: Sequence[tuple[Study, list[dict[str, Any]]]], width: int | None = None
) -> str:
    """The table across problems: rank and steps ratio per problem, problems solved, the
    performance-profile score."""
    rows = summary.summary_rows(tables)
    keys = [f"{s.label} ({s.steps} steps)" for s, _ in tables]
    header = ["optimizer", *[breakable(s.label) for s, _ in tables]]
    header += ["solved", f"profile score (tau <= {summary.TAU_MAX:g})"]
    body = []
    for r in rows:
        cells = [r["optimizer"]]
        for k in keys:
            rank = r["ranks"].get(k)
            ratio = r["ratios"].get(k, math.inf)
            cells.append(f"#{rank if rank else '-'} {fmt(ratio, '.2f')}x")
        cells += [f"{r['solved']}/{r['problems']}", fmt(r["score"], ".2f")]
        body.append(cells)
    title = (
        f"across {len(tables)} problems: per problem the rank (#) and the steps to its "
        "target as a multiple of the fastest optimizer's (inf: never), problems solved, "
        "and the performance-profile score"
    )
    note = (
        f"profile score: area under the fraction of problems solved within tau times the "
        f"fastest, 1 <= tau <= {summary.TAU_MAX:g} (1: fastest everywhere), as AlgoPerf "
        "scores"
    )
    right = [False] + [True] * (len(header) - 1)
    return "\n".join(
        [paragraph(title, width, "  "), render(header, body, width, right), paragraph(note, width)]
    )


def axis_cells(row: dict[str, Any]) -> list[str]:
    """A swept axis's row: optimizer, value, best median (its interval stacked below),
    the setting that gave it and the settings tried."""
    best = fmt(row["median"], ".4g")
    if row["seeds"] > 1:
        best += f"\n{interval(row['ci_lo'], row['ci_hi'])}"
    return [row["optimizer"], row["value_text"], best, row["setting"], str(row["tried"])]


def axes_text(study: Study, width: int | None = None) -> str:
    """One table per swept axis: the best result at each of its values, per optimizer."""
    parts = []
    for axis, rows in summary.swept_axes(study).items():
        header = ["optimizer", axis, f"best {study.metric.short} {CI}", "with"]
        header += ["settings tried"]
        body = [axis_cells(r) for r in rows]
        title = f"{study.label}: the best setting at each {axis}, per optimizer"
        parts.append(paragraph(title, width, "  "))
        parts.append(render(header, body, width, [False, False, True, False, True]))
    return "\n".join(parts)


def full_text(
    tables: Sequence[tuple[Study, list[dict[str, Any]]]],
    width: int | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Every study's table (and its swept axes), the summary across problems when there
    are several, and the notes."""
    parts = []
    for study, rows in tables:
        parts.append(study_text(study, rows, width))
        axes = axes_text(study, width)
        if axes:
            parts.append(axes)
    if len(tables) >= 2:
        parts.append(summary_text(tables, width))
    parts += [paragraph(f"note: {n}", width, "  ") for n in notes]
    return "\n\n".join(parts)
