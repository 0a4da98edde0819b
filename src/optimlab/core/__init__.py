"""Layer 0, what every layer shares: checking values, parsing specs, naming mistakes.

- ``checks``: the validation vocabulary (``real``, ``integer``, ``flag``, ``choice``,
  ``shape``, ``sequence``, ``require``; ``show`` and ``range_text`` for messages) with one
  message format, ``lr must be >= 0, got -1.0``.
- ``specs``: the one parser of ``name:key=value,...`` text.
- ``names``: the unknown-name and unknown-keyword errors (with close matches).
- ``arrays``: the small NumPy/torch namespace that rules are written against.

Imports nothing else of optimlab, and neither torch nor matplotlib.
"""
