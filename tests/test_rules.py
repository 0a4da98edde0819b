"""Every rule against its independent reference, torch.optim, itself on torch tensors,
and itself batched; purity, identities, zero gradients and state sizes. One table
(``cases.py``) drives every test."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from cases import CASES, Case, randomized, reference_run, torch_kwargs, torch_reference
from numerics import assert_close

from optimlab.rules.registry import get_rule

STEPS = 100
ELEMENTWISE_SHAPES = [(1,), (7,), (3, 4, 5)]
FACTORED_SHAPES = [(5, 4), (6,), (2, 3, 4)]
MATRIX_SHAPES = [(5, 4), (1, 6), (3, 7)]  # rules that take matrices only (Muon)


def shapes_for(name: str) -> list[tuple[int, ...]]:
    rule = get_rule(name)
    if rule.param_ndim == 2:
        return MATRIX_SHAPES
    return ELEMENTWISE_SHAPES if rule.elementwise else FACTORED_SHAPES


def batch_ndim_for(case: Case) -> int | None:
    """1 for updates that reduce over a parameter's own axes (they must know the
    settings' axis), None for elementwise ones."""
    return None if get_rule(case.name).elementwise_with(case.full()) else 1


def rule_run(
    name: str, hp: dict[str, Any], param: Any, grads: Any, batch_ndim: int | None = None
) -> tuple[list[Any], Any]:
    """The parameter after each step by the registered rule, and the final state."""
    rule = get_rule(name)
    extra = {} if batch_ndim is None else {"batch_ndim": batch_ndim}
    state = rule.init(param, **extra)
    out = []
    for g in grads:
        delta, state = rule.update(g, state, param, **hp, **extra)
        param = param + delta
        out.append(param)
    return out, state


