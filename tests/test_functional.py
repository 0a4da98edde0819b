"""The teaching step functions against the update equations written out plainly here.

Each reference below is the textbook/torch form of the algorithm in float64, independent of
optimlab's rules; every step function must match it over many steps, on one array, a list
and a dict, and must equal the registry rule it wraps bit for bit.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import optimlab
from optimlab import functional as F

STEPS = 60
RTOL = 1e-12


# ---- plain references -------------------------------------------------------------------
def ref_sgd(p, g, lr):
    return p - lr * g


def ref_momentum(p, g, vel, lr, beta, ema=False):
    vel = beta * vel + ((1 - beta) * g if ema else g)
    return p - lr * vel, vel


def ref_nesterov(p, g, vel, lr, beta):
    vel = beta * vel + g
    return p - lr * (g + beta * vel), vel


def ref_adagrad(p, g, cache, lr, eps):
    cache = cache + g**2
    return p - lr * g / (np.sqrt(cache) + eps), cache


def ref_rmsprop(p, g, cache, lr, beta, eps):
    cache = beta * cache + (1 - beta) * g**2
    return p - lr * g / (np.sqrt(cache) + eps), cache


def ref_adam(p, g, m, v, lr, b1, b2, t, eps, bias_correction=True):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat, v_hat = (m / (1 - b1**t), v / (1 - b2**t)) if bias_correction else (m, v)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def ref_adamw(p, g, m, v, lr, b1, b2, t, wd, eps):
    p = p * (1 - lr * wd)  # decoupled decay first, then Adam on the raw gradient
    return ref_adam(p, g, m, v, lr, b1, b2, t, eps)


def ref_nadam(p, g, m, v, mu_prod, lr, b1, b2, t, eps, psi=4e-3):
    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    mu_prod = mu_prod * mu
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    denom = np.sqrt(v / (1 - b2**t)) + eps
    p = p - lr * (1 - mu) / (1 - mu_prod) * g / denom
    p = p - lr * mu_next / (1 - mu_prod * mu_next) * m / denom
    return p, m, v, mu_prod


# ---- one table: how to run each step function and its reference for one step -----------
# Each entry: (teaching call, reference call, number of state slots, scalar state start).
# Calls take (params, grads, state_tuple, t) and return (params, state_tuple).
HP = dict(lr=0.05, beta=0.9, beta1=0.85, beta2=0.99, eps=1e-6, wd=0.1)

CASES = {
    "gradient_descent": (
        lambda p, g, s, t: (F.gradient_descent_step(p, g, HP["lr"]), ()),
        lambda p, g, s, t: (ref_sgd(p, g, HP["lr"]), ()),
        0,
    ),
    "sgd": (
        lambda p, g, s, t: (F.sgd_step(p, g, lr=HP["lr"]), ()),
        lambda p, g, s, t: (ref_sgd(p, g, HP["lr"]), ()),
        0,
    ),
    "momentum": (
        lambda p, g, s, t: _pack(F.momentum_step(p, g, s[0], HP["lr"], HP["beta"])),
        lambda p, g, s, t: _pack(ref_momentum(p, g, s[0], HP["lr"], HP["beta"])),
        1,
    ),
    "momentum_ema": (
        lambda p, g, s, t: _pack(F.momentum_step(p, g, s[0], HP["lr"], HP["beta"], ema=True)),
        lambda p, g, s, t: _pack(ref_momentum(p, g, s[0], HP["lr"], HP["beta"], ema=True)),
        1,
    ),
    "nesterov": (
        lambda p, g, s, t: _pack(F.nesterov_step(p, g, s[0], HP["lr"], HP["beta"])),
        lambda p, g, s, t: _pack(ref_nesterov(p, g, s[0], HP["lr"], HP["beta"])),
        1,
    ),
    "adagrad": (
        lambda p, g, s, t: _pack(F.adagrad_step(p, g, s[0], HP["lr"], epsilon=HP["eps"])),
        lambda p, g, s, t: _pack(ref_adagrad(p, g, s[0], HP["lr"], HP["eps"])),
        1,
    ),
    "rmsprop": (
        lambda p, g, s, t: _pack(F.rmsprop_step(p, g, s[0], HP["lr"], HP["beta"], HP["eps"])),
        lambda p, g, s, t: _pack(ref_rmsprop(p, g, s[0], HP["lr"], HP["beta"], HP["eps"])),
        1,
    ),
    "adam": (
        lambda p, g, s, t: _pack(
            F.adam_step(p, g, *s, HP["lr"], HP["beta1"], HP["beta2"], t, HP["eps"])
        ),
        lambda p, g, s, t: _pack(
            ref_adam(p, g, *s, HP["lr"], HP["beta1"], HP["beta2"], t, HP["eps"])
        ),
        2,
    ),
    "adam_no_bias_correction": (
        lambda p, g, s, t: _pack(
            F.adam_step(
                p, g, *s, HP["lr"], HP["beta1"], HP["beta2"], t, HP["eps"], bias_correction=False
            )
        ),
        lambda p, g, s, t: _pack(
            ref_adam(p, g, *s, HP["lr"], HP["beta1"], HP["beta2"], t, HP["eps"], False)
        ),
        2,
    ),
    "adamw": (
        lambda p, g, s, t: _pack(
            F.adamw_step(p, g, *s, HP["lr"], HP["beta1"], HP["beta2"], t, HP["wd"], HP["eps"])
        ),
        lambda p, g, s, t: _pack(
            ref_adamw(p, g, *s, HP["lr"], HP["beta1"], HP["beta2"], t, HP["wd"], HP["eps"])
        ),
        2,
    ),
}


def _pack(out):
    return out[0], tuple(out[1:])


def _nadam_call(p, g, s, t):
    m, v, mu = s
    return _pack(F.nadam_step(p, g, m, v, mu, HP["lr"], HP["beta1"], HP["beta2"], t, HP["eps"]))


def _nadam_ref(p, g, s, t):
    return _pack(ref_nadam(p, g, *s, HP["lr"], HP["beta1"], HP["beta2"], t, HP["eps"]))


def _gradients(rng, shape, steps=STEPS):
    """A fixed gradient sequence (independent of params, so errors cannot compound)."""
    return [rng.normal(size=shape) * rng.uniform(0.1, 3.0) for _ in range(steps)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_matches_plain_equations(name, rng):
    call, ref, n_slots = CASES[name]
    p = rng.uniform(2.0, 4.0, size=7)  # away from zero so a relative tolerance is meaningful
    q, s_ours, s_ref = p.copy(), (np.zeros(7),) * n_slots, (np.zeros(7),) * n_slots
    for t, g in enumerate(_gradients(rng, 7), start=1):
        p, s_ours = call(p, g, s_ours, t)
        q, s_ref = ref(q, g, s_ref, t)
    np.testing.assert_allclose(p, q, rtol=RTOL, atol=0)
    for a, b in zip(s_ours, s_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)
    assert not np.allclose(p, rng.uniform(2.0, 4.0, size=7))  # it moved


def test_nadam_matches_plain_equations(rng):
    p = rng.uniform(2.0, 4.0, size=5)
    q, s_ours, s_ref = p.copy(), (np.zeros(5), np.zeros(5), 1.0), (np.zeros(5), np.zeros(5), 1.0)
    for t, g in enumerate(_gradients(rng, 5), start=1):
        p, s_ours = _nadam_call(p, g, s_ours, t)
        q, s_ref = _nadam_ref(q, g, s_ref, t)
    np.testing.assert_allclose(p, q, rtol=RTOL, atol=0)
    np.testing.assert_allclose(s_ours[:2], s_ref[:2], rtol=RTOL, atol=0)
    assert isinstance(s_ours[2], float) and s_ours[2] == pytest.approx(s_ref[2], rel=RTOL)


ALL_CASES = {**CASES, "nadam": (_nadam_call, _nadam_ref, 3)}


def _start_state(name, n_slots, like):
    if name == "nadam":
        return (like(0.0), like(0.0), 1.0)
    return tuple(like(0.0) for _ in range(n_slots))


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_containers_equal_per_array_runs(name, rng):
    """A list or dict of arrays steps each array exactly as it would step alone."""
    call, _, n_slots = ALL_CASES[name]
    shapes = {"w": (3, 2), "b": (2,), "s": ()}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    grads = [{k: rng.normal(size=s) for k, s in shapes.items()} for _ in range(5)]

    def zeros_like_tree(tree):
        return lambda value: {k: np.full(np.shape(x), value) for k, x in tree.items()}

    def listify(tree):
        return [tree[k] for k in shapes] if isinstance(tree, dict) else tree

    p_dict, s_dict = params, _start_state(name, n_slots, zeros_like_tree(params))
    p_list, s_list = listify(params), tuple(listify(s) for s in s_dict)
    singles = {
        k: (params[k], _start_state(name, n_slots, lambda v, k=k: np.full(shapes[k], v)))
        for k in shapes
    }
    for t, g in enumerate(grads, start=1):
        p_dict, s_dict = call(p_dict, g, s_dict, t)
        p_list, s_list = call(p_list, listify(g), s_list, t)
        singles = {k: call(singles[k][0], g[k], singles[k][1], t) for k in shapes}
    assert isinstance(p_dict, dict) and isinstance(p_list, list)
    for i, k in enumerate(shapes):
        np.testing.assert_array_equal(p_dict[k], singles[k][0])
        np.testing.assert_array_equal(p_list[i], singles[k][0])
        for slot_dict, slot_list, slot_one in zip(s_dict, s_list, singles[k][1], strict=True):
            if not isinstance(slot_one, np.ndarray):  # NAdam's shared mu_product
                assert slot_dict == slot_list == slot_one
                continue
            np.testing.assert_array_equal(slot_dict[k], slot_one)
            np.testing.assert_array_equal(slot_list[i], slot_one)


def test_each_step_equals_the_rule_it_wraps(rng):
    """The adapters map names and state exactly onto the registry rules (bitwise)."""
    p, g = rng.normal(size=4), rng.normal(size=4)
    m, v = rng.uniform(0, 1, size=4), rng.uniform(0, 1, size=4)

    def rule_step(name, slots, count=0, **hp):
        rule = optimlab.get_rule(name)
        state = rule.init(p)._replace(count=count, **slots)
        delta, new = rule.update(g, state, p, **rule.validate(**hp))
        return p + delta, new

    exp, _ = rule_step("sgd", {}, lr=0.3)
    np.testing.assert_array_equal(F.sgd_step(p, g, 0.3), exp)
    np.testing.assert_array_equal(F.gradient_descent_step(p, g, 0.3), exp)
    for ema in (False, True):
        exp, st = rule_step("sgd", {"momentum_buffer": m}, lr=0.3, momentum=0.7, ema=ema)
        got = F.momentum_step(p, g, m, 0.3, 0.7, ema=ema)
        np.testing.assert_array_equal(got[0], exp)
        np.testing.assert_array_equal(got[1], st.momentum_buffer)
    exp, st = rule_step("sgd", {"momentum_buffer": m}, lr=0.3, momentum=0.7, nesterov=True)
    got = F.nesterov_step(p, g, m, 0.3, 0.7)
    np.testing.assert_array_equal(got[0], exp)
    np.testing.assert_array_equal(got[1], st.momentum_buffer)
    exp, st = rule_step("adagrad", {"sum": m}, lr=0.3, eps=1e-5)
    got = F.adagrad_step(p, g, m, 0.3, epsilon=1e-5)
    np.testing.assert_array_equal(got[0], exp)
    np.testing.assert_array_equal(got[1], st.sum)
    exp, st = rule_step("rmsprop", {"square_avg": m}, lr=0.3, alpha=0.8, eps=1e-5)
    got = F.rmsprop_step(p, g, m, 0.3, 0.8, epsilon=1e-5)
    np.testing.assert_array_equal(got[0], exp)
    np.testing.assert_array_equal(got[1], st.square_avg)
    for bc in (True, False):
        exp, st = rule_step(
            "adam",
            {"m": m, "v": v},
            count=6,
            lr=0.3,
            beta1=0.8,
            beta2=0.95,
            eps=1e-5,
            bias_correction=bc,
        )
        got = F.adam_step(p, g, m, v, 0.3, 0.8, 0.95, 7, 1e-5, bias_correction=bc)
        for a, b in zip(got, (exp, st.m, st.v), strict=True):
            np.testing.assert_array_equal(a, b)
    exp, st = rule_step(
        "adamw",
        {"m": m, "v": v},
        count=6,
        lr=0.3,
        beta1=0.8,
        beta2=0.95,
        eps=1e-5,
        weight_decay=0.2,
    )
    got = F.adamw_step(p, g, m, v, 0.3, 0.8, 0.95, 7, 0.2, 1e-5)
    for a, b in zip(got, (exp, st.m, st.v), strict=True):
        np.testing.assert_array_equal(a, b)
    exp, st = rule_step(
        "nadam",
        {"m": m, "v": v, "mu_product": 0.4},
        count=6,
        lr=0.3,
        beta1=0.8,
        beta2=0.95,
        eps=1e-5,
        momentum_decay=0.01,
    )
    got = F.nadam_step(p, g, m, v, 0.4, 0.3, 0.8, 0.95, 7, 1e-5, momentum_decay=0.01)
    for a, b in zip(got, (exp, st.m, st.v, st.mu_product), strict=True):
        np.testing.assert_array_equal(a, b)


# ---- inputs never modified, outputs never aliased ----------------------------------------
def _all_calls(params, grads, zeros):
    """Every step function once, with explicit state containers."""
    return [
        lambda: F.gradient_descent_step(params, grads, 0.1),
        lambda: F.sgd_step(params, grads, 0.1),
        lambda: F.momentum_step(params, grads, zeros[0], 0.1, 0.9),
        lambda: F.momentum_step(params, grads, zeros[0], 0.1, 0.9, ema=True),
        lambda: F.nesterov_step(params, grads, zeros[0], 0.1, 0.9),
        lambda: F.adagrad_step(params, grads, zeros[0], 0.1),
        lambda: F.rmsprop_step(params, grads, zeros[0], 0.1, 0.9),
        lambda: F.adam_step(params, grads, zeros[0], zeros[1], 0.1, 0.9, 0.999, 3),
        lambda: F.adamw_step(params, grads, zeros[0], zeros[1], 0.1, 0.9, 0.999, 3, 0.1),
        lambda: F.nadam_step(params, grads, zeros[0], zeros[1], 0.9, 0.1, 0.9, 0.999, 3),
    ]


def _flat_arrays(out):
    if isinstance(out, dict):
        return [a for v in out.values() for a in _flat_arrays(v)]
    if isinstance(out, list | tuple):
        return [a for v in out for a in _flat_arrays(v)]
    return [out] if isinstance(out, np.ndarray) else []


@pytest.mark.parametrize("layout", ["array", "list", "dict"])
def test_inputs_never_modified_nor_aliased(layout, rng):
    def make():
        arrays = [rng.normal(size=(3, 2)), rng.normal(size=4)]
        if layout == "array":
            return arrays[0]
        return arrays if layout == "list" else {"w": arrays[0], "b": arrays[1]}

    params, grads = make(), make()
    zeros = (make(), make())  # state slots hold squares where it matters: make them >= 0
    for tree in zeros:
        for a in _flat_arrays(tree):
            np.abs(a, out=a)
    inputs = (params, grads, zeros)
    before = copy.deepcopy(inputs)
    given = {id(a) for a in _flat_arrays(inputs)}
    for call in _all_calls(params, grads, zeros):
        out = call()
        assert not any(id(a) in given for a in _flat_arrays(out))
        # container objects are new too
        assert out is not params and (not isinstance(out, tuple) or out[0] is not params)
    for got, exp in zip(_flat_arrays(inputs), _flat_arrays(before), strict=True):
        np.testing.assert_array_equal(got, exp)
    assert type(params) is type(before[0])
    if layout == "dict":
        assert list(params) == ["w", "b"]


def test_numbers_in_numbers_out():
    assert F.sgd_step(3.0, 6.0, 0.5) == 0.0
    p, vel = F.momentum_step(1.0, 1.0, 0.0, lr=0.1, beta=0.9)
    assert (type(p), type(vel)) == (float, float) and (p, vel) == (0.9, 1.0)
    p, m, v = F.adam_step(2.0, 0.5, 0.0, 0.0, lr=0.1, beta1=0.9, beta2=0.999, t=1)
    assert all(isinstance(x, float) for x in (p, m, v))
    assert p == pytest.approx(1.9, rel=1e-6)  # the first bias-corrected step has size lr


def test_none_state_means_zeros(rng):
    p, g = rng.normal(size=3), rng.normal(size=3)
    z = np.zeros(3)
    for a, b in [
        (F.momentum_step(p, g, None, 0.1, 0.9), F.momentum_step(p, g, z, 0.1, 0.9)),
        (
            F.momentum_step(p, g, None, 0.1, 0.9, ema=True),
            F.momentum_step(p, g, z, 0.1, 0.9, ema=True),
        ),
        (F.rmsprop_step(p, g, None, 0.1, 0.9), F.rmsprop_step(p, g, z, 0.1, 0.9)),
        (F.adagrad_step(p, g, None, 0.1), F.adagrad_step(p, g, z, 0.1)),
        (
            F.adam_step(p, g, None, None, 0.1, 0.9, 0.99, 1),
            F.adam_step(p, g, z, z, 0.1, 0.9, 0.99, 1),
        ),
    ]:
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_integer_params_become_float():
    p = F.sgd_step(np.array([1, 2]), np.array([1, 1]), 0.5)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, [0.5, 1.5])


def test_float32_stays_float32():
    p = np.ones(3, dtype=np.float32)
    out, m, v = F.adam_step(p, p, np.zeros_like(p), np.zeros_like(p), 0.1, 0.9, 0.999, 1)
    assert out.dtype == m.dtype == v.dtype == np.float32


def test_nadam_numpy_scalar_mu_product_keeps_float32():
    """mu_product given as np.float64 (e.g. saved with np.savez) must act like a Python float."""
    p = np.ones(3, dtype=np.float32)
    out, m, v, mu = F.nadam_step(p, p, None, None, np.float64(1.0), 0.1, 0.9, 0.999, t=1)
    assert out.dtype == m.dtype == v.dtype == np.float32 and type(mu) is float
    again = F.nadam_step(out, p, m, v, np.float64(mu), 0.1, 0.9, 0.999, t=2)
    expected = F.nadam_step(out, p, m, v, mu, 0.1, 0.9, 0.999, t=2)
    assert again[0].dtype == np.float32 and type(again[3]) is float
    for a, b in zip(again, expected, strict=True):
        np.testing.assert_array_equal(a, b)


# ---- bad input ---------------------------------------------------------------------------
ONE = np.ones(2)
BAD = [
    (lambda: F.sgd_step(ONE, ONE, -1.0), "lr", "-1.0"),
    (lambda: F.sgd_step(ONE, ONE, float("nan")), "lr", "nan"),
    (lambda: F.gradient_descent_step(ONE, ONE, True), "lr", "True"),
    (lambda: F.momentum_step(ONE, ONE, ONE, 0.1, 1.5), "beta", "1.5"),
    (lambda: F.momentum_step(ONE, ONE, ONE, 0.1, 0.9, ema="yes"), "ema", "'yes'"),
    (lambda: F.nesterov_step(ONE, ONE, ONE, 0.1, 0.0), "beta", "momentum=0.0"),
    (lambda: F.nesterov_step(ONE, ONE, ONE, -0.1, 0.9), "lr", "-0.1"),
    (lambda: F.adagrad_step(ONE, ONE, ONE, 0.1, epsilon=0.0), "epsilon", "0.0"),
    (lambda: F.rmsprop_step(ONE, ONE, ONE, 0.1, -0.5), "beta", "-0.5"),
    (lambda: F.rmsprop_step(ONE, ONE, ONE, 0.1, 0.9, epsilon=float("inf")), "epsilon", "inf"),
    (lambda: F.adam_step(ONE, ONE, ONE, ONE, 0.1, 1.0, 0.999, 1), "beta1", "1.0"),
    (lambda: F.adam_step(ONE, ONE, ONE, ONE, 0.1, 0.9, 1.2, 1), "beta2", "1.2"),
    (lambda: F.adam_step(ONE, ONE, ONE, ONE, 0.1, 0.9, 0.999, 0), "t", "0"),
    (lambda: F.adam_step(ONE, ONE, ONE, ONE, 0.1, 0.9, 0.999, 1.5), "t", "1.5"),
    (lambda: F.adam_step(ONE, ONE, ONE, ONE, 0.1, 0.9, 0.999, 2, -1e-8), "epsilon", "-1e-08"),
    (lambda: F.adamw_step(ONE, ONE, ONE, ONE, 0.1, 0.9, 0.999, 1, -0.1), "weight_decay", "-0.1"),
    (lambda: F.nadam_step(ONE, ONE, ONE, ONE, 0.0, 0.1, 0.9, 0.999, 1), "mu_product", "0.0"),
    (
        lambda: F.nadam_step(ONE, ONE, ONE, ONE, 1.0, 0.1, 0.9, 0.999, 1, momentum_decay=-1),
        "momentum_decay",
        "-1",
    ),
]


@pytest.mark.parametrize("call,name,value", BAD)
def test_invalid_hyperparameters_name_the_parameter(call, name, value):
    with pytest.raises(ValueError) as info:
        call()
    assert name in str(info.value) and value in str(info.value)


@pytest.mark.parametrize(
    "params,grads,message",
    [
        ([ONE, ONE], [ONE], "grads must be a list of 2"),
        ({"a": ONE}, {"b": ONE}, "keys ['a']"),
        ([ONE], [np.ones(3)], "grads[0] has shape (3,), params[0] has shape (2,)"),
        (ONE, [ONE], "grads must be an array of shape (2,)"),
        ({"a": ONE}, [ONE], "grads must be a dict"),
    ],
)
def test_layout_mismatch_is_a_clear_error(params, grads, message):
    with pytest.raises(ValueError) as info:
        F.sgd_step(params, grads, 0.1)
    assert message in str(info.value)


def test_state_shape_mismatch_names_the_slot():
    """Errors name the teaching argument, never the rule's internal slot."""
    with pytest.raises(ValueError, match=r"^shape mismatch: velocity\[0\] has shape \(3,\)"):
        F.momentum_step([ONE], [ONE], [np.ones(3)], 0.1, 0.9)
    with pytest.raises(ValueError, match=r"^shape mismatch: velocity\[0\] has shape \(3,\)"):
        F.nesterov_step([ONE], [ONE], [np.ones(3)], 0.1, 0.9)
    with pytest.raises(ValueError, match=r"^shape mismatch: cache has shape \(3,\)"):
        F.rmsprop_step(ONE, ONE, np.ones(3), 0.1, 0.9)
    with pytest.raises(ValueError, match=r"^shape mismatch: cache has shape \(3,\)"):
        F.adagrad_step(ONE, ONE, np.ones(3), 0.1)
    with pytest.raises(ValueError, match=r"v\[0\] has shape \(3,\)"):
        F.adam_step([ONE], [ONE], [ONE], [np.ones(3)], 0.1, 0.9, 0.999, 1)


