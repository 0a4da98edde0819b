"""The rules added with issue 13 against their own references.

- torch.optim's Adamax, Adadelta, Rprop, ASGD and Muon: the rule on float64 torch tensors
  and torch's class side by side, 200 steps, every case of the table (max rel. error
  < 1e-10). torch.optim.Muon runs Newton-Schulz in bfloat16: compared with that cast
  lifted (cases.torch_reference), and with it as shipped to a bfloat16-sized bound.
- Schedule-free SGD and AdamW against the authors' ``schedulefree`` package (its warmup,
  weight decay at y, polynomial and lr-power weights), 500 steps, in training mode (y)
  and after ``eval()`` (x, the rule's ``eval_point``); ASGD's ``eval_point`` against
  torch's averaged iterate.
- Muon's ``ns_dtype``: bfloat16 against torch.optim.Muon as shipped (one step and 30),
  float32 against the reference loop, to the bounds of those precisions; NumPy refuses
  bfloat16 with a clear error.
- Muon's shape contract (matrices only, a clear error naming the shape; a (K, m, n)
  parameter is K matrices) and the NumPy optimizer's properties on matrices (the generic
  NumPy tests mix shapes Muon refuses).
- The cautious mask on a worked example, and its refusal of a batched call that does not
  say which axes hold settings.
"""

from __future__ import annotations

import copy
import json
import math
import zlib

import numpy as np
import pytest
import torch
from cases import EVAL_REFERENCES, cases_for, torch_kwargs, torch_reference
from numerics import assert_close

import optimlab
from optimlab.rules.registry import get_rule

STEPS = 200
TORCH_NEW = ["adamax", "adadelta", "rprop", "asgd", "muon"]


def _shapes(name: str) -> list[tuple[int, ...]]:
    if get_rule(name).param_ndim == 2:
        return [(6, 4), (3, 8), (1, 5)]
    return [(6, 4), (7,), (2, 3, 4), ()]