def rel_err(a: Any, b: Any) -> float:
    """max |a - b| / max |b| (0 when both are exactly zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(a - b))
    return float(diff / scale) if scale > 0 else float(diff)


def draw(rng: np.random.Generator, shape: tuple[int, ...], steps: int = STEPS):
    param = rng.standard_normal(shape)
    grads = rng.standard_normal((steps, *shape))
    return param, list(grads)


def case_params(cases=CASES):
    return [pytest.param(c, id=c.id) for c in cases]


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("case", case_params())
def test_rule_matches_reference(case: Case) -> None:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    for c in (case, randomized(case, rng)):
        hp = c.full()
        for shape in shapes_for(c.name):
            param, grads = draw(rng, shape)
            got, _ = rule_run(c.name, hp, param, grads)
            want = reference_run(c.name, hp, param, grads)
            errs = [rel_err(a, b) for a, b in zip(got, want, strict=True)]
            assert max(errs) < 1e-12, (c.id, shape, max(errs), int(np.argmax(errs)))
            assert rel_err(got[-1], param) > 1e-6  # it did move


def test_radam_reaches_the_rectified_branch() -> None:
    """With beta2 = 0.999, rho_t > 5 from step 6: 10 steps cover both branches."""
    beta2 = 0.999
    rho_inf = 2 / (1 - beta2) - 1
    rho = [rho_inf - 2 * t * beta2**t / (1 - beta2**t) for t in range(1, 11)]
    assert [r > 5 for r in rho] == [False] * 5 + [True] * 5
    rng = np.random.default_rng(3)
    param, grads = draw(rng, (4,), steps=10)
    hp = get_rule("radam").validate(lr=0.1)
    got, _ = rule_run("radam", hp, param, grads)
    # steps 1-5: plain bias-corrected momentum, no adaptive scaling
    m, p = np.zeros(4), param
    for t in range(1, 6):
        m = 0.9 * m + 0.1 * grads[t - 1]
        p = p - 0.1 * m / (1 - 0.9**t)
        assert rel_err(got[t - 1], p) < 1e-14
    assert rel_err(got, reference_run("radam", hp, param, grads)) < 1e-13


# --------------------------------------------------------------------------- torch.optim


def torch_run(
    name: str, kwargs: dict[str, Any], params: list[np.ndarray], grads: list[list[np.ndarray]]
) -> list[list[np.ndarray]]:
    """torch.optim in float64 on several parameters at once (``grads[i]`` is parameter i's
    gradients); its scalar state too (NAdam's mu_product is kept in the default dtype,
    float32 unless changed). Returns each parameter after each step."""
    cls = torch_reference(name)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ps = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float64)) for p in params]
        opt = cls(ps, **kwargs)
        out: list[list[np.ndarray]] = [[] for _ in ps]
        for t in range(len(grads[0])):
            for i, p in enumerate(ps):
                p.grad = torch.tensor(grads[i][t], dtype=torch.float64)
            opt.step()
            for i, p in enumerate(ps):
                out[i].append(p.detach().numpy().copy())
    finally:
        torch.set_default_dtype(default)
    return out


TORCH_CASES = [c for c in CASES if torch_kwargs(c.name, c.full()) is not None]


@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_rule_matches_torch_optim(case: Case) -> None:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    hp = case.full()
    shapes = shapes_for(case.name)
    params, grads = zip(*(draw(rng, shape) for shape in shapes), strict=True)
    wants = torch_run(case.name, torch_kwargs(case.name, hp), list(params), list(grads))
    for shape, param, grad_seq, want in zip(shapes, params, grads, wants, strict=True):
        got, _ = rule_run(case.name, hp, param, grad_seq)
        errs = [rel_err(a, b) for a, b in zip(got, want, strict=True)]
        assert max(errs) < 1e-10, (case.id, shape, max(errs))


def test_every_torch_algorithm_is_checked_against_torch() -> None:
    names = {c.name for c in TORCH_CASES}
    from optimlab.rules.registry import REGISTRY

    assert names == {s.name for s in REGISTRY if s.torch_reference is not None}


# --------------------------------------------------------------------------- torch tensors


@pytest.mark.parametrize("case", case_params())
def test_rule_on_torch_tensors_equals_numpy(case: Case) -> None:
    rng = np.random.default_rng(7)
    hp = case.full()
    for shape in shapes_for(case.name):
        param, grads = draw(rng, shape, steps=30)
        got_np, state_np = rule_run(case.name, hp, param, grads)
        got_t, state_t = rule_run(
            case.name, hp, torch.tensor(param), [torch.tensor(g) for g in grads]
        )
        assert all(isinstance(x, torch.Tensor) and x.dtype == torch.float64 for x in got_t)
        # not bitwise: torch divides by a Python scalar as a multiplication by its
        # reciprocal, and sums in another order
        for t, (a, b) in enumerate(zip(got_t, got_np, strict=True)):
            assert_close(a, b, what=f"{case.id} {shape} step {t}")
        for field, a, b in zip(state_np._fields, state_t, state_np, strict=True):
            assert (a is None) == (b is None)
            if isinstance(b, np.ndarray):
                assert isinstance(a, torch.Tensor) and a.shape == b.shape
                assert_close(a, b, what=f"{case.id} {shape} state {field}")


# --------------------------------------------------------------------------- batching


K = 3


def batched_hp(cases: list[Case], shape_ndim: int) -> dict[str, Any]:
    """Stack K settings into arrays of shape (K, 1, ...); flags and None must agree."""
    fulls = [c.full() for c in cases]
    out = {}
    for key, first in fulls[0].items():
        values = [f[key] for f in fulls]
        if get_rule(cases[0].name).hyper(key).kind != "float" or first is None:
            assert all(v == first for v in values)
            out[key] = first
        else:
            out[key] = np.array(values, dtype=np.float64).reshape((K,) + (1,) * shape_ndim)
    return out


def _settings(case: Case, rng: np.random.Generator) -> list[Case]:
    return [case] + [randomized(case, rng) for _ in range(K - 1)]


@pytest.mark.parametrize("case", case_params())
def test_batched_equals_separate_runs(case: Case) -> None:
    rng = np.random.default_rng(11)
    batch_ndim = batch_ndim_for(case)
    settings = _settings(case, rng)
    for shape in shapes_for(case.name):
        param, grads = draw(rng, (K, *shape), steps=40)
        hp = batched_hp(settings, len(shape))
        got, _ = rule_run(case.name, hp, param, grads, batch_ndim)
        for k, c in enumerate(settings):
            want, _ = rule_run(c.name, c.full(), param[k], [g[k] for g in grads])
            # not bitwise: array hyperparameters take NumPy's SIMD loops (``beta2**t``),
            # Python floats take scalar libm, and the two round differently in the last bit
            for t, (a, b) in enumerate(zip(got, want, strict=True)):
                assert_close(a[k], b, what=f"{c.id} {shape} step {t}")


@pytest.mark.parametrize("case", case_params())
def test_perturbing_one_setting_leaves_the_others(case: Case) -> None:
    rng = np.random.default_rng(12)
    batch_ndim = batch_ndim_for(case)
    shape = shapes_for(case.name)[0]
    settings = _settings(case, rng)
    param, grads = draw(rng, (K, *shape), steps=20)
    hp = batched_hp(settings, len(shape))
    base, _ = rule_run(case.name, hp, param, grads, batch_ndim)
    # setting 0: other hyperparameter values, a diverging gradient, a different start
    hp2 = {
        k: (
            np.concatenate([v[:1] * 0.5 + 0.01 * (v[:1] < 0.5), v[1:]])
            if isinstance(v, np.ndarray)
            else v
        )
        for k, v in hp.items()
    }
    grads2 = [np.concatenate([g[:1] * 1e3, g[1:]]) for g in grads]
    param2 = np.concatenate([param[:1] + 1.0, param[1:]])
    other, _ = rule_run(case.name, hp2, param2, grads2, batch_ndim)
    for a, b in zip(base, other, strict=True):
        assert np.array_equal(a[1:], b[1:])
        assert not np.array_equal(a[:1], b[:1])


# --------------------------------------------------------------------------- purity


def _snapshot(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, tuple):
        return tuple(_snapshot(v) for v in x)
    return x


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("case", case_params())
def test_rules_never_modify_their_inputs(case: Case) -> None:
    rng = np.random.default_rng(5)
    rule = get_rule(case.name)
    hp = case.full()
    for shape in shapes_for(case.name):
        param, grads = draw(rng, shape, steps=4)
        state = rule.init(param)
        for g in grads:
            before = _snapshot((g, param, tuple(state)))
            delta, new_state = rule.update(g, state, param, **hp)
            assert _same(before, _snapshot((g, param, tuple(state))))
            assert not any(
                isinstance(s, np.ndarray) and np.shares_memory(s, x)
                for s in new_state
                for x in (g, param)
            )
            assert not np.shares_memory(delta, param)
            param, state = param + delta, new_state


# --------------------------------------------------------------------------- identities


def test_adamw_without_decay_is_adam() -> None:
    rng = np.random.default_rng(21)
    param, grads = draw(rng, (3, 4))
    for extra in ({}, {"amsgrad": True}, {"bias_correction": False}):
        hp = dict(lr=0.01, weight_decay=0.0, **extra)
        a, _ = rule_run("adamw", get_rule("adamw").validate(**hp), param, grads)
        b, _ = rule_run("adam", get_rule("adam").validate(**hp), param, grads)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_zero_momentum_is_sgd() -> None:
    rng = np.random.default_rng(22)
    param, grads = draw(rng, (5,))
    for row in ("momentum", "sgd"):
        for extra in ({}, {"dampening": 0.4}, {"weight_decay": 0.1}):
            hp = get_rule(row).validate(lr=0.05, momentum=0.0, **extra)
            a, _ = rule_run(row, hp, param, grads)
            b, _ = rule_run("sgd", get_rule("sgd").validate(lr=0.05), param, grads)
            if "weight_decay" in extra:
                p = param
                for t, g in enumerate(grads):
                    p = p - 0.05 * (g + 0.1 * p)
                    assert np.array_equal(a[t], p)
            else:
                assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # RMSprop with momentum 0 is its plain form, and Nesterov off is heavy ball
    hp = get_rule("rmsprop").validate(lr=0.01, momentum=0.0)
    a, state = rule_run("rmsprop", hp, param, grads)
    assert state.momentum_buffer is None and state.grad_avg is None
    hp = get_rule("nesterov").validate(nesterov=False)
    b, _ = rule_run("nesterov", hp, param, grads)
    c, _ = rule_run("momentum", get_rule("momentum").validate(), param, grads)
    assert all(np.array_equal(x, y) for x, y in zip(b, c, strict=True))


def test_adafactor_vector_is_the_unfactored_formula() -> None:
    """On a 1-D parameter: V_t = (1 - t^c) V + t^c g^2, no factoring."""
    rng = np.random.default_rng(23)
    param, grads = draw(rng, (6,), steps=50)
    lr, c = 0.05, -0.8
    got, state = rule_run("adafactor", get_rule("adafactor").validate(lr=lr), param, grads)
    assert state.row_var is None and state.col_var is None and state.variance.shape == (6,)
    p, v = param, np.zeros(6)
    eps1 = np.finfo(np.float64).eps
    for t, g in enumerate(grads, start=1):
        v = (1 - t**c) * v + t**c * g * g
        u = g / np.sqrt(np.maximum(v, eps1**2))
        step = max(1e-3, np.sqrt(np.mean(p * p))) * min(lr, t**-0.5)
        p = p - step / max(1.0, np.sqrt(np.mean(u * u))) * u
        assert rel_err(got[t - 1], p) < 1e-13


def test_adafactor_single_row_or_column_matrix_equals_vector() -> None:
    """With one row (or column) the factored estimate R C / mean(R) is exactly the
    unfactored second moment, so the steps agree up to rounding."""
    rng = np.random.default_rng(24)
    param, grads = draw(rng, (6,), steps=50)
    hp = get_rule("adafactor").validate(lr=0.05, weight_decay=0.1)
    vec, _ = rule_run("adafactor", hp, param, grads)
    for shape in ((1, 6), (6, 1)):
        mat, state = rule_run(
            "adafactor", hp, param.reshape(shape), [g.reshape(shape) for g in grads]
        )
        assert state.variance is None
        for t, (a, b) in enumerate(zip(mat, vec, strict=True)):
            assert_close(a.reshape(6), b, what=f"{shape} step {t}")


def test_adafactor_3d_is_per_slice_factored_with_whole_tensor_rms() -> None:
    """A (2, m, n) parameter keeps one row/column factor per slice (as torch)."""
    rng = np.random.default_rng(25)
    param, grads = draw(rng, (2, 3, 4), steps=5)
    _, state = rule_run("adafactor", get_rule("adafactor").validate(), param, grads)
    assert state.row_var.shape == (2, 3, 1) and state.col_var.shape == (2, 1, 4)
    g2 = grads[0] ** 2  # after one step the factors are exactly the first means
    _, s1 = rule_run("adafactor", get_rule("adafactor").validate(), param, grads[:1])
    assert np.allclose(s1.row_var[..., 0], g2.mean(axis=2), rtol=1e-15)
    assert np.allclose(s1.col_var[:, 0, :], g2.mean(axis=1), rtol=1e-15)


def test_adafactor_eps1_none_is_the_dtype_epsilon() -> None:
    rng = np.random.default_rng(26)
    rule = get_rule("adafactor")
    for dtype in (np.float32, np.float64):
        param = rng.standard_normal((3, 4)).astype(dtype)
        grads = [rng.standard_normal((3, 4)).astype(dtype) * 1e-9 for _ in range(3)]
        a, _ = rule_run("adafactor", rule.validate(), param, grads)
        b, _ = rule_run("adafactor", rule.validate(eps1=float(np.finfo(dtype).eps)), param, grads)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert a[-1].dtype == dtype


def _moves_on_zero_grad(case: Case) -> bool:
    """Whether a zero gradient, after some steps, still changes the parameter."""
    hp = case.full()
    if _decays(hp):
        return True
    if hp.get("cautious"):
        return False  # a zero gradient agrees with no direction: the mask stops every step
    if case.name in ("adam", "adamw", "nadam", "radam", "lion", "adamax", "lamb", "prodigy"):
        return hp["beta1"] > 0  # their first moment keeps stepping
    if case.name == "lookahead":  # around AdamW
        return hp["beta1"] > 0  # their first moment keeps stepping
    if case.name in ("ademamix", "mars", "adamw_schedulefree"):
        return True  # the slow momentum; the gradient correction; x moving towards z
    return hp.get("momentum", 0) > 0


def _decays(hp: dict[str, Any]) -> bool:
    """Whether a setting shrinks the parameter with no gradient (ASGD's lambd too)."""
    return hp.get("weight_decay", 0) > 0 or hp.get("lambd", 0) > 0


@pytest.mark.parametrize("case", case_params())
def test_zero_gradients(case: Case) -> None:
    rng = np.random.default_rng(27)
    rule, hp = get_rule(case.name), case.full()
    shape = shapes_for(case.name)[0]
    param, grads = draw(rng, shape, steps=3)
    # from a fresh state: only weight decay acts
    delta, _ = rule.update(np.zeros(shape), rule.init(param), param, **hp)
    assert np.all(np.isfinite(delta))
    assert np.any(delta != 0) == _decays(hp)
    # after some steps: momentum acts too
    out, state = rule_run(case.name, hp, param, grads)
    delta, _ = rule.update(np.zeros(shape), state, out[-1], **hp)
    assert np.all(np.isfinite(delta))
    assert np.any(delta != 0) == _moves_on_zero_grad(case), case.id


# --------------------------------------------------------------------------- state sizes


@pytest.mark.parametrize("case", case_params())
def test_state_numel_counts_the_state_arrays(case: Case) -> None:
    rng = np.random.default_rng(28)
    rule, hp = get_rule(case.name), case.full()
    for shape in shapes_for(case.name):
        param, grads = draw(rng, shape, steps=2)
        _, state = rule_run(case.name, hp, param, grads)
        arrays = [s for s in state[1:] if isinstance(s, np.ndarray) and s.shape != ()]
        assert sum(a.size for a in arrays) == rule.state_numel(shape, hp), (case.id, shape)


def test_state_numel_values() -> None:
    def numel(name: str, shape: tuple[int, ...], **hp: Any) -> int:
        rule = get_rule(name)
        return rule.state_numel(shape, rule.validate(**hp))

    n = (10, 3)
    assert numel("sgd", n) == 0 and numel("sgd", n, momentum=0.9) == 30
    assert numel("momentum", n) == 30 and numel("nesterov", n) == 30
    assert numel("adam", n) == 60 and numel("adam", n, amsgrad=True) == 90
    assert numel("adamw", n) == 60
    assert numel("adagrad", n) == 30
    assert numel("rmsprop", n) == 30
    assert numel("rmsprop", n, momentum=0.9, centered=True) == 90
    assert numel("nadam", n) == 60 and numel("radam", n) == 60
    assert numel("lion", n) == 30
    assert numel("adafactor", (10, 3)) == 13
    assert numel("adafactor", (4, 10, 3)) == 52
    assert numel("adafactor", (30,)) == 30
    big = (4096, 4096)  # sub-linear: a 16.8M matrix keeps 8192 numbers
    assert numel("adafactor", big) == 8192 < math.prod(big) // 1000


# --------------------------------------------------------------------------- dtypes, sizes


@pytest.mark.parametrize("case", case_params())
def test_dtypes_are_kept(case: Case) -> None:
    """Python-number hyperparameters never promote a float32/bfloat16 parameter or state."""
    rng = np.random.default_rng(29)
    hp = case.full()
    shape = shapes_for(case.name)[0]
    param, grads = draw(rng, shape, steps=3)
    runs = [
        (param.astype(np.float32), [g.astype(np.float32) for g in grads], np.float32),
        (
            torch.tensor(param, dtype=torch.bfloat16),
            [torch.tensor(g, dtype=torch.bfloat16) for g in grads],
            torch.bfloat16,
        ),
    ]
    for p, gs, dtype in runs:
        out, state = rule_run(case.name, hp, p, gs)
        assert out[-1].dtype == dtype and out[-1].shape == shape
        for slot in state[1:]:
            if getattr(slot, "ndim", 0) > 0:
                assert slot.dtype == dtype, (case.id, dtype)


@pytest.mark.parametrize("case", case_params())
def test_zero_size_and_0d_parameters(case: Case) -> None:
    rule, hp = get_rule(case.name), case.full()
    for shape in ((0, 3), (3, 0), ()):
        if rule.param_ndim not in (None, len(shape)):
            continue  # refused with a clear error: tests/test_rules_new.py
        param = np.ones(shape)
        state = rule.init(param)
        with np.errstate(all="raise"):  # no NaN from empty means, no division by zero
            for _ in range(3):
                delta, state = rule.update(np.full(shape, 0.5), state, param, **hp)
                assert delta.shape == shape and np.all(np.isfinite(delta))
                param = param + delta
        for slot in state[1:]:
            if isinstance(slot, np.ndarray):
                assert np.all(np.isfinite(slot))


@pytest.mark.parametrize("case", case_params())
def test_batched_on_torch_tensors_equals_numpy(case: Case) -> None:
    """A sweep in torch: (K, 1, ...) tensor hyperparameters on (K, *shape) tensors."""
    rng = np.random.default_rng(30)
    batch_ndim = batch_ndim_for(case)
    settings = _settings(case, rng)
    shape = shapes_for(case.name)[-1]
    param, grads = draw(rng, (K, *shape), steps=15)
    hp = batched_hp(settings, len(shape))
    hp_t = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in hp.items()}
    got, _ = rule_run(
        case.name, hp_t, torch.tensor(param), [torch.tensor(g) for g in grads], batch_ndim
    )
    want, _ = rule_run(case.name, hp, param, grads, batch_ndim)
    for t, (a, b) in enumerate(zip(got, want, strict=True)):
        assert_close(a, b, what=f"{case.id} step {t}")


