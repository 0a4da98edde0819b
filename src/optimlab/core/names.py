"""The errors for a name that is not in a table, and for a keyword a callee does not take."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, [str(k) for k in known], n=3)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def unknown_name(
    kind: str, name: object, known: Iterable[str], *, match: str | None = None
) -> ValueError:
    """``unknown optimizer 'adamm'; did you mean 'adam'? (known: adam, ...)``.

    ``match`` is the normalised form of ``name`` to look up close matches with (default:
    ``str(name)``); the message shows ``name`` as given.
    """
    known = sorted(known)
    hint = _hint(str(name) if match is None else match, known)
    return ValueError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")


def unknown_keyword(
    owner: str, key: object, known: Iterable[str], what: str = "argument"
) -> ValueError:
    """``schedule 'cosine' got unknown argument 'eta'; did you mean 'eta_min'? (known: ...)``.

    ``known`` is listed in the order given (a signature's order reads best).
    """
    known = list(known)
    hint = _hint(str(key), known)
    return ValueError(f"{owner} got unknown {what} {key!r}{hint} (known: {', '.join(known)})")
