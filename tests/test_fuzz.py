"""Odd values everywhere (hypothesis): every registry row (as a torch class and as a NumPy
optimizer), every schedule and every teaching function.

Each argument gets odd values: NaN, inf, negative, zero, huge and tiny numbers, huge
integers, bools, None, complex numbers, strings, bytes, lists and tuples, 0-d and
wrong-shaped arrays (of floats, ints, bools, complex, strings), torch tensors, dtypes and
other objects. The call either works, or raises ``ValueError``/``TypeError`` whose message
names the argument; and a failing call changes nothing: the torch optimizer's parameters
and state, the NumPy optimizer's state, step and hyperparameters, the schedule, the
teaching function's inputs.

Bounded for the default suite: ``FUZZ_EXAMPLES`` examples per target (25 unless the
environment variable ``OPTIMLAB_FUZZ_EXAMPLES`` says otherwise), about 1,750 cases in a few
seconds. The tests at the end (marked slow) try every fixed odd value of ``ODD`` once on
every argument of every target, about 32,000 cases. The number of generated cases is
printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import optimlab
from optimlab import schedules
from optimlab.optim import CLASSES
from optimlab.rules.registry import REGISTRY

FUZZ_EXAMPLES = int(os.environ.get("OPTIMLAB_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = [spec.name for spec in REGISTRY]
CASES: Counter[str] = Counter()  # generated cases per target, printed at the end


# -- the odd values --------------------------------------------------------------------------
ODD: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    -1.0,
    -1,
    0,
    0.0,
    -0.0,
    1e308,
    -1e308,
    1e300,
    5e-324,
    1e-320,
    2**70,
    -(2**70),
    10**400,
    True,
    False,
    None,
    1j,
    1 + 0j,
    "0.1",
    "",
    "nan",
    b"0.1",
    [],
    [0.1],
    [0.1, 0.2],
    (),
    (0.9,),
    (0.9, 0.99),
    (0.9, 0.99, 0.5),
    {"a": 1},
    {1, 2},
    np.float32(0.5),
    np.float16(0.5),
    np.longdouble(0.5),
    np.longdouble("1e400"),
    np.int64(3),
    np.uint64(2**64 - 1),
    np.bool_(True),
    np.array(0.5),
    np.array(math.nan),
    np.array([0.1, 0.2]),
    np.full((2, 3), 0.1),
    np.full((3, 2), 0.1),
    np.array([], dtype=float),
    np.array(["a"]),
    np.array([True]),
    np.array([1 + 1j]),
    np.array([1, 2]),
    np.array([None], dtype=object),
    torch.tensor(0.5),
    torch.tensor(0.5, dtype=torch.float16),
    torch.tensor([0.1, 0.2]),
    torch.tensor(math.nan),
    torch.tensor(True),
    torch.tensor(1 + 1j),
    torch.tensor([], dtype=torch.float64),
    torch.float32,
    np.float32,
    np.dtype("float64"),
    float,
    object(),
    lambda: 0.1,
    0.5,
    3,
]


def _arrays() -> st.SearchStrategy[np.ndarray]:
    dtypes = st.sampled_from(
        [np.float64, np.float32, np.float16, np.int64, np.int8, np.bool_, np.complex128]
    )
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
    return hnp.arrays(dtypes, shapes)


def _tensors() -> st.SearchStrategy[torch.Tensor]:
    floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
    return st.one_of(
        floats.map(torch.tensor),
        st.lists(floats, min_size=0, max_size=4).map(lambda v: torch.tensor(v)),
        st.sampled_from([torch.float64, torch.float16, torch.bfloat16, torch.int64]).map(
            lambda d: torch.ones(2, dtype=d)
        ),
    )


ODD_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(ODD),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.booleans(),
    st.complex_numbers(max_magnitude=10),
    st.text(max_size=4),
    st.lists(st.floats(allow_nan=True), max_size=3),
    st.tuples(st.floats(min_value=-2, max_value=2), st.floats(min_value=-2, max_value=2)),
    _arrays(),
    _tensors(),
    st.sampled_from([torch.float32, torch.bfloat16, np.float64, np.dtype("int32"), None]),
)


# -- what every call must do -----------------------------------------------------------------
def outcome(call: Callable[[], Any], names: list[str]) -> BaseException | None:
    """Run ``call``: it works (None) or raises ValueError/TypeError naming one of
    ``names`` (the exception); anything else fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in NumPy arithmetic
            call()
    except (ValueError, TypeError) as exc:
        assert any(n in str(exc) for n in names), (
            f"{type(exc).__name__} naming none of {names}: {exc}"
        )
        return exc
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal, bitwise for tensors and arrays (NaN equal to NaN), recursively."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(
            np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind in "fc"
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a is b or a == b


# -- torch classes ---------------------------------------------------------------------------
def _params() -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(3, 2, generator=g, dtype=torch.float64))
    p.grad = torch.randn(3, 2, generator=g, dtype=torch.float64)
    return [p]


def _torch_names(cls: type, arg: str) -> list[str]:
    """What a message about constructor argument ``arg`` may call it."""
    carried = next((a.targets for a in cls._arguments.args if a.name == arg), ())
    return [arg, *carried]


