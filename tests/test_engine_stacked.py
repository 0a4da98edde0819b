"""The stacked (vmap) engine's fast update: per-step scalars made once per kind of tensor.

Every case of every rule with per-step scalars (flags such as ``bias_correction=False``
and ``amsgrad`` included) runs two settings batched and one at a time on a float64 MLP:
the traces agree within the numerics tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES, Case, randomized
from numerics import assert_close

from optimlab import problems
from optimlab.lab.engine import Setting, run
from optimlab.rules.registry import get_rule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPPED = [
    c
    for c in CASES
    if get_rule(c.name).per_step is not None and get_rule(c.name).param_ndim is None
]


@pytest.mark.parametrize("case", STEPPED, ids=lambda c: c.id)
def test_batched_equals_alone_for_every_case(case: Case) -> None:
    p = problems.get("mlp", dtype="float64", hidden=8, n_train=64, n_val=32, batch_size=16)
    other = randomized(case, np.random.default_rng(3))
    settings = [Setting(case.name, dict(c.hp)) for c in (case, other)]
    batched = run(p, settings, 6)
    alone = run(p, settings, 6, batched=False)
    for a, b in zip(batched, alone, strict=True):
        assert a.status == b.status
        for field in ("loss", "grad_norm", "update_norm"):
            assert_close(getattr(a, field), getattr(b, field), what=f"{case.id} {field}")
