"""Property tests over every schedule name (hypothesis, derandomized so runs are repeatable)."""

from __future__ import annotations

import math
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numerics import assert_close

from optimlab import schedules as S

NAMES = st.sampled_from(S.list())


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    name=NAMES,
    total=st.integers(4, 5000),
    lr=st.floats(1e-6, 10.0),
    steps=st.lists(st.integers(0, 20_000), min_size=1, max_size=20),
)
def test_any_length_gives_finite_nonnegative_rates(name, total, lr, steps) -> None:
    s = S.get(name, total_steps=total, lr=lr)
    values = [s(t) for t in steps]
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in values)
    # vectorised over steps equals step by step (within rounding: an array of steps
    # takes NumPy's SIMD loops, one step its scalar math), and a pickled copy agrees exactly
    assert_close(s(np.asarray(steps)), values, what=name)
    assert [pickle.loads(pickle.dumps(s))(t) for t in steps] == values


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    name=st.sampled_from(
        ["cosine", "linear", "polynomial", "warmup_cosine", "warmup_linear", "wsd", "one_cycle"]
    ),
    total=st.integers(4, 3000),
    extra=st.integers(0, 10_000),
)
def test_bounded_schedules_hold_their_end_value(name, total, extra) -> None:
    s = S.get(name, total_steps=total)
    end = total - 1 if name == "one_cycle" else total
    assert s(end + extra) == s(end)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(total=st.integers(2, 3000), data=st.data())
def test_warmup_peaks_at_lr_at_the_end_of_warmup(total, data) -> None:
    w = data.draw(st.integers(1, total - 1))
    for decay in ("cosine", "linear", "constant", "inverse_sqrt"):
        s = S.get(f"warmup_{decay}", total_steps=total, warmup_steps=w, lr=0.3)
        assert s(w) == 0.3
        assert max(s(t) for t in range(0, total, max(1, total // 50))) <= 0.3