def _tensors(seed: int, shapes, steps: int = STEPS):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [
        [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(steps)
    ]
    return params, grads


def _rule_on_tensors(name: str, hp: dict, params, grads):
    """The registered rule on float64 torch tensors (no optimizer class in between)."""
    rule = get_rule(name)
    states = [rule.init(p) for p in params]
    params = list(params)
    for step in grads:
        for i, g in enumerate(step):
            delta, states[i] = rule.update(g, states[i], params[i], **hp)
            params[i] = params[i] + delta
    return params, states


def _torch_class_run(cls, kwargs: dict, params, grads):
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch keeps some scalar state in it
    try:
        opt = cls(ps, **kwargs)
        for step in grads:
            for p, g in zip(ps, step, strict=True):
                p.grad = g.clone()
            opt.step()
    finally:
        torch.set_default_dtype(old)
    return [p.detach() for p in ps], opt


def _max_rel(got, want) -> float:
    scale = max(w.abs().max().item() for w in want if w.numel())
    return (
        max((g - w).abs().max().item() for g, w in zip(got, want, strict=True) if w.numel()) / scale
    )


TORCH_CASES = [c for n in TORCH_NEW for c in cases_for(n)]


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_rule_matches_torch_optim_float64(case) -> None:
    hp = case.full()
    params, grads = _tensors(zlib.crc32(case.id.encode()), _shapes(case.name))
    got, _ = _rule_on_tensors(case.name, hp, params, grads)
    want, _ = _torch_class_run(
        torch_reference(case.name), torch_kwargs(case.name, hp), params, grads
    )
    err = _max_rel(got, want)
    assert err < 1e-10, f"{case.id}: max rel. error {err:.2e} over {STEPS} steps"
    assert _max_rel(got, params) > 1e-3  # it moved


def test_muon_against_torch_as_shipped_is_bfloat16_close() -> None:
    """torch.optim.Muon orthogonalises in bfloat16 (8 bits of mantissa): one step from the
    same state differs from the float64 rule by about bfloat16's resolution, no more."""
    hp = get_rule("muon").validate(lr=0.02)
    params, grads = _tensors(3, [(6, 4), (3, 8)], steps=1)
    got, _ = _rule_on_tensors("muon", hp, params, grads)
    want, _ = _torch_class_run(torch.optim.Muon, torch_kwargs("muon", hp), params, grads)
    steps = [(g - p) for g, p in zip(got, params, strict=True)]
    torch_steps = [(w - p) for w, p in zip(want, params, strict=True)]
    err = _max_rel(steps, torch_steps)
    assert 1e-5 < err < 5e-2, err  # bfloat16 differs, but only at its own precision


# --------------------------------------------------------------------------- Muon's ns_dtype
BF16_BOUND = 5e-2  # bfloat16 keeps 8 bits (2^-8 = 3.9e-3); five iterations amplify it


def test_muon_ns_dtype_bfloat16_is_torchs_precision() -> None:
    """``ns_dtype="bfloat16"`` computes what torch.optim.Muon ships. One step from the same
    state agrees with torch's to bfloat16's resolution and differs from the float64 rule by
    about that much, no less (so the iteration really ran in bfloat16); the step, the
    parameter and the momentum stay in the parameter's dtype."""
    shapes = [(6, 4), (3, 8), (16, 16)]
    params64, grads64 = _tensors(43, shapes, steps=1)
    params = [p.float() for p in params64]
    grads = [[g.float() for g in step] for step in grads64]
    rule = get_rule("muon")
    low, low_states = _rule_on_tensors(
        "muon", rule.validate(lr=0.02, ns_dtype="bfloat16"), params, grads
    )
    full, _ = _rule_on_tensors("muon", rule.validate(lr=0.02), params64, grads64)
    shipped, _ = _torch_class_run(torch.optim.Muon, {"lr": 0.02}, params, grads)
    steps = [(q - p).double() for q, p in zip(low, params, strict=True)]
    full_steps = [q - p for q, p in zip(full, params64, strict=True)]
    torch_steps = [(q - p).double() for q, p in zip(shipped, params, strict=True)]
    assert _max_rel(steps, torch_steps) < BF16_BOUND
    assert 1e-5 < _max_rel(steps, full_steps) < BF16_BOUND
    assert all(q.dtype == torch.float32 for q in low)
    assert all(s.momentum_buffer.dtype == torch.float32 for s in low_states)


def test_muon_ns_dtype_bfloat16_class_follows_torch_over_many_steps() -> None:
    """The optimizer class with ``ns_dtype="bfloat16"`` (plain and default paths) against
    torch.optim.Muon as shipped, 30 steps on float32 matrices, wide and tall: the
    trajectories stay within bfloat16's resolution of each other."""
    Muon = optimlab.optim.optimizer_class("muon")
    for foreach in (False, None):
        for shape in ((40, 60), (60, 40)):
            gen = torch.Generator().manual_seed(44)
            start = torch.randn(shape, generator=gen)
            ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
            opt = Muon([ours], lr=0.02, ns_dtype="bfloat16", foreach=foreach)
            ref = torch.optim.Muon([theirs], lr=0.02)
            for _ in range(30):
                g = torch.randn(shape, generator=gen)
                ours.grad, theirs.grad = g.clone(), g.clone()
                opt.step()
                ref.step()
            moved = (theirs - start).detach()
            err = ((ours - theirs).detach().norm() / moved.norm()).item()
            assert err < BF16_BOUND, (foreach, shape, err)
            assert ours.dtype == torch.float32
            assert opt.state[ours]["momentum_buffer"].dtype == torch.float32


def test_muon_ns_dtype_float32_numpy_torch_and_reference_agree() -> None:
    """``ns_dtype="float32"`` on float64 matrices: the NumPy rule, the rule on torch tensors
    and the reference loop (tests/cases.py) agree to the float32 bound, the precision the
    iteration ran in, and differ from the float64 rule by more than float64's bound."""
    from cases import reference_run
    from numerics import RTOL_FLOAT32

    rule = get_rule("muon")
    hp = rule.validate(lr=0.02, ns_dtype="float32")
    rng = np.random.default_rng(45)
    param, grads = rng.standard_normal((5, 7)), list(rng.standard_normal((20, 5, 7)))
    state, p = rule.init(param), param
    for g in grads:
        delta, state = rule.update(g, state, p, **hp)
        p = p + delta
    assert p.dtype == np.float64
    want = reference_run("muon", dict(hp), param, grads)[-1]
    assert_close(p, want, rtol=RTOL_FLOAT32, what="numpy vs reference")
    got, _ = _rule_on_tensors(
        "muon", hp, [torch.from_numpy(param)], [[torch.from_numpy(g)] for g in grads]
    )
    assert_close(got[0], want, rtol=RTOL_FLOAT32, what="torch vs reference")
    full = reference_run("muon", dict(rule.validate(lr=0.02)), param, grads)[-1]
    assert np.abs(p - full).max() > 1e-13 * np.abs(full).max()  # it ran in float32


def test_muon_ns_dtype_bfloat16_is_refused_on_numpy() -> None:
    """NumPy has no bfloat16: the NumPy optimizer refuses the first step with a
    ValueError that names the option and the choices that work, and keeps its state."""
    opt = optimlab.numpy_optimizer("muon", ns_dtype="bfloat16")
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"ns_dtype='bfloat16' needs torch tensors.*float32"):
        opt.update(np.ones((3, 4)), np.ones((3, 4)))
    after = opt.state_dict()
    assert before.keys() == after.keys() and after["step"] == 0
    assert all(np.array_equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------- schedule-free

SF_SETTINGS = {
    "adamw_schedulefree": [
        {},
        {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.1},
        {"lr": 0.01, "warmup_steps": 50, "r": 0.5, "weight_lr_power": 1.5, "weight_decay": 0.05},
    ],
    "sgd_schedulefree": [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.1},
        {"lr": 0.05, "warmup_steps": 50, "r": 1.0, "weight_lr_power": 0.0},
    ],
}


