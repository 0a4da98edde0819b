"""core.arrays: the namespace functions that have more than one way to run.

``matmul_add(c, a, b, beta, alpha) = beta c + alpha a b`` runs on torch as one ``addmm``
(2-D) or ``baddbmm`` (3-D) when the scales are Python numbers, and as the plain
expression otherwise (4-D, or a sweep's scales as tensors); every way equals NumPy's
plain expression within the float64 tolerance. ``astype`` names a dtype by a string.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import assert_close

from optimlab.core.arrays import namespace

SHAPES = {
    "2-D": ((5, 4), (5, 6), (6, 4)),
    "3-D": ((3, 5, 4), (3, 5, 6), (3, 6, 4)),
    "4-D": ((2, 3, 5, 4), (2, 3, 5, 6), (2, 3, 6, 4)),
}


@pytest.mark.parametrize("scales", ["numbers", "arrays"])
@pytest.mark.parametrize("dims", list(SHAPES))
def test_matmul_add_on_torch_equals_numpy(dims: str, scales: str) -> None:
    rng = np.random.default_rng(7)
    c, a, b = (rng.standard_normal(s) for s in SHAPES[dims])
    if scales == "numbers":
        beta, alpha = -4.775, 2.0315
        t_beta, t_alpha = beta, alpha
    else:  # one scale per leading row, as a batched sweep passes them
        shape = (c.shape[0],) + (1,) * (c.ndim - 1)
        beta, alpha = rng.uniform(-5, 5, shape), rng.uniform(-5, 5, shape)
        t_beta, t_alpha = torch.from_numpy(beta), torch.from_numpy(alpha)
    want = namespace(c).matmul_add(c, a, b, beta, alpha)
    np.testing.assert_array_equal(want, beta * c + alpha * (a @ b))  # NumPy: the expression
    t = [torch.from_numpy(x) for x in (c, a, b)]
    got = namespace(t[0]).matmul_add(*t, t_beta, t_alpha)
    assert got.dtype == torch.float64 and got.shape == want.shape
    assert_close(got, want)


def test_astype_names_the_dtype() -> None:
    x = np.arange(6.0).reshape(2, 3)
    assert namespace(x).astype(x, "float32").dtype == np.float32
    t = torch.arange(6.0, dtype=torch.float64)
    assert namespace(t).astype(t, "bfloat16").dtype == torch.bfloat16
    assert namespace(t).astype(t, "float32").dtype == torch.float32
