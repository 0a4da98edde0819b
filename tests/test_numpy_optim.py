"""Stateful NumPy optimizers: every registered algorithm, every layout, exact resume."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
import torch
from cases import CASES, INVALID, randomized, reference_run
from hypothesis import given, settings
from hypothesis import strategies as st

import optimlab
from optimlab.functional.optimizer import NumpyOptimizer

NAMES = optimlab.list_optimizers()  # read at test time: new rules are covered automatically
# rules that take parameters of any shape (SHAPES mixes them); Muon, for matrices only, is
# covered by the same properties on matrices in test_rules_new.py
ANY_SHAPE = [n for n in NAMES if optimlab.get_rule(n).param_ndim is None]
ANY_SHAPE_CASES = [c for c in CASES if c.name in ANY_SHAPE]
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def _layout(kind, arrays):
    """``arrays`` (a dict keyed like SHAPES) as one array, a list or a dict."""
    if kind == "array":
        return arrays["w"]
    return [arrays[k] for k in SHAPES] if kind == "list" else dict(arrays)


def _random(rng, offset=0.0):
    return {k: np.asarray(rng.normal(size=s) + offset) for k, s in SHAPES.items()}


def _leaves(tree):
    if isinstance(tree, dict):
        return [tree[k] for k in sorted(tree)]
    return list(tree) if isinstance(tree, list | tuple) else [tree]


# ---- numerics ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_independent_reference(case, rng):
    """Every optimizer and option against cases.py's plain equations (float64, 30 steps)."""
    p0 = rng.normal(size=(3, 4)) + 2.0
    grads = [rng.normal(size=(3, 4)) * rng.uniform(0.1, 2.0) for _ in range(30)]
    expected = reference_run(case.name, case.full(), p0, grads)
    opt = optimlab.numpy_optimizer(case.name, **case.hp)
    p = p0
    for t, (g, exp) in enumerate(zip(grads, expected, strict=True), start=1):
        p = opt.update(p, g)
        np.testing.assert_allclose(p, exp, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
    assert opt.step == 30


@pytest.mark.parametrize("kind", ["array", "list", "dict"])
@pytest.mark.parametrize("name", ANY_SHAPE)
def test_layouts_equal_the_rule_per_array(name, kind, rng):
    """One optimizer over a container == the rule stepping each array on its own (bitwise)."""
    rule = optimlab.get_rule(name)
    hp = rule.validate()
    params, opt = _random(rng, 1.0), optimlab.numpy_optimizer(name)
    w = _layout(kind, params)
    ref = {k: (params[k], None) for k in SHAPES}
    for _ in range(6):
        g = {k: rng.normal(size=s) for k, s in SHAPES.items()}
        w = opt.update(w, _layout(kind, g))
        for k in ref:
            p, state = ref[k]
            if state is None:
                state = rule.init(p) if rule.elementwise else rule.init(p, batch_ndim=0)
            delta, state = rule.update(g[k], state, p, **hp)
            ref[k] = (p + delta, state)
    assert type(w) is type(_layout(kind, params))
    # the "array" layout holds only SHAPES' first entry
    got = w if kind == "dict" else dict(zip(SHAPES, _leaves(w), strict=False))
    for k in got:
        np.testing.assert_array_equal(got[k], ref[k][0])
        assert got[k].shape == SHAPES[k]


@pytest.mark.parametrize("name", NAMES)
def test_goes_downhill_on_a_quadratic(name, rng):
    scale = np.array([1.0, 3.0, 0.5])
    w0 = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.2]])

    def loss(w):
        return float(np.sum(scale * w * w))

    lr = {"lion": 0.01, "adafactor": 0.05, "sgd": 0.05, "adadelta": 10.0, "prodigy": 1.0}.get(
        name, 0.02
    )  # Prodigy estimates the step size itself: its lr multiplies it (1 as published)
    opt = optimlab.numpy_optimizer(name, lr=lr)
    w = w0
    for _ in range(20):
        w = opt.update(w, 2 * scale * w)
    assert loss(w) < 0.9 * loss(w0)