def _package_kwargs(name: str, hp: dict) -> dict:
    out = dict(hp)
    if name == "adamw_schedulefree":
        out["betas"] = (out.pop("beta1"), out.pop("beta2"))
    return out


@pytest.mark.parametrize("foreach", [False, True], ids=["plain", "foreach"])
@pytest.mark.parametrize(
    "name, setting",
    [(n, s) for n, settings in SF_SETTINGS.items() for s in settings],
    ids=lambda x: x if isinstance(x, str) else "-".join(map(str, x)) or "defaults",
)
def test_schedule_free_matches_the_schedulefree_package(name, setting, foreach) -> None:
    """y (the trained parameter) and x (eval_point) against the authors' package, float64,
    500 steps; its optimizer.eval() swaps x into the parameters, train() swaps y back."""
    schedulefree = pytest.importorskip("schedulefree")
    cls = {
        "adamw_schedulefree": schedulefree.AdamWScheduleFree,
        "sgd_schedulefree": schedulefree.SGDScheduleFree,
    }[name]
    rule = get_rule(name)
    hp = rule.validate(**setting)
    params, grads = _tensors(11, [(5, 3), (7,), ()], steps=500)
    got, states = _rule_on_tensors(name, hp, params, grads)
    ps = [torch.nn.Parameter(p.clone()) for p in params]
    opt = cls(ps, foreach=foreach, **_package_kwargs(name, hp))
    opt.train()
    for step in grads:
        for p, g in zip(ps, step, strict=True):
            p.grad = g.clone()
        opt.step()
    want_y = [p.detach().clone() for p in ps]
    opt.eval()
    want_x = [p.detach().clone() for p in ps]
    xs = [rule.evaluation_point(p, s) for p, s in zip(got, states, strict=True)]
    assert _max_rel(got, want_y) < 1e-12
    assert _max_rel(xs, want_x) < 1e-12
    assert _max_rel(xs, got) > 1e-3  # x and y are different points


@pytest.mark.parametrize("name", sorted(EVAL_REFERENCES))
def test_eval_point_matches_its_reference(name) -> None:
    """x of schedule-free (the paper's Algorithm 1) and ASGD's average, at every step."""
    for case in cases_for(name):
        hp = case.full()
        rng = np.random.default_rng(zlib.crc32(case.id.encode()))
        param, grads = rng.standard_normal((4, 3)), list(rng.standard_normal((60, 4, 3)))
        rule, p = get_rule(name), param
        state, want = rule.init(param), EVAL_REFERENCES[name](param, grads, **hp)
        assert rule.evaluation_point(p, state) is p or np.array_equal(
            rule.evaluation_point(p, state), p
        )
        for g, w in zip(grads, want, strict=True):
            delta, state = rule.update(g, state, p, **hp)
            p = p + delta
            assert_close(rule.evaluation_point(p, state), w, rtol=1e-12, what=case.id)


def test_asgd_eval_point_is_torchs_average() -> None:
    hp = get_rule("asgd").validate(lr=0.05, lambd=0.01, t0=20.0)
    params, grads = _tensors(5, [(4, 3)], steps=100)
    got, states = _rule_on_tensors("asgd", hp, params, grads)
    _, opt = _torch_class_run(torch.optim.ASGD, torch_kwargs("asgd", hp), params, grads)
    (theirs,) = [s["ax"] for s in opt.state.values()]
    assert_close(get_rule("asgd").evaluation_point(got[0], states[0]), theirs, rtol=1e-10)
    assert not torch.allclose(theirs, got[0])  # averaging started at step 22