def test_non_numeric_input_is_a_type_error():
    with pytest.raises(TypeError, match="params"):
        F.sgd_step("abc", 1.0, 0.1)
    with pytest.raises(TypeError, match="dict keys must be strings"):
        F.sgd_step({1: ONE}, {1: ONE}, 0.1)


def test_zero_d_arrays_stay_arrays():
    out, vel = F.momentum_step(np.array(3.0), np.array(1.0), np.array(0.0), 0.1, 0.9)
    assert isinstance(out, np.ndarray) and out.shape == () and isinstance(vel, np.ndarray)


@pytest.mark.parametrize(
    "module",
    [
        "optimlab.functional",
        "optimlab.functional.steps",
        "optimlab.functional.training",
        "optimlab.functional.optimizer",
    ],
)
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_state_returned_can_be_passed_back_even_when_beta_is_zero():
    params, velocity = [ONE, 2 * ONE], None
    for _ in range(3):
        params, velocity = F.momentum_step(params, [ONE, ONE], velocity, 0.1, 0.0)
    np.testing.assert_array_equal(velocity[0], ONE)  # beta 0: the velocity is the gradient
    np.testing.assert_allclose(params[1], 2 * ONE - 0.3, rtol=1e-15)
    params, cache = F.adagrad_step([ONE], [ONE], None, 0.1)
    assert isinstance(cache[0], np.ndarray)