def _torch_snapshot(opt: torch.optim.Optimizer) -> Any:
    params = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    state = copy.deepcopy(opt.state_dict()["state"])
    return params, state


def check_torch(name: str, arg: str, value: Any) -> None:
    cls = CLASSES[name]
    names = _torch_names(cls, arg)

    def construct_and_step() -> None:
        opt = cls(_params(), **{arg: value})
        opt.step()

    outcome(construct_and_step, names)
    opt = cls(_params())
    opt.step()
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    before = _torch_snapshot(opt)
    opt.param_groups[0][arg] = value  # an edited group, checked at the next step
    if outcome(opt.step, names) is not None:
        assert _same(before, _torch_snapshot(opt)), f"{name}.{arg}={value!r} changed the state"
    CASES["torch classes"] += 1


TORCH_ARGS = [
    (name, arg)
    for name in NAMES
    for arg in inspect.signature(CLASSES[name]).parameters
    if arg != "params"
]


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_torch_classes(name: str, data: st.DataObject) -> None:
    args = [a for n, a in TORCH_ARGS if n == name]
    arg = data.draw(st.sampled_from(args), label="argument")
    check_torch(name, arg, data.draw(ODD_VALUES, label="value"))


# -- NumPy optimizers ------------------------------------------------------------------------
def check_numpy(name: str, hp: str, value: Any) -> None:
    w, g = np.ones((3, 2)), np.full((3, 2), 0.5)

    def construct_and_update() -> None:
        optimlab.numpy_optimizer(name, **{hp: value}).update(w, g)

    outcome(construct_and_update, [hp])
    opt = optimlab.numpy_optimizer(name)
    w1 = opt.update(w, g)
    state, hyper = opt.state_dict(), dict(opt.hyperparams)

    def edit() -> None:
        opt.hyperparams[hp] = value
        opt.update(w1, g)

    if outcome(edit, [hp]) is not None:
        # refused at the assignment (hyperparameters as they were) or by the update (the
        # new value stays set): either way no step was taken and the state is as it was
        after = opt.state_dict()
        assert opt.step == 1, f"{name}.{hp}={value!r} took a step"
        assert _same(_without_hp(state), _without_hp(after)), f"{name}.{hp}={value!r}"
        assert _same(hyper, dict(opt.hyperparams)) or hp in opt.hyperparams
    assert np.array_equal(w, np.ones((3, 2))) and np.array_equal(g, np.full((3, 2), 0.5))
    CASES["numpy optimizers"] += 1


def _without_hp(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.startswith("hp")}


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_numpy_optimizers(name: str, data: st.DataObject) -> None:
    rule = REGISTRY[NAMES.index(name)].rule
    hp = data.draw(st.sampled_from(rule.names), label="hyperparameter")
    check_numpy(name, hp, data.draw(ODD_VALUES, label="value"))


# -- schedules -------------------------------------------------------------------------------
def check_schedule(name: str, arg: str, value: Any) -> None:
    kwargs = {"total_steps": 100, arg: value}

    def build_and_call() -> None:
        s = schedules.get(name, **kwargs)
        for step in (0, 1, 50, 99):
            np.asarray(s(step), dtype=np.float64)  # arrays: one value per setting

    outcome(build_and_call, [arg])
    s = schedules.get(name, total_steps=100)
    before = repr(s)
    outcome(lambda: s(value), ["step"])
    assert repr(s) == before
    CASES["schedules"] += 1


@pytest.mark.parametrize("name", schedules.names())
@FUZZ
@given(data=st.data())
def test_schedules(name: str, data: st.DataObject) -> None:
    arg = data.draw(st.sampled_from(schedules.parameters(name)), label="argument")
    check_schedule(name, arg, data.draw(ODD_VALUES, label="value"))


# -- teaching functions ----------------------------------------------------------------------
_ONE = np.linspace(0.5, 1.5, 3)
TEACHING: dict[str, dict[str, Any]] = {
    "gradient_descent_step": {"params": _ONE, "grads": _ONE, "lr": 0.1},
    "sgd_step": {"params": _ONE, "grads": _ONE, "lr": 0.1},
    "momentum_step": {"params": _ONE, "grads": _ONE, "velocity": _ONE, "lr": 0.1, "beta": 0.9},
    "nesterov_step": {"params": _ONE, "grads": _ONE, "velocity": _ONE, "lr": 0.1, "beta": 0.9},
    "adagrad_step": {"params": _ONE, "grads": _ONE, "cache": _ONE, "lr": 0.1},
    "rmsprop_step": {"params": _ONE, "grads": _ONE, "cache": _ONE, "lr": 0.1, "beta": 0.9},
    "adam_step": {
        "params": _ONE,
        "grads": _ONE,
        "m": _ONE,
        "v": _ONE,
        "lr": 0.1,
        "beta1": 0.9,
        "beta2": 0.999,
        "t": 1,
    },
    "adamw_step": {
        "params": _ONE,
        "grads": _ONE,
        "m": _ONE,
        "v": _ONE,
        "lr": 0.1,
        "beta1": 0.9,
        "beta2": 0.999,
        "t": 1,
        "weight_decay": 0.01,
    },
    "nadam_step": {
        "params": _ONE,
        "grads": _ONE,
        "m": _ONE,
        "v": _ONE,
        "mu_product": 1.0,
        "lr": 0.1,
        "beta1": 0.9,
        "beta2": 0.999,
        "t": 1,
    },
}