def test_numbers_and_dtypes_are_kept():
    opt = optimlab.numpy_optimizer("adam", lr=0.1)
    x = 2.0
    for _ in range(3):
        x = opt.update(x, 2 * x)
    assert isinstance(x, float) and x < 2.0
    opt = optimlab.numpy_optimizer("adam", lr=0.1)
    w = np.ones(3, dtype=np.float32)
    w = opt.update(w, w)
    assert w.dtype == np.float32 and opt.state_dict()["state/0/m"].dtype == np.float32


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_inputs_never_modified(kind, rng):
    for name in ANY_SHAPE:
        opt = optimlab.numpy_optimizer(name)
        w, g = _layout(kind, _random(rng, 1.0)), _layout(kind, _random(rng))
        w_before, g_before = copy.deepcopy(w), copy.deepcopy(g)
        for _ in range(2):
            out = opt.update(w, g)
        assert out is not w
        assert not any(a is b for a, b in zip(_leaves(out), _leaves(w), strict=True))
        for a, b in zip(
            _leaves(w) + _leaves(g), _leaves(w_before) + _leaves(g_before), strict=True
        ):
            np.testing.assert_array_equal(a, b)


def test_none_grad_skips_that_parameter(rng):
    a, b = rng.normal(size=3), rng.normal(size=2)
    opt, alone = optimlab.numpy_optimizer("adam", lr=0.1), optimlab.numpy_optimizer("adam", lr=0.1)
    w = [a, b]
    w = opt.update(w, [a, b])
    a1 = alone.update(a, a)
    w2 = opt.update(w, [None, w[1]])
    np.testing.assert_array_equal(w2[0], w[0])  # unchanged, and its state did not advance
    w3 = opt.update(w2, [w2[0], w2[1]])
    np.testing.assert_array_equal(w3[0], alone.update(a1, a1))
    assert opt.state_dict()["state/0/count"] == 2 and opt.step == 3


# ---- state_dict -------------------------------------------------------------------------
def _through(sd, via):
    if via == "dict":
        return sd
    if via == "savez":
        buf = io.BytesIO()
        np.savez(buf, **sd)
        buf.seek(0)
        with np.load(buf, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    text = json.dumps(sd, default=lambda a: a.tolist())
    return json.loads(text)


@pytest.mark.parametrize("via", ["dict", "savez", "json"])
@pytest.mark.parametrize("case", ANY_SHAPE_CASES, ids=lambda c: c.id)
def test_resume_equals_uninterrupted(case, via, rng):
    w0 = _layout("dict", _random(rng, 1.0))
    w0["h"] = rng.normal(size=(2, 3)).astype(np.float32) + 1  # a float32 parameter too
    grads = [
        {
            k: rng.normal(size=np.shape(v)).astype(np.asarray(v).dtype)
            if k == "h"
            else rng.normal(size=np.shape(v))
            for k, v in w0.items()
        }
        for _ in range(8)
    ]
    ref = optimlab.numpy_optimizer(case.name, **case.hp)
    first = optimlab.numpy_optimizer(case.name, **case.hp)
    w_ref = w_first = w0
    for g in grads[:4]:
        w_ref, w_first = ref.update(w_ref, g), first.update(w_first, g)
    saved = _through(first.state_dict(), via)
    saved_copy = copy.deepcopy(saved)
    resumed = optimlab.numpy_optimizer(case.name)  # default hyperparams: loading restores them
    resumed.load_state_dict(saved)
    assert resumed.step == 4 and dict(resumed.hyperparams) == dict(ref.hyperparams)
    w = w_first
    for g in grads[4:]:
        w_ref, w = ref.update(w_ref, g), resumed.update(w, g)
        for k in w:
            np.testing.assert_array_equal(w[k], w_ref[k])
            assert np.asarray(w[k]).dtype == np.asarray(w_ref[k]).dtype
    _assert_same_state(resumed.state_dict(), ref.state_dict())
    _assert_same_state(saved, saved_copy)  # loading and stepping never touched the source


def _assert_same_state(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape and np.array_equal(x, y), k


def test_state_dict_holds_only_plain_data(rng):
    for name in ANY_SHAPE:
        opt = optimlab.numpy_optimizer(name)
        opt.update([rng.normal(size=(2, 3)), 1.0], [rng.normal(size=(2, 3)), 0.5])
        for k, v in opt.state_dict().items():
            assert isinstance(k, str)
            assert isinstance(v, np.ndarray | str | int | float | bool), (name, k, type(v))
            if isinstance(v, np.ndarray):
                assert v.dtype != object, (name, k)


def test_state_dict_is_a_copy(rng):
    opt = optimlab.numpy_optimizer("adam")
    w = opt.update(np.ones(3), np.ones(3))
    sd = opt.state_dict()
    sd["state/0/m"][:] = 123.0
    assert not np.any(opt.state_dict()["state/0/m"] == 123.0)
    other = optimlab.numpy_optimizer("adam")
    other.load_state_dict(sd)
    sd["state/0/v"][:] = 5.0  # mutating the source after loading does not reach the optimizer
    assert not np.any(other.state_dict()["state/0/v"] == 5.0)
    assert w.shape == (3,)


def test_fresh_state_dict_round_trips():
    opt = optimlab.numpy_optimizer("sgd", lr=0.3)
    other = optimlab.numpy_optimizer("sgd")
    other.load_state_dict(_through(opt.state_dict(), "savez"))
    assert other.hyperparams["lr"] == 0.3 and other.step == 0
    np.testing.assert_array_equal(other.update(np.ones(2), np.ones(2)), [0.7, 0.7])


def test_older_state_dict_without_new_hyperparams_loads():
    opt = optimlab.numpy_optimizer("adam", lr=0.1)
    opt.update(np.ones(2), np.ones(2))
    sd = {k: v for k, v in opt.state_dict().items() if k not in ("hp/amsgrad", "format")}
    other = optimlab.numpy_optimizer("adam", amsgrad=True)
    other.load_state_dict(sd)
    assert other.hyperparams["amsgrad"] is False and other.hyperparams["lr"] == 0.1


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda sd: sd.update(optimizer="sgd"), "state_dict is for optimizer 'sgd', this one is"),
        (lambda sd: sd.update({"hp/lr": -1.0}), "lr must be >= 0, got -1.0"),
        (lambda sd: sd.update({"state/0/m": np.zeros(5)}), "state/0/m has shape (5,)"),
        (lambda sd: sd.update({"state/0/bogus": np.zeros(3)}), "state/0/bogus is not"),
        (lambda sd: sd.update({"extra": 1}), "unexpected key 'extra'"),
        (lambda sd: sd.update(format="other/9"), "unsupported state_dict format"),
        (lambda sd: sd.update(step=-2), "step must be an integer >= 0"),
        (lambda sd: sd.pop("param/0/shape"), "lacks 'param/0/shape'"),
        (lambda sd: sd.update({"param/0/dtype": "int64"}), "must be a float dtype"),
    ],
)
def test_bad_state_dict_is_refused_and_changes_nothing(edit, message):
    src = optimlab.numpy_optimizer("adam", lr=0.1)
    src.update(np.ones(3), np.ones(3))
    sd = src.state_dict()
    edit(sd)
    target = optimlab.numpy_optimizer("adam", lr=0.5)
    with pytest.raises(ValueError) as info:
        target.load_state_dict(sd)
    assert message in str(info.value)
    assert (
        target.step == 0
        and target.hyperparams["lr"] == 0.5
        and "state/0/m" not in (target.state_dict())
    )


