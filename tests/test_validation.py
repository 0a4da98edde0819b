"""Hyperparameter validation: every invalid input of the case table is rejected with a
message naming the parameter and the value; every valid case passes unchanged."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from cases import CASES, INVALID, Case, Invalid
from hypothesis import given, settings
from hypothesis import strategies as st

from optimlab.rules.base import Hyper
from optimlab.rules.registry import REGISTRY, get_rule


@pytest.mark.parametrize("inv", [pytest.param(i, id=i.id) for i in INVALID])
def test_invalid_hyperparameters_raise(inv: Invalid) -> None:
    hp = copy.deepcopy(inv.hp)
    with pytest.raises(ValueError) as info:
        get_rule(inv.name).validate(**hp)
    message = str(info.value)
    assert inv.match in message, (message, inv.match)
    assert "\n" not in message
    for key in inv.hp:  # the message names the parameter
        assert key in message


@pytest.mark.parametrize("spec", REGISTRY, ids=[s.name for s in REGISTRY])
def test_out_of_range_messages_name_the_value(spec) -> None:
    for h in spec.rule.hyperparams:
        if h.kind == "bool":
            continue
        for bad in (-7.5, math.nan, -math.inf, math.inf):
            if h.low <= bad <= h.high:
                continue
            with pytest.raises(ValueError) as info:
                spec.rule.validate(**{h.name: bad})
            assert str(info.value).startswith(f"{h.name} must be ")
            assert str(info.value).endswith(f"got {bad!r}")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_valid_cases_pass_and_fill_defaults(case: Case) -> None:
    rule = get_rule(case.name)
    given = copy.deepcopy(case.hp)
    full = rule.validate(**given)
    assert given == case.hp  # not modified
    assert list(full) == list(rule.names)
    for name, value in full.items():
        assert value == case.hp.get(name, rule.defaults[name])


def test_arrays_of_settings_validate_per_entry() -> None:
    adam = get_rule("adam")
    lrs = np.array([1e-3, 1e-2, 0.1]).reshape(3, 1, 1)
    assert adam.validate(lr=lrs)["lr"] is lrs
    adam.validate(beta1=torch.tensor([[0.0], [0.9]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\), got array \[0.9 1. \]"):
        adam.validate(beta1=np.array([[0.9], [1.0]]))
    with pytest.raises(ValueError, match="eps must be a finite number > 0, got array"):
        adam.validate(eps=np.array([1e-8, np.nan]))
    with pytest.raises(ValueError, match="lr must be a number, got"):
        adam.validate(lr=[0.1, "x"])


def test_optional_hyperparameters_take_none() -> None:
    rule = get_rule("adafactor")
    assert rule.validate()["eps1"] is None
    assert rule.validate(eps1=None)["eps1"] is None
    assert rule.validate(eps1=1e-30)["eps1"] == 1e-30
    assert rule.hyper("eps1").range_text() == "None or > 0"
    with pytest.raises(ValueError, match="eps1 must be None or > 0, got -1.0"):
        rule.validate(eps1=-1.0)
    with pytest.raises(ValueError, match="eps2 must be a number, got None"):
        rule.validate(eps2=None)


def test_hyper_kinds() -> None:
    steps = Hyper("steps", 10, low=1, kind="int")
    assert steps.check(3) == 3 and steps.check(4.0) == 4
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 2.5"):
        steps.check(2.5)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        steps.check(0)
    flag = Hyper("flag", False, kind="bool")
    assert flag.check(np.bool_(True)) is True
    with pytest.raises(ValueError, match="flag must be True or False, got 0"):
        flag.check(0)
    assert Hyper("x", 0.5, 0.0, 1.0, low_open=True).range_text() == "in (0, 1]"
    assert Hyper("y", -1.0, high=0.0, high_open=True).range_text() == "< 0"


def test_cross_field_checks_run_after_single_checks() -> None:
    sgd = get_rule("sgd")
    # the range error wins over the cross-field one
    with pytest.raises(ValueError, match="momentum must be in"):
        sgd.validate(nesterov=True, momentum=-1.0)
    sgd.validate(nesterov=True, momentum=0.9)
    sgd.validate(ema=True, momentum=0.9)
    get_rule("momentum").validate(ema=True)


@settings(max_examples=200, deadline=None)
@given(
    low=st.floats(-10, 10),
    width=st.floats(0, 10),
    low_open=st.booleans(),
    high_open=st.booleans(),
    x=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-20, 20)),
)
def test_hyper_accepts_exactly_its_range(low, width, low_open, high_open, x) -> None:
    h = Hyper("x", low, low, low + width, low_open=low_open, high_open=high_open)
    inside = (
        math.isfinite(x)
        and (low < x if low_open else low <= x)
        and (x < low + width if high_open else x <= low + width)
    )
    if inside:
        assert h.check(x) == x
    else:
        with pytest.raises(
            ValueError, match=r"^x must be (a finite number )?(in|>|<|>=|<=) .*, got "
        ):
            h.check(x)


# --- review: values that looked like numbers but broke the rule later -------------------------


@pytest.mark.parametrize(
    "bad",
    [
        [0.1, 0.2],
        (0.5,),
        1j,
        np.array([[1 + 1j]]),
        np.complex128(0.5),
        np.array([True]),
        torch.tensor(True),
        torch.tensor([0.1 + 0.1j]),
        np.array(["0.1"]),
    ],
    ids=lambda v: type(v).__name__ + "-" + str(getattr(v, "dtype", "")),
)
@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
def test_non_real_values_are_refused_at_validation(name: str, bad) -> None:
    """A list, a complex, a bool array or a string array is not silently taken
    (a list used to pass and fail in the update with a TypeError; complex lost its
    imaginary part with only a warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="^lr must be a number, got"):
            get_rule(name).validate(lr=bad)


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
def test_an_int_too_big_for_a_float_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="^lr must be a finite number >= 0, got an integer of"):
        get_rule(name).validate(lr=10**400)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("scalar", [np.float64, np.float32, lambda x: np.array(x)])
