"""The one error for a name that is not in a table (optimizers, schedules, problems)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_name(
    kind: str, name: object, known: Iterable[str], *, match: str | None = None
) -> ValueError:
    """``unknown optimizer 'adamm'; did you mean 'adam'? (known: adam, ...)``.

    ``match`` is the normalised form of ``name`` to look up close matches with (default:
    ``str(name)``); the message shows ``name`` as given.
    """
    known = sorted(known)
    close = difflib.get_close_matches(str(name) if match is None else match, known, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")
