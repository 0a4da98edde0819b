"""optimlab.optim against independent references, over every row of the case table.

- torch.optim, for every case it can run (cases.py ``torch_kwargs``) plus ``maximize``:
  200 steps on random tensors and on a small MLP, float64 (max rel diff < 1e-10) and
  float32 (< 1e-5), on our multi-tensor path and on the plain per-tensor path.
- Cases torch cannot run (Lion, SGD's ``ema``, Adam without bias correction): the plain
  NumPy equations in cases.py, float64.
- Several param groups with different hyperparameters.
- The same rule object drives the NumPy path and the torch class.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cases import CASES, Case, reference_run, torch_kwargs
from torch_cases import (
    ELEMENTWISE,
    TORCH_NAMES,
    default_dtype,
    has_bias,
    max_rel_diff,
    mlp,
    one_thread,
    ours_kwargs,
    random_grads,
    random_params,
    run_on_mlp,
    run_on_tensors,
    shapes_for,
    split_maximize,
    torch_cases,
    torch_reference_class,
)

import optimlab
from optimlab.optim import CLASSES

STEPS = 200
pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread  # a fixture, imported for pytestmark
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
TORCH_CASES = torch_cases()


def _pair(case: Case, foreach: bool | None):
    """(make ours, make torch's) for a case; both take a list of params or groups."""
    case, maximize = split_maximize(case)
    theirs_kw = torch_kwargs(case.name, case.full())
    ours_kw = ours_kwargs(case)
    torch_cls, our_cls = torch_reference_class(case.name), CLASSES[case.name]

    def ours(params):
        return our_cls(params, **ours_kw, maximize=maximize, foreach=foreach)

    def theirs(params):
        return torch_cls(params, **theirs_kw, maximize=maximize, foreach=False)

    return ours, theirs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_matches_torch_on_tensors(case: Case, dtype: torch.dtype) -> None:
    with default_dtype(dtype):
        # float32: the fast path (the plain path equals it bitwise: test_optim_fast.py)
        for foreach in (None, False) if dtype == torch.float64 else (None,):
            ours, theirs = _pair(case, foreach)
            expected = run_on_tensors(theirs, dtype, STEPS, shapes_for(case.name))
            got = run_on_tensors(ours, dtype, STEPS, shapes_for(case.name))
            assert all(g.dtype == dtype for g in got)
            assert max_rel_diff(got, expected) < TOL[dtype], f"foreach={foreach}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_matches_torch_on_mlp(case: Case, dtype: torch.dtype) -> None:
    ours, theirs = _pair(case, None)
    bias = has_bias(case.name)
    with default_dtype(dtype):
        got, expected = run_on_mlp(
            lambda m: ours(m.parameters()), lambda m: theirs(m.parameters()), dtype, STEPS, bias
        )
    assert max_rel_diff(got, expected) < TOL[dtype]
    # the run went somewhere: parameters moved away from the initialisation
    start = [p.detach() for p in mlp(dtype, bias=bias).parameters()]
    assert max_rel_diff(got, start) > 1e-4


def _two_groups(model: torch.nn.Module, kwargs: dict) -> list[dict]:
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    if not biases:  # a bias-free MLP (matrix-only rules): first layer vs the others
        weights, biases = weights[:1], weights[1:]
    other = {"lr": kwargs.get("lr", 1e-3) * 0.5}
    if "weight_decay" in kwargs:
        other["weight_decay"] = 0.07
    return [{"params": weights}, {"params": biases, **other}]


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_param_groups_match_torch(name: str) -> None:
    rows = [c for c in TORCH_CASES if c.name == name]
    case = next((c for c in rows if "weight_decay" in c.hp), rows[0])
    ours, theirs = _pair(case, None)
    kwargs = ours_kwargs(case)
    dtype = torch.float64
    with default_dtype(dtype):
        got, expected = run_on_mlp(
            lambda m: ours(_two_groups(m, kwargs)),
            lambda m: theirs(_two_groups(m, kwargs)),
            dtype,
            100,
            has_bias(name),
        )
        single, _ = run_on_mlp(
            lambda m: ours(m.parameters()),
            lambda m: theirs(_two_groups(m, kwargs)),
            dtype,
            100,
            has_bias(name),
        )
    assert max_rel_diff(got, expected) < 1e-10
    assert max_rel_diff(got, single) > 1e-8  # the second group's settings did something


REFERENCE_CASES = [c for c in CASES if torch_kwargs(c.name, c.full()) is None]


@pytest.mark.parametrize("foreach", [None, False], ids=["fast", "plain"])
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda c: c.id)
def test_matches_plain_equations(case: Case, foreach: bool | None) -> None:
    """Cases torch.optim cannot run, against the paper's equations (cases.py), float64.

    Lion's update is a sign: the gradients are drawn away from zero momentum, so the
    reference and ours never sit on a sign boundary.
    """
    shapes = [(5, 3), (7,), (2, 2, 2)]
    params = random_params(torch.float64, shapes=shapes)
    start = [p.detach().numpy().copy() for p in params]
    grads = random_grads(params, STEPS)
    opt = CLASSES[case.name](params, **ours_kwargs(case), foreach=foreach)
    for step in grads:
        for p, g in zip(params, step, strict=True):
            p.grad = g
        opt.step()
    if optimlab.get_rule(case.name).group_wide:  # Prodigy: one d over the whole group
        flat = reference_run(
            case.name,
            case.full(),
            np.concatenate([s.ravel() for s in start]),
            [np.concatenate([g.numpy().ravel() for g in step]) for step in grads],
        )[-1]
        cuts = np.cumsum([s.size for s in start])[:-1]
        refs = [r.reshape(s.shape) for r, s in zip(np.split(flat, cuts), start, strict=True)]
    else:
        refs = [
            reference_run(case.name, case.full(), start[i], [s[i].numpy() for s in grads])[-1]
            for i in range(len(params))
        ]
    for p, ref in zip(params, refs, strict=True):
        scale = np.abs(ref).max()
        assert np.abs(p.detach().numpy() - ref).max() / scale < 1e-10


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_same_rule_drives_numpy_and_torch(name: str) -> None:
    """The rule object behind the class is the registry's; NumPy and torch agree."""
    rule = optimlab.get_rule(name)
    cls = CLASSES[name]
    assert cls._arguments.spec.rule is rule
    hp = rule.validate()
    param = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    grads = random_grads([param], 30)
    w = param.detach().numpy().copy()
    state = rule.init(w)
    opt = cls([param])
    for (g,) in grads:
        delta, state = rule.update(g.numpy(), state, w, **hp)
        w = w + delta
        param.grad = g
        opt.step()
    np.testing.assert_allclose(param.detach().numpy(), w, rtol=1e-14, atol=1e-15)


def test_lion_matches_paper_equations_written_here() -> None:
    """Chen et al. 2023, Algorithm 2, written out in this test (float64, 100 steps)."""
    lr, beta1, beta2, wd = 3e-3, 0.9, 0.99, 0.1
    params = random_params(torch.float64, shapes=[(6, 4)])
    grads = random_grads(params, 100)
    theta = params[0].detach().clone()
    m = torch.zeros_like(theta)
    opt = CLASSES["lion"](params, lr=lr, betas=(beta1, beta2), weight_decay=wd)
    for (g,) in grads:
        c = beta1 * m + (1 - beta1) * g
        theta = theta - lr * (torch.sign(c) + wd * theta)
        m = beta2 * m + (1 - beta2) * g
        params[0].grad = g
        opt.step()
        torch.testing.assert_close(params[0].detach(), theta, rtol=0, atol=1e-14)
    torch.testing.assert_close(opt.state[params[0]]["m"], m, rtol=0, atol=1e-15)
