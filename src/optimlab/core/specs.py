"""The one parser of ``name:key=value,...`` specs (schedules, problems, CLI options).

``parse_spec("multistep:milestones=(30,60),gamma=0.5")`` gives
``("multistep", {"milestones": (30, 60), "gamma": 0.5})``. Values are Python literals
(numbers, tuples, lists, strings in quotes) or bare words: ``true``/``false`` and
``none``/``null`` in any case are booleans and ``None``, any other word is a string
(``mode=triangular2``). Commas inside brackets do not split, a key given twice is an
error, and every error names the spec.
"""

from __future__ import annotations

import ast
from typing import Any

_WORDS = {"true": True, "false": False, "none": None, "null": None}


def split_top(text: str) -> list[str]:
    """``text`` split at the commas that are not inside brackets; empty parts dropped."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_value(text: str) -> Any:
    """A value from text: a Python literal, ``true``/``false``/``none``, else the string."""
    text = text.strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text  # a bare word such as cosine or exp_range


def parse_options(text: str, what: str = "options", spec: str | None = None) -> dict[str, Any]:
    """``"key=value,key=value"`` as a dict (values by :func:`parse_value`)."""
    out: dict[str, Any] = {}
    for item in split_top(text):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not key.isidentifier():
            raise ValueError(f"{what} must look like key=value, got {item!r} in {spec or text!r}")
        if key in out:
            raise ValueError(f"{key} is given twice in {spec or text!r}")
        out[key] = parse_value(value)
    return out


def parse_spec(spec: str, what: str = "spec") -> tuple[str, dict[str, Any]]:
    """``"name:key=value,..."`` -> ``(name, {key: value})``; ``"name"`` -> ``(name, {})``."""
    if not isinstance(spec, str):
        raise ValueError(f"{what} must be a string like 'name:key=value', got {spec!r}")
    name, _, rest = spec.partition(":")
    if not name.strip():
        raise ValueError(f"{what} must start with a name, got {spec!r}")
    return name.strip(), parse_options(rest, f"{what} options", spec)
