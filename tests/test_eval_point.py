"""The evaluation point (issue 13, item 3): ``opt.eval()``/``opt.train()`` in the torch
classes (an exact round trip, through state dicts too), against the ``schedulefree``
package, and the lab evaluating held-out metrics where the rule says.

The same computation repeated (eval then train, save then load) is compared bitwise; our
x (kept in the state) against the package's (recovered from y and z by a lerp), and the
lab against the torch class, are two computations: a tolerance."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from numerics import assert_close

from optimlab import problems
from optimlab.lab.engine import Setting, run
from optimlab.lab.engine.models import rng_seed
from optimlab.optim import optimizer_class
from optimlab.rules.registry import REGISTRY, get_rule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EVALUATED = [s.name for s in REGISTRY if s.rule.eval_point is not None]
HP = {"asgd": {"lr": 0.05, "t0": 3.0}, "lookahead": {"lr": 0.01, "k": 3}}


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (5,), ()]
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes]


def _step(opt, params, n: int, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        opt.step()


def test_evaluated_rules() -> None:
    assert EVALUATED == ["asgd", "sgd_schedulefree", "adamw_schedulefree", "lookahead"]


@pytest.mark.parametrize("name", EVALUATED)
def test_eval_moves_to_the_point_and_train_comes_back_exactly(name: str) -> None:
    params = _params()
    opt = optimizer_class(name)(params, **HP.get(name, {}))
    _step(opt, params, 7)
    y = [p.detach().clone() for p in params]
    rule = get_rule(name)
    state_type = type(rule.init(torch.zeros(2, 3)))
    want = [rule.evaluation_point(p.detach(), state_type(**opt.state[p])) for p in params]
    opt.eval()
    for p, w, yi in zip(params, want, y, strict=True):
        assert torch.equal(p.detach(), w)
        assert not torch.equal(w, yi) or p.ndim == 0 and name == "lookahead"
    opt.eval()  # twice: still at the evaluation point, the training point still kept
    assert all(torch.equal(p.detach(), w) for p, w in zip(params, want, strict=True))
    with pytest.raises(RuntimeError, match=r"in eval mode .* call opt.train\(\) before"):
        opt.step()
    opt.train()
    assert all(torch.equal(p.detach(), yi) for p, yi in zip(params, y, strict=True))
    assert all("train_mode" not in g for g in opt.param_groups)
    assert all("train_point" not in s for s in opt.state.values())
    opt.train()  # a no-op in train mode
    _step(opt, params, 1)


@pytest.mark.parametrize("name", EVALUATED)
def test_state_dict_saved_in_eval_mode_resumes_exactly(name: str) -> None:
    params, twin = _params(), _params()
    opt = optimizer_class(name)(params, **HP.get(name, {}))
    other = optimizer_class(name)(twin, **HP.get(name, {}))
    _step(opt, params, 6)
    opt.eval()  # evaluate, then checkpoint model and optimizer in eval mode
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    with torch.no_grad():
        for a, b in zip(twin, params, strict=True):
            a.copy_(b)  # the model as saved: at the evaluation point
    other.load_state_dict(torch.load(buf, weights_only=True))
    opt.train()
    other.train()
    for a, b in zip(twin, params, strict=True):
        assert torch.equal(a, b)
    _step(opt, params, 4, seed=2)
    _step(other, twin, 4, seed=2)
    for a, b in zip(twin, params, strict=True):
        assert torch.equal(a, b)


def test_rules_without_an_evaluation_point_ignore_eval() -> None:
    params = _params()
    opt = optimizer_class("adamw")(params)
    _step(opt, params, 3)
    before = [p.detach().clone() for p in params]
    opt.eval()
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before, strict=True))
    _step(opt, params, 1)  # not in eval mode: stepping is allowed
    opt.train()


def test_torch_class_eval_matches_the_schedulefree_package() -> None:
    schedulefree = pytest.importorskip("schedulefree")
    params, theirs = _params(), _params()
    opt = optimizer_class("adamw_schedulefree")(params, lr=0.01, weight_decay=0.1, warmup_steps=5)
    ref = schedulefree.AdamWScheduleFree(theirs, lr=0.01, weight_decay=0.1, warmup_steps=5)
    ref.train()
    gen = torch.Generator().manual_seed(3)
    for _ in range(100):
        for p, q in zip(params, theirs, strict=True):
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
    opt.eval()
    ref.eval()
    for p, q in zip(params, theirs, strict=True):
        assert_close(p.detach(), q.detach(), rtol=1e-12)  # x from a lerp of y and z there
    opt.train()
    ref.train()
    for p, q in zip(params, theirs, strict=True):
        assert_close(p.detach(), q.detach(), rtol=1e-12)


# --------------------------------------------------------------------------- the lab


def _mlp() -> problems.Problem:
    return problems.get("mlp", hidden=16, n_train=256, n_val=64, batch_size=32, dtype="float64")


@pytest.mark.parametrize("name", ["adamw_schedulefree", "asgd", "lookahead"])
def test_lab_held_out_metrics_are_taken_at_the_evaluation_point(name: str) -> None:
    """The lab's held-out loss == the torch class's model after ``opt.eval()``, on the same
    batches; and it differs from the loss at the training point."""
    p, steps = _mlp(), 13  # Lookahead (k=3) last synchronised at step 12
    hp = {"lr": 0.01, **HP.get(name, {})}
    (alone,) = run(p, [Setting(name, hp, seed=2)], steps, batched=False)
    batched = run(p, [Setting(name, hp, seed=2), Setting(name, {**hp, "lr": 0.02})], steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng_seed(2))
        task = p.torch_task(2)
    opt = optimizer_class(name)(task.model.parameters(), **hp)
    for _ in range(steps):
        opt.zero_grad()
        task.loss(task.model, next(task.batches)).backward()
        opt.step()
    with torch.no_grad():
        at_y = float(task.metrics(task.model, task.val_batch)["loss"])
        opt.eval()
        at_x = float(task.metrics(task.model, task.val_batch)["loss"])
    assert_close(alone.evals[-1][1]["loss"], at_x)
    assert_close(batched[0].evals[-1][1]["loss"], at_x)
    assert abs(at_x - at_y) > 1e-6


def test_lab_evaluates_test_functions_at_the_evaluation_point() -> None:
    hp = {"lr": 0.01}
    (trace,) = run("rosenbrock", [Setting("sgd_schedulefree", hp)], 30)
    rule, problem = get_rule("sgd_schedulefree"), problems.get("rosenbrock")
    x = problem.init(0)
    state, full = rule.init(x), rule.validate(**hp)
    for _ in range(30):
        delta, state = rule.update(problem.grad(x), state, x, **full)
        x = x + delta
    assert_close(trace.evals[-1][1]["loss"], float(problem.loss(state.x)))
    assert abs(float(problem.loss(state.x)) - float(problem.loss(x))) > 1e-6
    np.testing.assert_array_equal(trace.trajectory[-1], x)  # the path is where it stepped