# ---- layout checks and errors -----------------------------------------------------------
def test_layout_and_shape_mismatch_errors_leave_state_unchanged(rng):
    opt = optimlab.numpy_optimizer("adam", lr=0.1)
    w = {"a": np.ones(3), "b": np.ones((2, 2))}
    w = opt.update(w, w)
    before = opt.state_dict()
    bad = [
        ({"a": np.ones(2), "b": np.ones((2, 2))}, "weights['a'] has shape (2,), the optimizer's"),
        ({"a": np.ones(3)}, "a dict with keys ['a', 'b']"),
        ([np.ones(3), np.ones((2, 2))], "got a list of 2 arrays"),
        (np.ones(3), "got an array of shape (3,)"),
    ]
    for weights, message in bad:
        with pytest.raises(ValueError) as info:
            opt.update(weights, weights)
        assert message in str(info.value)
    with pytest.raises(ValueError, match=r"grads\['b'\] has shape \(4,\)"):
        opt.update(w, {"a": np.ones(3), "b": np.ones(4)})
    _assert_same_state(opt.state_dict(), before)
    # dict keys are matched by name, not order
    swapped = opt.update({"b": w["b"], "a": w["a"]}, {"b": w["b"], "a": w["a"]})
    other = optimlab.numpy_optimizer("adam", lr=0.1)
    other.load_state_dict(before)
    again = other.update(w, w)
    np.testing.assert_array_equal(swapped["a"], again["a"])
    np.testing.assert_array_equal(swapped["b"], again["b"])


@pytest.mark.parametrize("inv", INVALID, ids=lambda i: i.id)
def test_invalid_hyperparameters_at_construction(inv):
    with pytest.raises(ValueError) as info:
        optimlab.numpy_optimizer(inv.name, **inv.hp)
    assert inv.match in str(info.value)


def test_unknown_optimizer_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean 'lion'"):
        optimlab.numpy_optimizer("lionn")