def _square(x: Any) -> tuple[float, Any]:
    """f = sum of squares, with gradients in the layout of ``x`` (a user's function)."""
    if isinstance(x, dict):
        parts = {k: _square(v) for k, v in x.items()}
        return sum(f for f, _ in parts.values()), {k: g for k, (_, g) in parts.items()}
    if isinstance(x, list | tuple):
        parts = [_square(v) for v in x]
        return sum(f for f, _ in parts), type(x)(g for _, g in parts)
    return float(np.sum(np.asarray(x) ** 2)), 2 * np.asarray(x)


_SQUARE = _square
LOOPS: dict[str, dict[str, Any]] = {
    "train_with_gradient_descent": {
        "params": _ONE,
        "compute_loss_and_grads": _SQUARE,
        "lr": 0.1,
        "epochs": 3,
    },
    "experiment_learning_rates": {
        "params": _ONE,
        "compute_loss_and_grads": _SQUARE,
        "lrs": [0.01, 0.1],
        "epochs": 3,
    },
    "compare_optimizers": {
        "opt_steps": ["sgd", "adam"],
        "initial_params": _ONE,
        "compute_loss_and_grads": _SQUARE,
        "epochs": 3,
    },
}


def test_every_teaching_function_is_fuzzed() -> None:
    public = set(optimlab.functional.__all__)
    assert public == set(TEACHING) | set(LOOPS)
    for name, base in {**TEACHING, **LOOPS}.items():
        fn = getattr(optimlab.functional, name)
        required = {n for n, p in inspect.signature(fn).parameters.items() if p.default is p.empty}
        assert required <= set(base), name


def _copy(value: Any) -> Any:
    """A copy to compare with later: arrays, tensors and containers by value; any other
    object is itself (it cannot be modified in a way the test could see)."""
    if isinstance(value, np.ndarray):
        return np.copy(value)
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, list | tuple | dict | set):
        return copy.deepcopy(value)
    return value


def _copied(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) for k, v in kwargs.items()}


def _affordable(arg: str, value: Any) -> bool:
    """Whether the call ends soon: a loop of 2**70 epochs is valid, but never ends."""
    if arg != "epochs":
        return True
    try:
        return not float(value) > 100  # NaN, refused values and non-numbers pass
    except (TypeError, ValueError, OverflowError, RuntimeError):  # complex, arrays, ...
        return True


def check_teaching(fname: str, arg: str, value: Any) -> None:
    if not _affordable(arg, value):
        return
    fn = getattr(optimlab.functional, fname)
    base = TEACHING.get(fname) or LOOPS[fname]
    kwargs = _copied(base)
    kwargs[arg] = value
    given = _copied(kwargs)
    outcome(lambda: fn(**kwargs), [arg])
    assert _same(given, kwargs), f"{fname} modified its inputs"  # never, failing or not
    CASES["teaching functions"] += 1


def _teaching_args(fname: str) -> list[str]:
    fn = getattr(optimlab.functional, fname)
    return [a for a in inspect.signature(fn).parameters if a != "compute_loss_and_grads"]


@pytest.mark.parametrize("fname", [*TEACHING, *LOOPS])
@FUZZ
@given(data=st.data())
def test_teaching_functions(fname: str, data: st.DataObject) -> None:
    arg = data.draw(st.sampled_from(_teaching_args(fname)), label="argument")
    check_teaching(fname, arg, data.draw(ODD_VALUES, label="value"))


# -- every fixed odd value once, for every argument (deterministic) -------------------------
def _every(targets: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for target in targets:
        for value in ODD:
            yield (*target, value)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_torch_classes_every_odd_value(name: str) -> None:
    for _, arg, value in _every([(name, a) for n, a in TORCH_ARGS if n == name]):
        check_torch(name, arg, value)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_numpy_optimizers_every_odd_value(name: str) -> None:
    rule = REGISTRY[NAMES.index(name)].rule
    for _, hp, value in _every([(name, h) for h in rule.names]):
        check_numpy(name, hp, value)


@pytest.mark.slow
@pytest.mark.parametrize("name", schedules.names())
def test_schedules_every_odd_value(name: str) -> None:
    for _, arg, value in _every([(name, a) for a in schedules.parameters(name)]):
        check_schedule(name, arg, value)


@pytest.mark.slow
@pytest.mark.parametrize("fname", [*TEACHING, *LOOPS])
def test_teaching_functions_every_odd_value(fname: str) -> None:
    for _, arg, value in _every([(fname, a) for a in _teaching_args(fname)]):
        check_teaching(fname, arg, value)


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Iterator[None]:
    yield
    total = sum(CASES.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    print(f"\nfuzz: {total} generated cases ({parts})")
