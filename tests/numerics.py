"""The one tolerance for two *different* computations of the same mathematics.

Batched vs one setting at a time, an array of steps vs each step, NumPy vs torch, vmap vs
a loop, compiled vs eager: these run different machine code, so they agree to a
tolerance, never bitwise. NumPy's SIMD ``power``/``exp`` loops (AVX-512 among them) round
differently from scalar libm in the last bit, and which loop runs depends on the CPU and
on whether the operand is an array or a Python/NumPy scalar; torch sums and divides in
its own order. Bitwise equality stays right for one computation repeated: resume vs
uninterrupted, save/load, a rerun, a fast path that does the same operations in the same
order, and perturbing one setting of a batch while the others keep their values. There,
use ``np.testing.assert_array_equal`` / ``torch.equal``.

The rule, per array: ``max|a - b| <= rtol * max|b|`` over the finite entries, with NaN
and +-inf required at the same places (``b`` is the reference). ``rtol`` by dtype:

- float64 (and complex128): ``1e-13``, about 450 float64 epsilons. The largest
  cross-path difference measured in this suite is 3.6e-15 (16 eps: batched vs separate
  RAdam over 40 steps on an AVX-512 CPU; a last-bit difference in ``beta2**t`` grows
  through the rectification term), so the bound leaves a factor ~30 while still
  catching any real mistake, which shows up at 1e-8 or above.
- float32 (and complex64): ``1e-5``, about 84 float32 epsilons (eps = 1.19e-7). The
  same comparisons run in float32 differ by at most 1.3e-6 (11 eps: batched vs separate
  RAdam; NumPy vs torch RMSprop 7.3e-7), so the bound leaves a factor ~8; it is also the
  float32 bound of the torch.optim parity tests (tests/test_optim_parity.py). Where one
  side is float32 and the other float64, the float32 bound applies.
- float16/bfloat16: no default. Their epsilon (1e-3, 8e-3) makes any fixed bound either
  useless or flaky; such a test states its own ``rtol`` and why.
- integers and booleans: exact (``rtol = 0``), as their arithmetic does not round.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RTOL_FLOAT64 = 1e-13
RTOL_FLOAT32 = 1e-5

_RTOL_BY_NAME = {
    "float64": RTOL_FLOAT64,
    "complex128": RTOL_FLOAT64,
    "float32": RTOL_FLOAT32,
    "complex64": RTOL_FLOAT32,
}


def _dtype_name(x: Any) -> str:
    """``x``'s dtype name (``float64``, ``bfloat16``, ...); Python floats are float64."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return np.asarray(x).dtype.name
    return str(dtype).removeprefix("torch.")


def _numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().resolve_conj()
        if x.dtype.is_floating_point and x.element_size() < 4:  # NumPy lacks bfloat16
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def default_rtol(*values: Any) -> float:
    """The bound for comparing ``values``: that of the coarsest floating dtype among them."""
    names = [_dtype_name(v) for v in values]
    floating = [n for n in names if n.startswith(("float", "complex", "bfloat"))]
    if not floating:
        return 0.0
    unknown = [n for n in floating if n not in _RTOL_BY_NAME]
    if unknown:
        raise ValueError(
            f"assert_close has no default tolerance for {unknown[0]}: pass rtol= and say why"
        )
    return max(_RTOL_BY_NAME[n] for n in floating)


def assert_close(actual: Any, expected: Any, rtol: float | None = None, what: str = "") -> None:
    """Assert ``max|actual - expected| <= rtol * max|expected|`` for one array.

    ``actual`` and ``expected`` are NumPy arrays, torch tensors or numbers of the same
    shape; ``rtol`` defaults to :func:`default_rtol` of the two. NaN must sit at the same
    places in both, and so must +inf and -inf. ``what`` labels the failure message.
    """
    rtol = default_rtol(actual, expected) if rtol is None else rtol
    a, b = _numpy(actual), _numpy(expected)
    label = f"{what}: " if what else ""
    assert a.shape == b.shape, f"{label}shapes differ: {a.shape} vs {b.shape}"
    complex_ = np.iscomplexobj(a) or np.iscomplexobj(b)
    a64 = a.astype(np.complex128 if complex_ else np.float64)
    b64 = b.astype(np.complex128 if complex_ else np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    assert np.array_equal(nan_a, nan_b), f"{label}NaN at different places"
    inf = np.isinf(a64) | np.isinf(b64)
    assert np.array_equal(a64[inf], b64[inf]), f"{label}inf at different places"
    finite = ~(nan_b | inf)
    if not finite.any():
        return
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: masked below
        diff = np.where(finite, np.abs(a64 - b64), 0.0)
    scale = np.abs(b64[finite]).max()
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    assert diff[worst] <= rtol * scale, (
        f"{label}max|a-b| = {diff[worst]:.3g} (at {tuple(int(i) for i in worst)}: "
        f"{a64[worst]!r} vs {b64[worst]!r}) > {rtol:g} * max|b| = {rtol * scale:.3g}"
    )
