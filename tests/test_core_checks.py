"""core.checks: every message format and every odd value a number check can meet."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from optimlab.core import checks
from optimlab.core.checks import (
    INT_MAX,
    choice,
    flag,
    integer,
    range_text,
    real,
    require,
    sequence,
    shape,
    show,
)


@pytest.fixture(autouse=True)
def _no_warnings():
    """A check must refuse odd values with its own error, never with a NumPy warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- range_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, text",
    [
        ((), {}, ""),
        ((0,), {}, ">= 0"),
        ((0,), {"low_open": True}, "> 0"),
        ((-math.inf, 1), {}, "<= 1"),
        ((-math.inf, 1), {"high_open": True}, "< 1"),
        ((0, 1), {}, "in [0, 1]"),
        ((0, 1), {"high_open": True}, "in [0, 1)"),
        ((0, 1), {"low_open": True}, "in (0, 1]"),
        ((0.0, 1.0), {"low_open": True, "high_open": True}, "in (0, 1)"),
        ((1e-8,), {}, ">= 1e-08"),
        ((0.1, 2.5), {}, "in [0.1, 2.5]"),
        ((1, INT_MAX), {}, "in [1, 9223372036854775807]"),
        ((np.int64(3),), {}, ">= 3"),
    ],
)
def test_range_text(args, kwargs, text) -> None:
    assert range_text(*args, **kwargs) == text


# --- real -----------------------------------------------------------------------------------

REAL_OK = [
    (0.5, 0.5),
    (1, 1.0),
    (0, 0.0),
    (np.float64(0.25), 0.25),
    (np.float32(0.5), 0.5),
    (np.float16(0.5), 0.5),
    (np.longdouble(0.5), 0.5),
    (np.int64(3), 3.0),
    (np.uint8(3), 3.0),
    (np.array(0.75), 0.75),
    (np.array(2, dtype=np.int32), 2.0),
    (1e300, 1e300),
    (2**60, float(2**60)),
]


@pytest.mark.parametrize("value, expected", REAL_OK, ids=[repr(v) for v, _ in REAL_OK])
def test_real_accepts_scalars_and_returns_python_floats(value, expected) -> None:
    out = real("lr", value, 0)
    assert type(out) is float and out == expected


REAL_BAD = [
    (math.nan, "lr must be a finite number >= 0, got nan"),
    (math.inf, "lr must be a finite number >= 0, got inf"),
    (-math.inf, "lr must be a finite number >= 0, got -inf"),
    (np.float64("nan"), "lr must be a finite number >= 0, got nan"),
    (np.array(np.inf), "lr must be a finite number >= 0, got inf"),
    (np.longdouble("1e400"), "lr must be a finite number >= 0, got "),
    (10**400, "lr must be a finite number >= 0, got an integer of about 401 digits"),
    (-1.0, "lr must be >= 0, got -1.0"),
    (-1, "lr must be >= 0, got -1"),
    (np.int64(-2), "lr must be >= 0, got -2"),
    (True, "lr must be a number, got True"),
    (False, "lr must be a number, got False"),
    (np.bool_(True), "lr must be a number, got True of dtype bool"),
    ("0.1", "lr must be a number, got '0.1'"),
    (b"0.1", "lr must be a number, got b'0.1'"),
    (1j, "lr must be a number, got 1j"),
    (np.complex128(0.5), "lr must be a number, got (0.5+0j) of dtype complex128"),
    (None, "lr must be a number, got None"),
    ([0.1], "lr must be a number, got [0.1]"),
    ((0.1, 0.2), "lr must be a number, got (0.1, 0.2)"),
    ({"lr": 0.1}, "lr must be a number, got {'lr': 0.1}"),
    (np.array([0.1, 0.2]), "lr must be a number, got an array of shape (2,)"),
    (np.array([[0.1]]), "lr must be a number, got an array of shape (1, 1)"),
    (np.array(["0.1"]), "lr must be a number, got array ['0.1'] of dtype <U3"),
    (np.array([None]), "lr must be a number, got array [None] of dtype object"),
    (np.datetime64("2020-01-01"), "lr must be a number, got "),
    (torch.tensor(0.1), "lr must be a number, got a torch tensor"),
    (torch.float32, "lr must be a number, got torch.float32"),
    (np.float32, "lr must be a number, got <class 'numpy.float32'>"),
    (object, "lr must be a number, got <class 'object'>"),
]