def test_complex_params_are_refused():
    with pytest.raises(TypeError, match=r"params\[0\] is complex"):
        F.sgd_step([np.ones(2, dtype=complex)], [np.ones(2)], 0.1)
    with pytest.raises(TypeError, match="is complex"):
        optimlab.numpy_optimizer("adam").update(np.ones(2) + 1j, np.ones(2))


@pytest.mark.parametrize(
    "value, message",
    [
        (float("nan"), "^lr must be a finite number >= 0, got nan$"),
        (
            np.full((2, 3), 0.1),
            r"^hyperparameter arrays must broadcast to the shape of params \(3,",
        ),
        (np.float32, "^lr must be a number, got <class 'numpy.float32'>$"),
    ],
)
def test_odd_learning_rates_are_refused_by_name(value, message):
    with pytest.raises(ValueError, match=message):
        F.sgd_step(np.ones(3), np.ones(3), value)


def test_torch_values_are_refused_as_hyperparameters():
    import torch

    with pytest.raises(ValueError, match="^lr must be a number, got a torch tensor$"):
        F.adam_step(ONE, ONE, None, None, torch.tensor(0.1), 0.9, 0.999, 1)
    with pytest.raises(ValueError, match="^beta must be a number, got torch.float32$"):
        F.momentum_step(ONE, ONE, None, 0.1, torch.float32)
    with pytest.raises(ValueError, match="^t must be an integer >= 1, got 0$"):
        F.adam_step(ONE, ONE, None, None, 0.1, 0.9, 0.999, 0)
    with pytest.raises(ValueError, match=r"^mu_product must be in \(0, 1\], got 0.0$"):
        F.nadam_step(ONE, ONE, None, None, 0.0, 0.1, 0.9, 0.999, 1)


def test_long_double_learning_rate_keeps_float32():
    out = F.sgd_step(np.ones(3, np.float32), np.ones(3, np.float32), np.longdouble(0.1))
    assert out.dtype == np.float32