# ---- hyperparameters, repr, copy ----------------------------------------------------------
def test_hyperparams_are_read_at_every_step_and_validated():
    opt = optimlab.numpy_optimizer("sgd", lr=0.1)
    w = opt.update(np.ones(2), np.ones(2))
    opt.hyperparams["lr"] = 0.5
    np.testing.assert_array_equal(opt.update(w, np.ones(2)), [0.4, 0.4])
    with pytest.raises(ValueError, match="lr must be >= 0, got -1"):
        opt.hyperparams["lr"] = -1
    with pytest.raises(ValueError, match="unknown hyperparameter 'betas'"):
        opt.hyperparams["betas"] = (0.9, 0.99)
    with pytest.raises(ValueError, match="nesterov requires momentum > 0"):
        opt.hyperparams["nesterov"] = True
    with pytest.raises(ValueError, match="cannot delete"):
        del opt.hyperparams["lr"]
    assert opt.hyperparams["lr"] == 0.5 and opt.hyperparams["nesterov"] is False
    opt.hyperparams.update(momentum=0.9, nesterov=True)  # validated together
    assert opt.hyperparams["nesterov"] is True
    opt.hyperparams = {"lr": 0.2}
    assert opt.hyperparams["lr"] == 0.2 and opt.hyperparams["momentum"] == 0.0


def test_changing_lr_mid_run_matches_the_rule(rng):
    rule = optimlab.get_rule("adam")
    p, grads = rng.normal(size=4), [rng.normal(size=4) for _ in range(6)]
    opt, state, q = optimlab.numpy_optimizer("adam", lr=0.1), rule.init(p), p
    for i, g in enumerate(grads):
        lr = 0.1 if i < 3 else 0.01
        opt.hyperparams["lr"] = lr
        p = opt.update(p, g)
        delta, state = rule.update(g, state, q, **rule.validate(lr=lr))
        q = q + delta
        np.testing.assert_array_equal(p, q)


def test_repr_and_deepcopy(rng):
    opt = optimlab.numpy_optimizer("adamw", lr=0.01)
    w = opt.update([np.ones(3)], [np.ones(3)])
    assert repr(opt) == "NumpyOptimizer('adamw', lr=0.01; step=1, params=1)"
    assert isinstance(opt, NumpyOptimizer)
    twin = copy.deepcopy(opt)
    g = [rng.normal(size=3)]
    np.testing.assert_array_equal(twin.update(w, g)[0], opt.update(w, g)[0])
    twin.hyperparams["lr"] = 0.5
    assert opt.hyperparams["lr"] == 0.01


# ---- property: resume at any step, any setting, any layout --------------------------------
@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    case_index=st.integers(0, len(ANY_SHAPE_CASES) - 1),
    split=st.integers(0, 6),
    kind=st.sampled_from(["array", "list", "dict"]),
    seed=st.integers(0, 2**16),
)
def test_resume_anywhere_equals_uninterrupted(case_index, split, kind, seed):
    rng = np.random.default_rng(seed)
    case = randomized(ANY_SHAPE_CASES[case_index], rng)
    w = w_ref = _layout(kind, _random(rng, 1.0))
    grads = [_layout(kind, _random(rng)) for _ in range(6)]
    ref, opt = (optimlab.numpy_optimizer(case.name, **case.hp) for _ in range(2))
    for i, g in enumerate(grads):
        if i == split:
            fresh = optimlab.numpy_optimizer(case.name)
            fresh.load_state_dict(_through(opt.state_dict(), "savez"))
            opt = fresh
        w, w_ref = opt.update(w, g), ref.update(w_ref, g)
        for a, b in zip(_leaves(w), _leaves(w_ref), strict=True):
            np.testing.assert_array_equal(a, b)
    _assert_same_state(opt.state_dict(), ref.state_dict())


@pytest.mark.parametrize("name", ANY_SHAPE)
def test_json_keeps_state_dtypes_that_differ_from_the_weights(name, rng):
    """float32 weights with float64 gradients get float64 state: JSON must keep that."""
    w0 = {
        "m": rng.normal(size=(2, 3)).astype(np.float32),
        "z": np.float32(0.5) + np.zeros((), np.float32),
    }
    grads = [{"m": rng.normal(size=(2, 3)), "z": np.asarray(rng.normal())} for _ in range(4)]
    ref, opt = optimlab.numpy_optimizer(name), optimlab.numpy_optimizer(name)
    w = w_ref = w0
    for g in grads[:2]:
        w, w_ref = opt.update(w, g), ref.update(w_ref, g)
    resumed = optimlab.numpy_optimizer(name)
    resumed.load_state_dict(_through(opt.state_dict(), "json"))
    for g in grads[2:]:
        w, w_ref = resumed.update(w, g), ref.update(w_ref, g)
        for k in w:
            np.testing.assert_array_equal(w[k], w_ref[k])
    _assert_same_state(resumed.state_dict(), ref.state_dict())
    for k, v in ref.state_dict().items():
        assert np.asarray(resumed.state_dict()[k]).dtype == np.asarray(v).dtype, k