def test_numpy_scalar_hyperparameters_keep_the_param_dtype(dtype, scalar) -> None:
    """np.float64(0.1) (what np.logspace yields) behaves like the Python float 0.1: under
    NumPy 2's promotion rules it would otherwise turn float32/float16 params into float64."""
    import optimlab
    from optimlab.functional import adam_step

    hp = get_rule("adam").validate(lr=scalar(0.1), beta1=scalar(0.9), eps=scalar(1e-8))
    assert all(type(v) in (float, int, bool) for v in hp.values())
    w, g = np.ones(3, dtype), np.full(3, 0.5, dtype)
    opt = optimlab.numpy_optimizer("adam", lr=scalar(0.1), beta1=scalar(0.9))
    out = opt.update(w, g)
    assert out.dtype == dtype and opt.state_dict()["state/0/m"].dtype == dtype
    p, m, v = adam_step(w, g, None, None, lr=scalar(0.1), beta1=scalar(0.9), beta2=0.999, t=1)
    assert p.dtype == m.dtype == v.dtype == dtype


def test_array_hyperparameters_of_different_k_are_refused_naming_them() -> None:
    adam = get_rule("adam")
    adam.validate(lr=np.full((2, 1), 0.1), beta1=np.full((2, 1), 0.9), eps=np.full((1, 1), 1e-8))
    with pytest.raises(ValueError, match=r"lr \(2, 1\), beta1 \(3, 1\)"):
        adam.validate(lr=np.full((2, 1), 0.1), beta1=np.full((3, 1), 0.9))
    with pytest.raises(ValueError, match=r"lr \(2, 1\), beta2 \(3, 1\)"):
        adam.validate(lr=torch.full((2, 1), 0.1), beta2=np.full((3, 1), 0.99))


def test_hyper_check_can_refuse_arrays_and_tensors() -> None:
    """What a NumPy optimizer or a teaching function (no tensors) and a torch optimizer (one
    value per group) need from the same specs."""
    lr = get_rule("adam").hyper("lr")
    assert lr.check(torch.tensor(0.1)).item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="^lr must be a number, got a torch tensor$"):
        lr.check(torch.tensor(0.1), tensors=False)
    with pytest.raises(ValueError, match=r"^lr must be a number, got an array of shape \(2,\)$"):
        lr.check(np.array([0.1, 0.2]), arrays=False)
    with pytest.raises(ValueError, match=r"^lr must be a number \(a 1-element tensor\)"):
        lr.check(torch.tensor([0.1, 0.2]), arrays=False)
    with pytest.raises(ValueError, match="^lr must be a number, got torch.float32$"):
        lr.check(torch.float32)
    assert type(lr.check(np.longdouble(0.1))) is float
    with pytest.raises(ValueError, match="^lr must be a number, got a torch tensor$"):
        get_rule("adam").checked({"lr": torch.tensor(0.1)}, tensors=False)
    assert get_rule("adam").checked({"lr": 0.5})["lr"] == 0.5


def test_hyper_specs_are_consistent() -> None:
    with pytest.raises(ValueError, match="kind must be one of 'float', 'int', 'bool', 'choice'"):
        Hyper("x", 1, kind="integer")
    mode = Hyper("mode", "a", kind="choice", choices=("a", "b"), optional=True)
    assert mode.range_text() == "one of None, 'a', 'b'"
    assert mode.check("b") == "b" and mode.check(None) is None
    with pytest.raises(ValueError, match=r"^mode must be one of None, 'a', 'b', got 'c'$"):
        mode.check("c")
    assert Hyper("c", 0.0).range_text() == "a finite number"
    with pytest.raises(ValueError, match=r"^c must be a finite number, got nan$"):
        Hyper("c", 0.0).check(float("nan"))
    with pytest.raises(ValueError, match="closed bounds"):
        Hyper("x", 1, 0, kind="int", low_open=True)
    assert Hyper("n", 1, 1, kind="int").range_text() == "an integer >= 1"
    assert Hyper("b", True, kind="bool").range_text() == "True or False"
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, 5\], got 6$"):
        Hyper("n", 1, 1, 5, kind="int").check(6)


def test_unknown_hyperparameter_suggests_the_closest() -> None:
    with pytest.raises(ValueError) as info:
        get_rule("adam").validate(betas1=0.9)
    assert str(info.value).startswith(
        "adam got unknown hyperparameter 'betas1'; did you mean 'beta1'"
    )
    assert "(known: lr, beta1, beta2, eps," in str(info.value)