@pytest.mark.parametrize("case", case_params())
def test_descends_on_a_quadratic(case: Case) -> None:
    """20 steps on f(x) = sum(a x^2) / 2 lower f, for contiguous and strided params."""
    rng = np.random.default_rng(31)
    rule, hp = get_rule(case.name), case.full()
    shape = shapes_for(case.name)[-1]
    a = rng.uniform(0.5, 2.0, shape)
    strided = rng.standard_normal(shape[::-1]).T  # same shape, not C-contiguous
    assert not strided.flags.c_contiguous
    for x in (rng.standard_normal(shape), strided):
        x0, state = x, rule.init(x)
        for _ in range(20):
            delta, state = rule.update(a * x, state, x, **hp)
            x = x + delta
        assert np.sum(a * x * x) < np.sum(a * x0 * x0), case.id


def test_radam_batch_mixing_rectified_and_unrectified_settings() -> None:
    """beta2 = 0.5 never rectifies (rho_inf = 3); 0.99 and 0.999 switch at different
    steps. The batch takes each setting's branch, with no invalid sqrt along the way."""
    rng = np.random.default_rng(32)
    beta2 = np.array([0.5, 0.99, 0.999]).reshape(3, 1)
    param, grads = draw(rng, (3, 4), steps=12)
    with np.errstate(all="raise"):
        got, _ = rule_run("radam", {"lr": 0.1, "beta2": beta2}, param, grads)
    for k in range(3):
        want, _ = rule_run(
            "radam", {"lr": 0.1, "beta2": float(beta2[k, 0])}, param[k], [g[k] for g in grads]
        )
        for t, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_close(a[k], b, what=f"setting {k} step {t}")
