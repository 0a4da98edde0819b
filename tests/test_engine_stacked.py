"""The stacked (vmap) engine's fast update: per-step scalars made once per kind of tensor,
and an elementwise rule's parameters kept in one flat tensor.

Every case of every rule with per-step scalars (flags such as ``bias_correction=False``
and ``amsgrad`` included) runs two settings batched and one at a time on a float64 MLP:
the traces agree within the numerics tolerance. The flat storage agrees with the storage
by name within the same tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES, Case, randomized
from numerics import assert_close

from optimlab import problems
from optimlab.lab.engine import Setting, run
from optimlab.lab.engine.grouping import plan
from optimlab.lab.engine.models import StackedModels
from optimlab.lab.engine.routes import Stepper
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


def _mlp() -> problems.Problem:
    return problems.get("mlp", dtype="float64", hidden=8, n_train=64, n_val=32, batch_size=16)


def test_an_elementwise_rule_keeps_the_stacked_parameters_in_one_tensor() -> None:
    """Adam (elementwise) steps every parameter as one vector per setting, so the stacked
    parameters live in one ``(K, N)`` tensor and the names hold its views; Muon (matrices
    only, the rest routed to AdamW) keeps them by name."""
    adam = StackedModels(_mlp(), plan([Setting("adam", {"lr": 0.01})] * 2, 5)[0])
    assert adam.flat is not None and adam.flat.shape[0] == 2
    for name, view in adam.params.items():
        assert view.untyped_storage().data_ptr() == adam.flat.untyped_storage().data_ptr(), name
    assert adam.flat.shape[1] == sum(v[0].numel() for v in adam.params.values())
    muon = StackedModels(_mlp(), plan([Setting("muon", {"lr": 0.01})] * 2, 5)[0])
    assert muon.flat is None


def test_one_flat_tensor_equals_stacked_tensors_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flat storage does the per-name storage's arithmetic (the gradient's
    concatenation happens in the backward of the split instead of after it), but hands
    the matrix products views with other strides and alignment, which BLAS may round
    differently on another CPU: the traces agree within the numerics tolerance, also
    after a diverging row leaves the batch."""
    settings = [Setting("adam", {"lr": lr}) for lr in (1e-3, 3e-2, 1e6)]
    flat = run(_mlp(), settings, 30)
    monkeypatch.setattr(Stepper, "whole", property(lambda self: None))
    by_name = run(_mlp(), settings, 30)
    assert [t.status for t in flat] == [t.status for t in by_name]
    assert "diverged" in {t.status for t in flat}  # a row left the batch mid-run
    for a, b in zip(flat, by_name, strict=True):
        for field in ("loss", "grad_norm", "update_norm"):
            assert_close(getattr(a, field), getattr(b, field), what=field)
        assert [(step, sorted(m)) for step, m in a.evals] == [
            (step, sorted(m)) for step, m in b.evals
        ]
        for (step, ma), (_, mb) in zip(a.evals, b.evals, strict=True):
            for name in ma:
                assert_close(ma[name], mb[name], what=f"{name} at step {step}")
