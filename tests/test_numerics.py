"""The tolerance helper itself (tests/numerics.py): what it accepts and what it catches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import RTOL_FLOAT32, RTOL_FLOAT64, assert_close, default_rtol


def test_last_bit_differences_pass_and_real_ones_fail() -> None:
    b = np.array([1.0, -3.0, 0.25])
    assert_close(np.nextafter(b, np.inf), b)  # one ulp apart
    assert_close(b + 2.9e-13 * np.array([1, 0, 0]), b)  # 2.9e-13 <= 1e-13 * 3
    with pytest.raises(AssertionError, match=r"max\|a-b\| = 3.1e-13 \(at \(0,\)"):
        assert_close(b + 3.1e-13 * np.array([1, 0, 0]), b)


def test_the_bound_is_relative_to_the_largest_expected_value() -> None:
    b = np.array([1e3, 1e-9])
    assert_close(b + [0.0, 9e-11], b)  # small entries are held to 1e-13 * 1e3
    with pytest.raises(AssertionError):
        assert_close(b + [0.0, 2e-10], b)
    assert_close(np.zeros(3), np.zeros(3))
    with pytest.raises(AssertionError):
        assert_close(np.array([0.0, 1e-300]), np.zeros(2))  # zero reference: exact


def test_nan_and_inf_must_sit_at_the_same_places() -> None:
    b = np.array([1.0, np.nan, np.inf, -np.inf])
    assert_close(b.copy(), b)
    for a in (
        [1.0, 1.0, np.inf, -np.inf],
        [1.0, np.nan, -np.inf, -np.inf],
        [1.0, np.nan, 1e308, -np.inf],
    ):
        with pytest.raises(AssertionError, match="NaN|inf"):
            assert_close(np.array(a), b)
    assert_close(np.array([np.nan]), np.array([np.nan]))


def test_shapes_dtypes_and_kinds() -> None:
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(np.ones(3), np.ones((3, 1)))
    assert default_rtol(np.ones(2), 1.0) == RTOL_FLOAT64
    assert default_rtol(np.ones(2, np.float32), np.ones(2)) == RTOL_FLOAT32
    assert default_rtol(torch.ones(2, dtype=torch.complex64)) == RTOL_FLOAT32
    assert default_rtol(np.arange(3), [1, 2]) == 0.0  # integers: exact
    for half in (torch.ones(2, dtype=torch.bfloat16), np.ones(2, np.float16)):
        with pytest.raises(ValueError, match="no default tolerance"):
            assert_close(half, half)
    h = torch.ones(2, dtype=torch.bfloat16)
    assert_close(h, h, rtol=1e-2)  # stated explicitly, it works
    f32 = np.float32(1.0)
    assert_close(np.float32(1.0) + np.float32(5e-6), f32)  # 0-d, within 1e-5
    with pytest.raises(AssertionError):
        assert_close(np.float32(1.0) + np.float32(5e-5), f32)
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert_close(t, t.numpy() * (1 + 1e-16))
    assert_close(torch.tensor([1 + 2j]), np.array([1 + 2j]))
    with pytest.raises(AssertionError):
        assert_close(np.array([1 + 2j]), np.array([1 + 2.1j]))
