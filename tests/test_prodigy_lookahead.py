"""Prodigy and Lookahead (issue 13, item 4) against the published reference packages.

- Prodigy: the authors' ``prodigyopt`` (float64, 300 steps, several parameters in one
  group, so ``d`` is estimated over the whole group), per group (two groups == two
  optimizers), in the lab (flat per setting; batched == alone) and equal to the class.
- Lookahead: ``pytorch_optimizer.Lookahead`` around ``torch.optim.AdamW`` (float64, 200
  steps), and the wrapper around every registered rule against that rule itself.

Different implementations (theirs in place, ours functional) are compared within a
tolerance; the wrapper's first k - 1 steps are the inner rule's own operations: bitwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import assert_close

from optimlab import problems
from optimlab.lab.engine import Setting, run
from optimlab.lab.engine.models import rng_seed
from optimlab.optim import Lookahead, Prodigy
from optimlab.rules.lookahead import lookahead
from optimlab.rules.registry import REGISTRY, get_rule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPES = [(6, 4), (9,), (3, 2, 2), ()]
PRODIGY_SETTINGS = [
    {},
    {"weight_decay": 0.1},
    {"lr": 0.5, "betas": (0.8, 0.99), "weight_decay": 0.05, "decouple": False},
    {"use_bias_correction": True, "safeguard_warmup": True, "d_coef": 2.0},
    {"growth_rate": 1.05, "beta3": 0.95, "d0": 1e-4, "eps": 1e-6},
    {"betas": (0.0, 0.999)},
]


def _params(seed: int, shapes=SHAPES) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes]


def _grads(params, steps: int, seed: int) -> list[list[torch.Tensor]]:
    """Noisy gradients of a quadratic centred away from the start, so the iterates move
    a distance d has to find."""
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params] for _ in range(steps)
    ]


def _run(opt, params, noise, pull: float = 0.5) -> list[torch.Tensor]:
    for step in noise:
        for p, n in zip(params, step, strict=True):
            p.grad = (pull * (p.detach() - 3.0) + n).clone()
        opt.step()
    return [p.detach().clone() for p in params]


def max_rel(got, want) -> float:
    scale = max(float(w.abs().max()) for w in want)
    return max(float((g - w).abs().max()) for g, w in zip(got, want, strict=True)) / scale


@pytest.mark.parametrize("setting", PRODIGY_SETTINGS, ids=lambda s: "-".join(s) or "defaults")
def test_prodigy_matches_prodigyopt(setting) -> None:
    prodigyopt = pytest.importorskip("prodigyopt")
    ours_p, theirs_p = _params(0), _params(0)
    noise = _grads(ours_p, 300, 1)
    ours = _run(Prodigy(ours_p, **setting), ours_p, noise)
    ref = prodigyopt.Prodigy(theirs_p, **{"growth_rate": float("inf"), **setting})
    theirs = _run(ref, theirs_p, noise)
    assert max_rel(ours, theirs) < 1e-10
    assert max_rel(ours, [p.detach() for p in _params(0)]) > 0.1  # d grew from d0: it moved


def test_prodigy_groups_are_separate_estimates() -> None:
    """Two param groups == two Prodigy optimizers (prodigyopt shares one d between all
    groups; here each group is the group it is)."""
    a, b = _params(2), _params(2)
    noise = _grads(a, 50, 3)
    one = Prodigy([{"params": a[:2]}, {"params": a[2:], "d_coef": 0.5}])
    first, second = Prodigy(b[:2]), Prodigy(b[2:], d_coef=0.5)
    _run(one, a, noise)
    for step in noise:
        for p, n in zip(b, step, strict=True):
            p.grad = (0.5 * (p.detach() - 3.0) + n).clone()
        first.step()
        second.step()
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    d = [one.state[p]["d"] for p in a]
    assert d[0] == d[1] != d[2] == d[3]  # one d per group, stored with every parameter


def test_prodigy_with_a_parameter_without_gradient() -> None:
    """A parameter with no gradient keeps its state; the group's d goes on without it."""
    params = _params(4)
    opt = Prodigy(params)
    gen = torch.Generator().manual_seed(5)
    for t in range(20):
        for i, p in enumerate(params):
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.grad = None if (i == 1 and 5 <= t < 12) else 0.5 * (p.detach() - 3.0) + noise
        opt.step()
        if t == 4:
            frozen = {k: v.clone() for k, v in opt.state[params[1]].items() if torch.is_tensor(v)}
        if t == 11:  # the group went on without parameter 1, whose state stayed as it was
            kept = opt.state[params[1]]
            assert all(torch.equal(kept[k], v) for k, v in frozen.items())
            assert kept["count"] == 5 and opt.state[params[0]]["count"] == 12
            assert kept["d"] != opt.state[params[0]]["d"]
    # one count and one d for the group again, read from the parameters stepped last
    assert {opt.state[p]["count"] for p in params} == {20}
    assert len({opt.state[p]["d"] for p in params}) == 1


