"""Small statistics for verdicts over a handful of seeds: quantiles that tolerate +inf
(diverged runs), a bootstrap interval for a median, and a paired comparison.

Everything is deterministic (a fixed generator), so a report regenerated from the same
store is the same file.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def quantile(values: np.ndarray, q: float) -> float:
    """The ``q``-th percentile; between a finite value and +inf it picks an element
    (interpolating there is meaningless)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan
    method: Literal["linear", "nearest"] = "linear" if np.isfinite(values).all() else "nearest"
    return float(np.percentile(values, q, method=method))


def _medians(values: np.ndarray) -> np.ndarray:
    """Medians of ``RESAMPLES`` resamples (with replacement) of ``values``."""
    rng = np.random.default_rng(20250611)
    idx = rng.integers(0, len(values), size=(RESAMPLES, len(values)))
    sample = np.sort(values[idx], axis=1)
    n = len(values)
    lo, hi = sample[:, (n - 1) // 2], sample[:, n // 2]
    with np.errstate(invalid="ignore"):
        mid = np.where(lo == hi, lo, lo / 2 + hi / 2)  # inf stays inf, never inf - inf
    return mid


def bootstrap_median(values: np.ndarray) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the median of ``values`` (one per seed;
    +inf allowed). One value: the value itself at both ends. With 3 seeds the interval
    is the range of the three, which is what 3 seeds can tell."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    if values.size == 1 or np.all(values == values[0]):
        return float(values[0]), float(values[0])
    meds = _medians(values)
    tail = (1 - LEVEL) / 2 * 100
    return (
        float(np.percentile(meds, tail, method="lower")),
        float(np.percentile(meds, 100 - tail, method="higher")),
    )


def paired_worse(a: np.ndarray, b: np.ndarray) -> bool:
    """Is ``b`` worse than ``a`` (lower is better) on paired samples (one per shared seed)?

    Yes when the 95% bootstrap interval of the median difference ``b - a`` lies above 0.
    Both diverged on a seed counts as no difference there. With 3 seeds this means ``b``
    is worse on every seed; otherwise the two are a tie.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isinf(a) & np.isinf(b), 0.0, b - a)
    lo, _ = bootstrap_median(diff)
    return bool(lo > 0)


def unpaired_worse(a_hi: float, b_lo: float) -> bool:
    """Without shared seeds: ``b`` is worse when its interval lies above ``a``'s."""
    return bool(b_lo > a_hi)
