"""The teaching step functions against torch.optim, an independent implementation."""

from __future__ import annotations

import numpy as np
import pytest

from optimlab import functional as F

torch = pytest.importorskip("torch")

STEPS = 60
LR, BETA, B1, B2, EPS, WD = 0.05, 0.9, 0.85, 0.99, 1e-6, 0.1

# name -> (torch optimizer factory, number of array slots, teaching step on (p, g, slots, t))
CASES = {
    "momentum": (
        lambda ps: torch.optim.SGD(ps, lr=LR, momentum=BETA),
        1,
        lambda p, g, s, t: F.momentum_step(p, g, s[0], LR, BETA),
    ),
    "nesterov": (
        lambda ps: torch.optim.SGD(ps, lr=LR, momentum=BETA, nesterov=True),
        1,
        lambda p, g, s, t: F.nesterov_step(p, g, s[0], LR, BETA),
    ),
    "adagrad": (
        lambda ps: torch.optim.Adagrad(ps, lr=LR, eps=EPS),
        1,
        lambda p, g, s, t: F.adagrad_step(p, g, s[0], LR, EPS),
    ),
    "rmsprop": (
        lambda ps: torch.optim.RMSprop(ps, lr=LR, alpha=BETA, eps=EPS),
        1,
        lambda p, g, s, t: F.rmsprop_step(p, g, s[0], LR, BETA, EPS),
    ),
    "adam": (
        lambda ps: torch.optim.Adam(ps, lr=LR, betas=(B1, B2), eps=EPS),
        2,
        lambda p, g, s, t: F.adam_step(p, g, s[0], s[1], LR, B1, B2, t, EPS),
    ),
    "adamw": (
        lambda ps: torch.optim.AdamW(ps, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD),
        2,
        lambda p, g, s, t: F.adamw_step(p, g, s[0], s[1], LR, B1, B2, t, WD, EPS),
    ),
    "nadam": (
        lambda ps: torch.optim.NAdam(ps, lr=LR, betas=(B1, B2), eps=EPS),
        3,
        lambda p, g, s, t: F.nadam_step(p, g, s[0], s[1], s[2], LR, B1, B2, t, EPS),
    ),
}


@pytest.fixture
def float64_scalars():
    """torch keeps NAdam's mu_product in the default dtype: make that float64 for the test."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_matches_torch_optim(name, rng, float64_scalars):
    make, n_slots, step = CASES[name]
    p0 = rng.uniform(2.0, 4.0, size=6)
    tp = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = make([tp])
    state = (np.zeros(6), np.zeros(6), 1.0)[:n_slots]
    p = p0
    for t in range(1, STEPS + 1):
        g = rng.normal(size=6) * rng.uniform(0.1, 3.0)
        tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        p, *rest = step(p, g, state, t)
        state = tuple(rest)
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=0)