def test_rules_without_eval_point_evaluate_at_the_parameter() -> None:
    rule = get_rule("adam")
    p = np.ones(3)
    assert rule.eval_point is None and rule.evaluation_point(p, rule.init(p)) is p


# --------------------------------------------------------------------------- Muon's shapes


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
def test_muon_refuses_non_matrices_naming_the_shape(shape) -> None:
    rule = get_rule("muon")
    message = f"muon optimizes 2-D parameters (matrices) only, got a parameter of shape {shape}"
    with pytest.raises(ValueError) as err:
        rule.init(np.ones(shape))
    assert message in str(err.value) and "adamw" in str(err.value)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):  # batched: (K, n) is K vectors
        rule.init(np.ones((3, 5)), batch_ndim=1)
    opt = optimlab.optim.optimizer_class("muon")([torch.nn.Parameter(torch.ones(shape))])
    opt.param_groups[0]["params"][0].grad = torch.ones(shape)
    with pytest.raises(ValueError, match="2-D parameters"):
        opt.step()
    with pytest.raises(ValueError, match="2-D parameters"):
        optimlab.numpy_optimizer("muon").update(np.ones(shape), np.ones(shape))


def test_muon_batch_of_matrices_is_each_matrix_alone() -> None:
    rng = np.random.default_rng(40)
    rule = get_rule("muon")
    lrs = np.array([0.01, 0.02, 0.05]).reshape(3, 1, 1)
    param, grads = rng.standard_normal((3, 4, 6)), rng.standard_normal((30, 3, 4, 6))
    hp = rule.validate(lr=lrs, adjust_lr_fn="match_rms_adamw")
    state, p = rule.init(param, batch_ndim=1), param
    for g in grads:
        delta, state = rule.update(g, state, p, batch_ndim=1, **hp)
        p = p + delta
    for k in range(3):
        hk = rule.validate(lr=float(lrs[k, 0, 0]), adjust_lr_fn="match_rms_adamw")
        sk, pk = rule.init(param[k]), param[k]
        for g in grads:
            delta, sk = rule.update(g[k], sk, pk, **hk)
            pk = pk + delta
        assert_close(p[k], pk, what=f"setting {k}")


def test_muon_step_is_nearly_orthogonal() -> None:
    """Five quintic Newton-Schulz steps put every singular value near 1 (in [0.5, 1.5])."""
    rng = np.random.default_rng(41)
    for shape in ((8, 5), (5, 8)):
        g = rng.standard_normal(shape)
        p = np.zeros(shape)
        hp = get_rule("muon").validate(lr=1.0, weight_decay=0.0, nesterov=False, momentum=0.0)
        delta, _ = get_rule("muon").update(g, get_rule("muon").init(p), p, **hp)
        ratio = math.sqrt(max(1.0, shape[0] / shape[1]))
        sv = np.linalg.svd(-delta / ratio, compute_uv=False)
        assert sv.min() > 0.5 and sv.max() < 1.5, sv


def _matrices(rng, offset: float = 0.0) -> dict[str, np.ndarray]:
    return {"w": rng.normal(size=(3, 4)) + offset, "v": rng.normal(size=(5, 2)) + offset}


@pytest.mark.parametrize("via", ["dict", "npz", "json"])
@pytest.mark.parametrize("case", cases_for("muon"), ids=lambda c: c.id)
def test_muon_numpy_optimizer_resume_layouts_and_purity(case, via) -> None:
    """The NumPy optimizer properties of test_numpy_optim.py, on matrices only."""
    rng = np.random.default_rng(42)
    w0 = _matrices(rng, 1.0)
    grads = [_matrices(rng) for _ in range(8)]
    rule, hp = get_rule("muon"), case.full()
    ref, first = (optimlab.numpy_optimizer("muon", **case.hp) for _ in range(2))
    w_ref = w_first = w0
    for g in grads[:4]:
        g_before = copy.deepcopy(g)
        w_ref, w_first = ref.update(w_ref, g), first.update(w_first, g)
        assert all(np.array_equal(g[k], g_before[k]) for k in g)  # inputs untouched
    saved = first.state_dict()
    assert all(isinstance(v, np.ndarray | str | int | float | bool) for v in saved.values())
    if via == "json":
        saved = json.loads(json.dumps(saved, default=lambda a: a.tolist()))
    elif via == "npz":
        saved = {k: np.asarray(v) for k, v in saved.items() if v is not None}
    resumed = optimlab.numpy_optimizer("muon")
    resumed.load_state_dict(saved)
    w = w_first
    for g in grads[4:]:
        w_ref, w = ref.update(w_ref, g), resumed.update(w, g)
        for k in w:
            np.testing.assert_array_equal(w[k], w_ref[k])
    # a list layout equals the rule on each matrix
    states, ps = {k: rule.init(v) for k, v in w0.items()}, dict(w0)
    opt, w_list = optimlab.numpy_optimizer("muon", **case.hp), [w0["w"], w0["v"]]
    for g in grads:
        w_list = opt.update(w_list, [g["w"], g["v"]])
        for k in ps:
            delta, states[k] = rule.update(g[k], states[k], ps[k], **hp)
            ps[k] = ps[k] + delta
    np.testing.assert_array_equal(w_list[0], ps["w"])
    np.testing.assert_array_equal(w_list[1], ps["v"])


