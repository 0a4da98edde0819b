"""Plain-text tables that fit a width without ever cutting a number.

``render(header, rows, width)`` lays a table out in box-drawing characters. Cells may
hold several lines (stacked values, e.g. a median over its interval). When the natural
layout is wider than ``width``, columns are narrowed by wrapping their text at spaces
(never inside a word or a number); when even the longest words do not fit side by side,
each row is printed as a block of ``name: value`` lines instead. ``width=None`` means no
limit (piped output).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

EDGE = 4  # "│ " and " │"
GAP = 3  # " │ "


def fmt(x: Any, spec: str = ".3g") -> str:
    """Numbers for tables: ``-`` for missing, ``inf`` spelled out (``never`` for step
    counts), ints without decimals."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "never" if spec == "d" else ("inf" if x > 0 else "-inf")
    if spec == "d":
        return str(int(x))
    return format(x, spec)


def _lines(text: str) -> list[str]:
    return str(text).split("\n")


def _longest_word(text: str) -> int:
    return max((len(w) for line in _lines(text) for w in line.split()), default=0)


def _natural(text: str) -> int:
    return max((len(line) for line in _lines(text)), default=0)


def wrap(text: str, width: int | None) -> list[str]:
    """``text`` wrapped at spaces to ``width`` (words and numbers are never split)."""
    out: list[str] = []
    for line in _lines(text):
        if width is None or len(line) <= width:
            out.append(line)
        else:
            out.extend(
                textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""]
            )
    return out


def widths(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    first: Sequence[bool] | None = None,
) -> list[int]:
    """Column widths: natural; else narrowed so that the table fits ``width``: first
    wrapping only the headers, then the cells too (the ``first`` columns, e.g. labels,
    before the others, e.g. numbers; widest first), never below a column's longest word;
    ``[]`` when even that does not fit."""
    cols = list(zip(header, *rows, strict=True))
    natural = [max(_natural(c) for c in col) for col in cols]
    if width is None:
        return natural
    room = width - EDGE - GAP * (len(cols) - 1)
    words = [max(_longest_word(c) for c in col) for col in cols]
    cells = [max([_longest_word(col[0])] + [_natural(c) for c in col[1:]]) for col in cols]
    pref = list(first) if first is not None else [False] * len(cols)
    for least in (cells, words):
        if sum(least) <= room:
            out = list(natural)
            while sum(out) > room:
                i = max(
                    range(len(out)),
                    key=lambda j: (out[j] > least[j], out[j] > cells[j] or pref[j], out[j]),
                )
                out[i] -= 1
            return out
    return []


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None = None,
    right: Sequence[bool] | None = None,
) -> str:
    """The table as text no wider than ``width`` (see the module docstring). ``right``
    says which columns are right-aligned (default: all but the first two)."""
    right = list(right) if right is not None else [i >= 2 for i in range(len(header))]
    w = widths(header, rows, width, [not r for r in right])
    if not w:
        return _blocks(header, rows, width)
    out = ["┌" + "┬".join("─" * (n + 2) for n in w) + "┐"]
    out += _row(header, w, [False] * len(w))
    out.append("├" + "┼".join("─" * (n + 2) for n in w) + "┤")
    for row in rows:
        out += _row(row, w, right)
    out.append("└" + "┴".join("─" * (n + 2) for n in w) + "┘")
    return "\n".join(out)


def _row(cells: Sequence[str], w: list[int], right: Sequence[bool]) -> list[str]:
    wrapped = [wrap(c, n) for c, n in zip(cells, w, strict=True)]
    height = max(len(x) for x in wrapped)
    lines = []
    for i in range(height):
        parts = []
        for cell, n, r in zip(wrapped, w, right, strict=True):
            text = cell[i] if i < len(cell) else ""
            parts.append(text.rjust(n) if r else text.ljust(n))
        lines.append("│ " + " │ ".join(parts) + " │")
    return lines


def _blocks(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None) -> str:
    """Each row as ``name: value`` lines (for widths too narrow for columns)."""
    out = []
    for row in rows:
        for name, cell in zip(header, row, strict=True):
            label = " ".join(name.split())
            text = " ".join(_lines(cell))
            out += wrap(f"{label}: {text}", width)
        out.append("")
    return "\n".join(out).rstrip("\n")


def paragraph(text: str, width: int | None, indent: str = "") -> str:
    """A sentence wrapped at spaces to ``width`` (continuation lines indented)."""
    if width is None or len(text) <= width:
        return text
    return "\n".join(
        textwrap.wrap(
            text,
            width,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    )
