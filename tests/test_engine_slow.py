"""The benchmark's configurations at full size, checked for equality (not timed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import assert_close

from optimlab import problems
from optimlab.lab.engine import Setting, run

pytestmark = pytest.mark.slow


def test_64_adam_lrs_on_rosenbrock_1000_steps():
    settings = [Setting("adam", {"lr": float(lr)}) for lr in np.logspace(-4, 1, 64)]
    batched = run("rosenbrock", settings, 1000, eval_every=100)
    alone = run("rosenbrock", settings, 1000, eval_every=100, batched=False)
    assert {t.status for t in batched} == {"finished", "diverged"}  # both paths exercised
    for a, b in zip(batched, alone, strict=True):  # within the numerics tolerance
        assert a.status == b.status and a.diverged_step == b.diverged_step
        assert_close(a.loss, b.loss, what="loss")
        assert_close(a.trajectory, b.trajectory, what="trajectory")
        assert [s for s, _ in a.evals] == [s for s, _ in b.evals]
        for (step, ma), (_, mb) in zip(a.evals, b.evals, strict=True):
            assert ma.keys() == mb.keys()
            for k in ma:
                assert_close(ma[k], mb[k], what=f"evals[{step}][{k}]")


def test_32_mlp_settings_vmap_equals_sequential_float64():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        p = problems.get("mlp", dtype="float64")
        settings = [
            Setting("adam", {"lr": float(lr)}, seed=i % 4)
            for i, lr in enumerate(np.logspace(-4, -0.5, 32))
        ]
        batched = run(p, settings, 100, eval_every=50)
        alone = run(p, settings, 100, eval_every=50, batched=False)
    finally:
        torch.set_num_threads(n)
    for a, b in zip(batched, alone, strict=True):
        assert a.status == b.status and a.diverged_step == b.diverged_step
        assert_close(a.loss, b.loss)
        assert_close(a.update_norm, b.update_norm)