def _lm() -> problems.Problem:
    return problems.get(
        "transformer", width=16, heads=2, context=16, batch_size=4, n_val=8, dtype="float64"
    )


def test_prodigy_in_the_lab_is_the_class_on_the_whole_model() -> None:
    p, steps = _lm(), 8
    settings = [Setting("prodigy", {}, seed=1), Setting("prodigy", {"d_coef": 0.5}, seed=0)]
    batched = run(p, settings, steps, eval_every=4)
    alone = run(p, settings, steps, eval_every=4, batched=False)
    for a, b in zip(batched, alone, strict=True):
        assert_close(a.loss, b.loss)
        assert_close(a.evals[-1][1]["loss"], b.evals[-1][1]["loss"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng_seed(1))
        task = p.torch_task(1)
    opt = Prodigy(task.model.parameters())  # one group: the whole model
    losses = []
    for _ in range(steps):
        loss = task.loss(task.model, next(task.batches))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert_close(np.array(losses), alone[0].loss)


def test_lookahead_matches_pytorch_optimizer() -> None:
    reference = pytest.importorskip("pytorch_optimizer")
    for k, alpha, wd in [(5, 0.5, 0.01), (3, 0.8, 0.1), (1, 0.3, 0.0)]:
        ours_p, theirs_p = _params(6), _params(6)
        noise = _grads(ours_p, 200, 7)
        ours = _run(Lookahead(ours_p, lr=0.01, weight_decay=wd, k=k, alpha=alpha), ours_p, noise)
        inner = torch.optim.AdamW(theirs_p, lr=0.01, weight_decay=wd)
        ref = reference.Lookahead(inner, k=k, alpha=alpha)
        theirs = _run(ref, theirs_p, noise)
        assert max_rel(ours, theirs) < 1e-10, (k, alpha)


WRAPPABLE = [s.name for s in REGISTRY if s.name != "lookahead"]


@pytest.mark.parametrize("name", WRAPPABLE)
def test_lookahead_wraps_every_registered_rule(name: str) -> None:
    """First k - 1 steps: the inner rule's, bitwise; at step k: phi + alpha (theta - phi),
    the inner state carried on; then again from there."""
    inner = get_rule(name)
    wrapped = lookahead(inner)
    k, alpha = 3, 0.25
    hp = inner.validate(lr=0.01)
    extra = {} if inner.elementwise_with(hp) else {"batch_ndim": 0}
    rng = np.random.default_rng(8)
    param = rng.standard_normal((4, 3))
    grads = list(rng.standard_normal((2 * k, 4, 3)))
    state, p = wrapped.init(param, **extra), param
    inner_state, q, slow = inner.init(param, **extra), param, param
    own = dict(zip(wrapped.names[-2:], (k, alpha), strict=True))  # k, alpha (or prefixed)
    for t, g in enumerate(grads, start=1):
        delta, state = wrapped.update(g, state, p, **own, **hp, **extra)
        p = p + delta
        d_inner, inner_state = inner.update(g, inner_state, q, **hp, **extra)
        q = q + d_inner
        if t % k:
            np.testing.assert_array_equal(p, q)
        else:
            slow = slow + alpha * (q - slow)
            assert_close(p, slow)
            q = p
        np.testing.assert_array_equal(wrapped.evaluation_point(p, state), state.slow)
    assert [f for f in state._fields if f != "slow"] == list(inner_state._fields)
    clash = {"k", "alpha"} & set(inner.names)
    own_names = ("lookahead_k", "lookahead_alpha") if clash else ("k", "alpha")
    assert wrapped.names == (*inner.names, *own_names)
    assert wrapped.elementwise == inner.elementwise and wrapped.param_ndim == inner.param_ndim


def test_lookahead_wraps_matrix_and_group_wide_rules_shape_contracts() -> None:
    assert lookahead(get_rule("muon")).param_ndim == 2
    assert lookahead(get_rule("prodigy")).group_wide
    with pytest.raises(ValueError, match="k must be an integer in"):
        get_rule("lookahead").validate(k=0)