# --------------------------------------------------------------------------- cautious


def test_cautious_mask_worked_example() -> None:
    """Lion with a fresh state: u = sign(g) agrees everywhere, so nothing is masked and the
    scale is n / (n + 1); with momentum against one coordinate, that one is dropped."""
    rule = get_rule("lion")
    hp = rule.validate(lr=0.1, cautious=True)
    g = np.array([0.5, -2.0, 1.0, 3.0])
    delta, state = rule.update(g, rule.init(np.zeros(4)), np.zeros(4), **hp)
    np.testing.assert_allclose(delta, -0.1 * np.sign(g) * 4 / 5, rtol=1e-15)
    # momentum against coordinate 1: c_1 = 0.9 (-10) + 0.1 (2) < 0 while g_1 > 0
    state = state._replace(m=np.array([1.0, -10.0, 1.0, 1.0]))
    delta, _ = rule.update(np.array([0.5, 2.0, 1.0, 3.0]), state, np.zeros(4), **hp)
    np.testing.assert_allclose(delta, -0.1 * np.array([1, 0, 1, 1]) * 4 / 4, rtol=1e-15)


@pytest.mark.parametrize("name", ["adam", "adamw", "lion"])
def test_cautious_batched_call_needs_batch_ndim(name) -> None:
    rule = get_rule(name)
    hp = rule.validate(lr=np.array([[0.1], [0.2]]), cautious=True)
    p = np.ones((2, 3))
    with pytest.raises(ValueError, match="cautious=True reduces over each parameter's own"):
        rule.update(np.ones((2, 3)), rule.init(p), p, **hp)
    rule.update(np.ones((2, 3)), rule.init(p), p, batch_ndim=1, **hp)  # fine
    assert not rule.elementwise_with(hp) and rule.elementwise_with({**hp, "cautious": False})


def test_cautious_torch_class_takes_the_plain_path() -> None:
    """The multi-tensor path packs parameters together: a per-tensor mask must not see
    the pack, so cautious groups step each tensor alone (equal to the rule per tensor)."""
    params = [torch.nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in [(4, 3), (5,)]]
    start = [p.detach().clone() for p in params]
    opt = optimlab.optim.AdamW(params, lr=0.01, cautious=True)
    grads = [[torch.randn(p.shape, dtype=torch.float64) for p in params] for _ in range(10)]
    for step in grads:
        for p, g in zip(params, step, strict=True):
            p.grad = g
        opt.step()
    for i, p in enumerate(params):
        want, _ = _rule_on_tensors(
            "adamw",
            get_rule("adamw").validate(lr=0.01, cautious=True),
            [start[i]],
            [[s[i]] for s in grads],
        )
        assert_close(p.detach(), want[0])


# --------------------------------------------------------------------------- memory


def test_state_numel_of_the_new_rules() -> None:
    def numel(name: str, shape: tuple[int, ...], **hp) -> int:
        rule = get_rule(name)
        return rule.state_numel(shape, rule.validate(**hp))

    n = (10, 3)
    assert numel("adamax", n) == numel("adadelta", n) == numel("rprop", n) == 60
    assert numel("asgd", n) == numel("muon", n) == 30
    assert numel("sgd_schedulefree", n) == 60 and numel("adamw_schedulefree", n) == 90
    assert numel("ademamix", n) == numel("mars", n) == 90 and numel("lamb", n) == 60
    assert numel("adam", n, cautious=True) == 60  # the mask is not kept
