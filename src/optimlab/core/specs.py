"""The one parser of ``name:key=value,...`` specs (schedules, problems, CLI options).

``parse_spec("multistep:milestones=(30,60),gamma=0.5")`` gives
``("multistep", {"milestones": (30, 60), "gamma": 0.5})``. Values are Python literals
(numbers, tuples, lists, strings in quotes) or bare words: ``true``/``false`` and
``none``/``null`` in any case are booleans and ``None``, any other word is a string
(``mode=triangular2``). Commas inside brackets or quotes do not split; an empty part
(``a=1,,b=2``, a trailing comma), unbalanced brackets, an open quote and a key given
twice are errors, and every error names the spec.
"""

from __future__ import annotations

import ast
from typing import Any

_WORDS = {"true": True, "false": False, "none": None, "null": None}
_OPEN, _CLOSE = "([{", ")]}"


def split_top(text: str, what: str = "text") -> list[str]:
    """``text`` split at the commas that are not inside brackets or quotes, each part
    stripped; ``[]`` for blank text.

    Empty parts are kept (``"a,,b"`` gives ``["a", "", "b"]``) so that callers refuse
    them instead of silently reading fewer values. Unbalanced brackets and an unclosed
    quote raise ``ValueError`` naming ``what``.
    """
    if not text.strip():
        return []
    parts: list[str] = []
    stack: list[str] = []
    quote, start = "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            stack.append(_CLOSE[_OPEN.index(ch)])
        elif ch in _CLOSE:
            if not stack or stack.pop() != ch:
                raise ValueError(f"{what} must have balanced brackets and quotes, got {text!r}")
        elif ch == "," and not stack:
            parts.append(text[start:i])
            start = i + 1
    if quote or stack:
        raise ValueError(f"{what} must have balanced brackets and quotes, got {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts]


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
    try:
        items = split_top(text, what)
    except ValueError:
        if spec is None:
            raise
        raise ValueError(f"{what} must have balanced brackets and quotes, got {spec!r}") from None
    for item in items:
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