@pytest.mark.parametrize("value, message", REAL_BAD, ids=[repr(v)[:30] for v, _ in REAL_BAD])
def test_real_refuses_with_one_message_format(value, message) -> None:
    with pytest.raises(ValueError) as info:
        real("lr", value, 0)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_real_bounds_are_exact() -> None:
    assert real("b", 0.0, 0.0, 1.0, high_open=True) == 0.0
    assert real("b", 0.999, 0.0, 1.0, high_open=True) == 0.999
    with pytest.raises(ValueError, match=r"^b must be in \[0, 1\), got 1.0$"):
        real("b", 1.0, 0.0, 1.0, high_open=True)
    with pytest.raises(ValueError, match=r"^eps must be > 0, got 0.0$"):
        real("eps", 0.0, 0.0, low_open=True)
    with pytest.raises(ValueError, match=r"^c must be <= 0, got 0.5$"):
        real("c", 0.5, high=0.0)
    with pytest.raises(ValueError, match=r"^c must be a finite number, got nan$"):
        real("c", math.nan)
    assert real("c", -1e300) == -1e300


def test_real_optional() -> None:
    assert real("eps1", None, 0, low_open=True, optional=True) is None
    with pytest.raises(ValueError, match=r"^eps1 must be None or > 0, got -1.0$"):
        real("eps1", -1.0, 0, low_open=True, optional=True)
    with pytest.raises(ValueError, match=r"^eps1 must be None or a finite number > 0, got nan$"):
        real("eps1", math.nan, 0, low_open=True, optional=True)
    with pytest.raises(ValueError, match=r"^eps1 must be None or a number, got 'x'$"):
        real("eps1", "x", 0, optional=True)
    with pytest.raises(ValueError, match=r"^eps must be a number, got None$"):
        real("eps", None, 0)


def test_real_arrays_one_value_per_setting() -> None:
    lrs = np.array([1e-3, 1e-2, 0.1]).reshape(3, 1, 1)
    assert real("lr", lrs, 0, arrays=True) is lrs  # as given, no copy
    ints = np.array([1, 2])
    assert real("lr", ints, 0, arrays=True) is ints
    f32 = np.array([0.5], dtype=np.float32)
    assert real("lr", f32, 0, arrays=True) is f32
    assert type(real("lr", np.array(0.5), 0, arrays=True)) is float  # 0-d: a scalar
    with pytest.raises(ValueError, match=r"^lr must be >= 0, got array \[ 0.1 -1. \]$"):
        real("lr", np.array([0.1, -1.0]), 0, arrays=True)
    with pytest.raises(
        ValueError, match=r"^lr must be a finite number >= 0, got array \[0.1 nan\]"
    ):
        real("lr", np.array([0.1, np.nan]), 0, arrays=True)
    with pytest.raises(ValueError, match=r"^lr must be a number, got an empty array of shape \(0,"):
        real("lr", np.array([]), 0, arrays=True)
    with pytest.raises(
        ValueError, match=r"^lr must be a number, got array \[ True\] of dtype bool"
    ):
        real("lr", np.array([True]), arrays=True)
    with pytest.raises(ValueError, match=r"\(use a NumPy array for one value per setting\)$"):
        real("lr", [0.1, 0.2], arrays=True)
    with pytest.raises(ValueError, match=r"^lr must be a number, got a torch tensor$"):
        real("lr", torch.tensor([0.1]), arrays=True)
    big = np.linspace(0, 1, 1000)[:, None]
    with pytest.raises(ValueError) as info:
        real("lr", big, 0.5, arrays=True)
    assert len(str(info.value)) < 120  # the value is shown short


def test_real_tensors() -> None:
    t = torch.tensor(0.1, dtype=torch.float64)
    assert real("lr", t, 0, tensors=True) is t
    t1 = torch.tensor([0.1])
    assert real("lr", t1, 0, tensors=True) is t1  # one element, like torch's own check
    tk = torch.full((3, 1), 0.1)
    assert real("lr", tk, 0, tensors=True, arrays=True) is tk
    assert real("lr", torch.tensor(2), 0, tensors=True).item() == 2
    assert real("lr", torch.tensor(0.5, dtype=torch.bfloat16), 0, tensors=True).item() == 0.5
    param = torch.nn.Parameter(torch.tensor(0.5))
    assert real("lr", param, 0, tensors=True) is param
    bad = [
        (torch.tensor([0.1, 0.2]), False, "lr must be a number (a 1-element tensor), got a "),
        (torch.tensor(-0.1), False, "lr must be >= 0, got -0.10000000149011612"),
        (torch.tensor(float("nan")), False, "lr must be a finite number >= 0, got nan"),
        (torch.tensor([0.1, -1.0]), True, "lr must be >= 0, got array [ 0.1 -1. ]"),
        (torch.tensor(True), False, "lr must be a number, got a torch.bool tensor"),
        (torch.tensor(1 + 1j), False, "lr must be a number, got a torch.complex64 tensor"),
        (torch.tensor([]), True, "lr must be a number, got an empty tensor of shape (0,)"),
        (torch.float32, False, "lr must be a number, got torch.float32"),
        (torch.device("cpu"), False, "lr must be a number, got device(type='cpu')"),
    ]
    for value, arrays, message in bad:
        with pytest.raises(ValueError) as info:
            real("lr", value, 0, tensors=True, arrays=arrays)
        assert str(info.value).startswith(message), (value, str(info.value))


