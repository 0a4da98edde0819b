"""The one tolerance for two *different* computations of the same mathematics.

Batched vs one setting at a time, an array of steps vs each step, NumPy vs torch, vmap vs
a loop, compiled vs eager: these run different machine code (NumPy's SIMD ``power`` and
``exp`` round differently from scalar libm in the last bit, and by CPU), so they agree to
a tolerance, never bitwise. Bitwise equality is kept for one computation repeated (resume
vs uninterrupted, save/load, a rerun), where ``np.testing.assert_array_equal`` is right.

Per array: ``max|a - b| <= rtol * max|b|``, with NaN and inf required at the same places.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 1e-2}


def _numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.element_size() < 4:  # bf16/f16: NumPy lacks bf16
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def assert_close(actual: Any, expected: Any, rtol: float | None = None, what: str = "") -> None:
    """``max|actual - expected| <= rtol * max|expected|``; ``rtol`` by the coarser dtype."""
    a, b = _numpy(actual), _numpy(expected)
    label = f"{what}: " if what else ""
    assert a.shape == b.shape, f"{label}shapes differ: {a.shape} vs {b.shape}"
    if rtol is None:
        dtypes = [d for d in (a.dtype, b.dtype) if np.issubdtype(d, np.floating)]
        rtol = max(
            (RTOL.get(np.dtype(d), 1e-13) for d in dtypes), default=RTOL[np.dtype(np.float64)]
        )
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    assert (nan_a == nan_b).all(), f"{label}NaN at different places"
    inf = np.isinf(b64) | np.isinf(a64)
    assert (a64[inf] == b64[inf]).all(), f"{label}inf at different places"
    ok = ~(nan_b | inf)
    if not ok.any():
        return
    diff = np.abs(a64[ok] - b64[ok]).max()
    scale = np.abs(b64[ok]).max()
    assert diff <= rtol * scale, (
        f"{label}max|a-b| = {diff:.3g} > {rtol:g} * max|b| = {rtol * scale:.3g}"
    )