# ---- review: tampered state dicts are refused at load, not at the next update ------------
@pytest.mark.parametrize(
    "name,hp,edit,message",
    [
        ("adam", {}, {"state/0/count": "abc"}, "state/0/count must be an integer >= 0"),
        ("adam", {}, {"state/0/count": -4}, "state/0/count must be an integer >= 0"),
        ("adam", {}, {"state/0/count": 2.5}, "state/0/count must be an integer >= 0"),
        ("adam", {}, {"state/0/count": np.array(True)}, "state/0/count must be an integer"),
        ("adam", {}, {"state/0/count": np.array([1, 2])}, "state/0/count must be an integer"),
        ("adam", {}, {"state/0/m": np.array(["a", "b", "c"])}, "state/0/m must hold floats"),
        ("adam", {}, {"state/0/m": np.array([1, 2, 3])}, "state/0/m must hold floats"),
        ("adam", {}, {"state/0/m": np.array([1 + 1j, 2, 3])}, "state/0/m must hold floats"),
        ("adam", {"amsgrad": True}, {"state/0/v_max": np.zeros(1)}, "state/0/v_max has shape (1,)"),
        (
            "momentum",
            {},
            {"state/0/momentum_buffer": np.zeros((2, 3))},
            "state/0/momentum_buffer has shape (2, 3)",
        ),
        ("nadam", {}, {"state/0/mu_product": "x"}, "state/0/mu_product must be a number, got 'x'"),
        ("nadam", {}, {"state/0/mu_product": np.nan}, "state/0/mu_product must be a finite"),
        ("adam", {}, {"param/0/dtype": "complex128"}, "must be a float dtype"),
        ("adam", {}, {"n_params": "abc"}, "state_dict n_params must be an integer >= 0"),
        ("adam", {}, {"n_params": -1}, "state_dict n_params must be an integer >= 0"),
        ("adam", {}, {"n_params": 2.7}, "state_dict n_params must be an integer >= 0"),
        ("adam", {}, {"state/7/m": np.zeros(3)}, "unexpected key 'state/7/m'"),
    ],
)
def test_tampered_state_dict_is_refused_at_load(name, hp, edit, message):
    src = optimlab.numpy_optimizer(name, **hp)
    src.update(np.ones(3), np.ones(3))
    sd = src.state_dict()
    sd.update(edit)
    target = optimlab.numpy_optimizer(name, **hp)
    with pytest.raises(ValueError) as info:
        target.load_state_dict(sd)
    assert message in str(info.value)
    assert target.step == 0 and not any(k.startswith("state/") for k in target.state_dict())


# ---- odd hyperparameters are refused before anything changes (issue 10's inputs) ----------
def test_hyperparameter_arrays_may_not_change_the_weights_shape():
    opt = optimlab.numpy_optimizer("sgd", lr=np.full((2, 3), 0.1))
    message = (
        r"^hyperparameter arrays must broadcast to the shape of weights \(3,\), got lr \(2, 3\)$"
    )
    with pytest.raises(ValueError, match=message):
        opt.update(np.ones(3), np.ones(3))
    assert opt.step == 0 and opt.state_dict()["n_params"] == 0
    per_coordinate = optimlab.numpy_optimizer("sgd", lr=np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(per_coordinate.update(np.ones(3), np.ones(3)), [0.9, 0.8, 0.7])


@pytest.mark.parametrize(
    "value, message",
    [
        (torch.tensor(0.1), "^lr must be a number, got a torch tensor$"),
        (torch.float32, "^lr must be a number, got torch.float32$"),
        (np.nan, "^lr must be a finite number >= 0, got nan$"),
        ([0.1], r"^lr must be a number, got \[0.1\]"),
    ],
)
def test_odd_hyperparameters_are_refused_by_name(value, message):
    with pytest.raises(ValueError, match=message):
        optimlab.numpy_optimizer("adam", lr=value)
    opt = optimlab.numpy_optimizer("adam")
    with pytest.raises(ValueError, match=message):
        opt.hyperparams["lr"] = value
    assert opt.hyperparams["lr"] == 1e-3


def test_long_double_hyperparameters_keep_float32_weights():
    opt = optimlab.numpy_optimizer("adam", lr=np.longdouble(0.1), beta1=np.longdouble(0.9))
    w = opt.update(np.ones(3, np.float32), np.ones(3, np.float32))
    assert w.dtype == np.float32