def test_real_scalars_never_promote_float32() -> None:
    w = np.ones(3, dtype=np.float32)
    for value in (np.float64(0.1), np.longdouble(0.1), np.array(0.1)):
        assert (real("lr", value) * w).dtype == np.float32


# --- integer --------------------------------------------------------------------------------

INT_OK = [
    (3, 3),
    (3.0, 3),
    (1e3, 1000),
    (np.int64(5), 5),
    (np.uint64(7), 7),
    (np.float32(4.0), 4),
    (np.array(6), 6),
    (INT_MAX, INT_MAX),
    (2**62, 2**62),  # exact past 2**53
]


@pytest.mark.parametrize("value, expected", INT_OK, ids=[repr(v) for v, _ in INT_OK])
def test_integer_accepts_whole_numbers_and_returns_python_ints(value, expected) -> None:
    out = integer("n", value, 1)
    assert type(out) is int and out == expected


INT_BAD = [
    (0, "n must be an integer >= 1, got 0"),
    (-5, "n must be an integer >= 1, got -5"),
    (2.5, "n must be an integer >= 1, got 2.5"),
    (math.nan, "n must be an integer >= 1, got nan"),
    (math.inf, "n must be an integer >= 1, got inf"),
    (True, "n must be an integer >= 1, got True"),
    ("3", "n must be an integer >= 1, got '3'"),
    (None, "n must be an integer >= 1, got None"),
    (3j, "n must be an integer >= 1, got 3j"),
    ([3], "n must be an integer >= 1, got [3]"),
    (np.array([3, 4]), "n must be an integer >= 1, got an array of shape (2,)"),
    (torch.tensor(3), "n must be an integer >= 1, got a torch tensor"),
    (1e300, "n must be an integer in [1, 9223372036854775807], got 1e+300"),
    (2**63, "n must be an integer in [1, 9223372036854775807], got 9223372036854775808"),
    (10**400, "n must be an integer in [1, 9223372036854775807], got an integer of about 401"),
    (np.uint64(2**64 - 1), "n must be an integer in [1, 9223372036854775807], got 1844674"),
]


@pytest.mark.parametrize("value, message", INT_BAD, ids=[repr(v)[:30] for v, _ in INT_BAD])
def test_integer_refuses_with_one_message_format(value, message) -> None:
    with pytest.raises(ValueError) as info:
        integer("n", value, 1)
    assert str(info.value).startswith(message), str(info.value)


def test_integer_bounds_and_defaults() -> None:
    assert integer("k", -(2**63)) == -(2**63)
    with pytest.raises(
        ValueError,
        match=r"^k must be an integer in \[-9223372036854775808, 9223372036854775807\], got -9",
    ):
        integer("k", -(2**63) - 1)
    with pytest.raises(
        ValueError,
        match=r"^k must be an integer in \[-9223372036854775808, 9223372036854775807\], got 9",
    ):
        integer("k", 2**63)
    with pytest.raises(ValueError, match=r"^k must be an integer in \[0, 10\], got 11$"):
        integer("k", 11, 0, 10)
    assert integer("k", None, 0, optional=True) is None
    with pytest.raises(ValueError, match=r"^k must be None or an integer >= 0, got -1$"):
        integer("k", -1, 0, optional=True)
    with pytest.raises(ValueError, match=r"^k must be None or an integer >= 0, got 0.5$"):
        integer("k", 0.5, 0, optional=True)


def test_integer_arrays() -> None:
    steps = np.array([[10], [20]])
    assert integer("total_steps", steps, 1, arrays=True) is steps
    as_float = np.array([10.0, 20.0])
    assert integer("total_steps", as_float, 1, arrays=True) is as_float
    with pytest.raises(
        ValueError, match=r"^total_steps must be an integer >= 1, got array \[10  0\]"
    ):
        integer("total_steps", np.array([10, 0]), 1, arrays=True)
    with pytest.raises(
        ValueError, match=r"^total_steps must be an integer >= 1, got array \[10.   2.5\]"
    ):
        integer("total_steps", np.array([10, 2.5]), 1, arrays=True)


# --- flag, choice, shape, require, sequence ---------------------------------------------------


def test_flag() -> None:
    assert flag("amsgrad", True) is True
    assert flag("amsgrad", np.bool_(False)) is False
    for bad, text in [(1, "1"), (0, "0"), ("True", "'True'"), (None, "None"), (1.0, "1.0")]:
        with pytest.raises(ValueError, match=rf"^amsgrad must be True or False, got {text}$"):
            flag("amsgrad", bad)
    with pytest.raises(ValueError, match=r"^amsgrad must be True or False, got array \[ True"):
        flag("amsgrad", np.array([True, False]))


def test_choice() -> None:
    assert choice("mode", "triangular", ("triangular", "exp_range")) == "triangular"
    assert choice("kind", None, (None, "torch")) is None
    msg = r"^mode must be one of 'triangular', 'exp_range', got 'x'$"
    with pytest.raises(ValueError, match=msg):
        choice("mode", "x", ("triangular", "exp_range"))
    # an array or a list never reaches `in` (whose truth value would be ambiguous)
    with pytest.raises(ValueError, match=r"got array \['triangular' 'x'\]$"):
        choice("mode", np.array(["triangular", "x"]), ("triangular", "exp_range"))
    with pytest.raises(ValueError, match=r"got \['triangular'\]$"):
        choice("mode", ["triangular"], ("triangular",))
    with pytest.raises(ValueError, match=r"got 1$"):
        choice("mode", 1, ("triangular",))


def test_shape() -> None:
    x = np.zeros((3,))
    assert shape("velocity", x, (3,)) is x
    with pytest.raises(ValueError, match=r"^velocity must have shape \(3,\), got shape \(2,\)$"):
        shape("velocity", np.zeros(2), (3,))
    with pytest.raises(ValueError, match=r"^velocity must have shape \(3,\), got shape \(\)$"):
        shape("velocity", 1.0, (3,))
    with pytest.raises(
        ValueError, match=r"^velocity must have shape \(2,\), got \[\[1\], \[1, 2\]\]"
    ):
        shape("velocity", [[1], [1, 2]], (2,))


def test_require() -> None:
    require(True, "never")
    require(np.array([True, True]), "never")
    with pytest.raises(ValueError, match="^min_lr must be <= lr$"):
        require(np.array([True, False]), "min_lr must be <= lr")


def test_sequence() -> None:
    assert sequence("milestones", [3, 6]) == (3, 6)
    assert sequence("milestones", (3,)) == (3,)
    assert sequence("milestones", range(2)) == (0, 1)
    assert sequence("milestones", np.array([1, 2])) == (1, 2)
    assert sequence("milestones", []) == ()
    for bad in (5, np.int64(5), "30,60", {3, 6}, {"a": 1}, np.array([[1]]), None, 1j):
        with pytest.raises(ValueError, match=r"^milestones must be a sequence, got "):
            sequence("milestones", bad)
    with pytest.raises(ValueError, match=r"^milestones must be a sequence of integers, got 5$"):
        sequence("milestones", 5, "a sequence of integers")


# --- show -----------------------------------------------------------------------------------


def test_show_is_short_and_never_fails() -> None:
    assert show(0.1) == "0.1"
    assert show(np.float32(0.5)) == "0.5"
    assert show(np.array(3)) == "3"
    assert show(np.array([0.9, 1.0])) == "array [0.9 1. ]"
    assert show(np.arange(1000.0)).startswith("array [  0.   1.   2. ...")
    assert len(show(list(range(1000)))) <= 80
    assert len(show("x" * 1000)) <= 80
    assert show(10**5000) == "an integer of about 5001 digits"  # repr would raise
    assert show(torch.tensor([0.5, 1.5], dtype=torch.bfloat16)) == "array [0.5 1.5]"
    assert show(torch.tensor(2)) == "2"
    assert show(torch.empty(2, device="meta")).startswith("a torch.float32 tensor of shape (2,)")
    assert show(torch.float16) == "torch.float16"


def test_public_names_stay() -> None:
    for name in (
        "real",
        "integer",
        "flag",
        "choice",
        "shape",
        "require",
        "range_text",
        "show",
        "sequence",
        "is_tensor",
    ):
        assert callable(getattr(checks, name))
