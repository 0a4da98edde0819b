"""Schedules as pure functions: closed forms written out here, names, composition, arrays,
pickling and bad input. (Parity with torch.optim.lr_scheduler: test_schedules_torch.py.)"""

from __future__ import annotations

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
from numerics import assert_close

from optimlab import schedules as S

# --- closed forms, written plainly ------------------------------------------------------


def warmup_ref(decay: str, t: int, total: int, w: int, lr: float, init: float, end: float):
    if t < w:
        return init + (lr - init) * t / w
    if decay == "constant":
        return lr
    if decay == "inverse_sqrt":
        return lr * math.sqrt(max(w, 1) / max(t, 1))
    p = (min(t, total) - w) / (total - w)
    if decay == "cosine":
        return end + 0.5 * (lr - end) * (1 + math.cos(math.pi * p))
    return lr + (end - lr) * p


@pytest.mark.parametrize("decay", ["cosine", "linear", "constant", "inverse_sqrt"])
@pytest.mark.parametrize("w", [0, 1, 37])
def test_warmup_schedules_match_formula(decay: str, w: int) -> None:
    total, lr, init = 400, 0.3, 0.01
    end = 0.002 if decay in ("cosine", "linear") else 0.0
    kw = {"end_lr": end} if decay in ("cosine", "linear") else {}
    s = S.get(f"warmup_{decay}", total_steps=total, warmup_steps=w, lr=lr, init_lr=init, **kw)
    for t in range(total + 50):
        ref = warmup_ref(decay, t, total, w, lr, init, end)
        assert s(t) == pytest.approx(ref, rel=1e-12, abs=1e-15), t
    if w:
        assert s(w) == pytest.approx(lr, rel=1e-15)  # the peak is lr, reached at step w
    assert s(0) == (init if w else s(0))


def test_warmup_default_is_a_tenth_and_hf_convention() -> None:
    s = S.get("warmup_cosine", total_steps=1000)
    assert s.warmup_steps == 100
    assert s(0) == 0.0 and s(50) == 0.5 and s(100) == 1.0
    assert s(550) == pytest.approx(0.5, rel=1e-12)
    assert s(1000) == 0.0 and s(5000) == 0.0


def test_inverse_sqrt_is_the_transformer_schedule() -> None:
    d, w = 512, 4000
    s = S.get("inverse_sqrt", d_model=d, warmup_steps=w)
    for t in [0, 1, 10, 999, 3998, 3999, 4000, 4001, 10_000, 99_999]:
        n = t + 1  # the paper counts steps from 1
        ref = d**-0.5 * min(n**-0.5, n * w**-1.5)
        assert s(t) == pytest.approx(ref, rel=1e-14)
    values = [s(t) for t in range(8000)]
    assert int(np.argmax(values)) == w - 1
    assert S.get("inverse_sqrt", lr=2.0, warmup_steps=10)(3) == pytest.approx(
        2.0 * 512**-0.5 * 4 * 10**-1.5, rel=1e-14
    )
    assert S.get("inverse_sqrt").warmup_steps == 4000
    assert S.get("inverse_sqrt", total_steps=500).warmup_steps == 50


def wsd_ref(t, total, w, d, lr, init, end, decay):
    if t < w:
        return init + (lr - init) * t / w
    start = total - d
    if t < start:
        return lr
    p = min(max((min(t, total) - start) / d, 0.0), 1.0)
    if decay == "linear":
        return lr + (end - lr) * p
    if decay == "cosine":
        return end + 0.5 * (lr - end) * (1 + math.cos(math.pi * p))
    return lr + (end - lr) * math.sqrt(p)


@pytest.mark.parametrize("decay", ["linear", "cosine", "sqrt"])
def test_wsd_matches_formula(decay: str) -> None:
    total, w, d = 500, 25, 120
    s = S.get(
        "wsd",
        total_steps=total,
        warmup_steps=w,
        decay_steps=d,
        lr=0.7,
        init_lr=0.07,
        end_lr=0.01,
        decay=decay,
    )
    for t in range(total + 30):
        ref = wsd_ref(t, total, w, d, 0.7, 0.07, 0.01, decay)
        assert s(t) == pytest.approx(ref, rel=1e-12, abs=1e-15), t
    d_default = S.get("wsd", total_steps=1000)
    assert (d_default.warmup_steps, d_default.decay_steps) == (100, 200)


def test_open_ended_schedules_keep_going_and_bounded_ones_hold() -> None:
    assert S.get("exponential", gamma=0.5, total_steps=4)(6) == 0.5**6
    assert S.get("cosine", total_steps=10, eta_min=0.1)(10) == 0.1
    assert S.get("cosine", total_steps=10, eta_min=0.1)(1000) == 0.1
    one = S.get("one_cycle", total_steps=100)
    assert one(99) == one(100) == one(10**6) == pytest.approx(1 / 25 / 1e4)


def test_defaults_from_total_steps() -> None:
    assert S.get("step", total_steps=100).step_size == 34  # two drops in steps 0..99
    assert S.get("multistep", total_steps=100).milestones == (50, 75)
    assert S.get("multistep", total_steps=2).milestones == (1,)
    assert S.get("multistep", total_steps=1).milestones == ()  # a constant
    assert S.get("multistep", milestones=())(5) == 1.0
    assert S.get("exponential", total_steps=200)(200) == pytest.approx(0.01, rel=1e-12)
    assert S.get("cosine_restarts", total_steps=100).T_0 == 25
    c = S.get("cyclic", total_steps=100, lr=2.0)
    assert (c.step_size_up, c.step_size_down, c.min_lr) == (25, 25, 0.2)


@pytest.mark.parametrize("name", S.list())
def test_every_name_works_with_only_total_steps(name: str) -> None:
    for total in (10, 1000):
        s = S.get(name, total_steps=total)
        values = np.array([s(t) for t in range(total + 5)])
        assert np.isfinite(values).all() and (values >= 0).all()
        assert isinstance(s(0), float)
        assert_close(s(np.arange(total + 5)), values, what=name)  # vectorised over steps


@pytest.mark.parametrize("name", S.list())
def test_lr_scales_the_schedule(name: str) -> None:
    base, scaled = S.get(name, total_steps=50), S.get(name, total_steps=50, lr=0.003)
    for t in range(60):
        assert scaled(t) == pytest.approx(0.003 * base(t), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("total", [1, 2, 3])
def test_tiny_totals_work_or_fail_clearly(total: int) -> None:
    for name in S.list():
        try:
            s = S.get(name, total_steps=total)
        except ValueError as exc:  # only where the schedule cannot exist at that length
            assert name in ("one_cycle", "inverse_sqrt"), (name, exc)
            continue
        assert all(math.isfinite(s(t)) for t in range(total + 2))


def test_multiplier_semantics_for_the_lab() -> None:
    # a schedule built without lr is a multiplier; other rates are fractions of the base
    s = S.get("cosine", total_steps=100, eta_min=0.1)
    assert s(0) == 1.0 and s(100) == 0.1


# --- composition ------------------------------------------------------------------------


def test_join_sees_relative_steps() -> None:
    warm = S.Linear(10, start_factor=0.0, end_factor=1.0)
    cos = S.CosineAnnealing(90, eta_min=0.0)
    tail = S.Constant(lr=0.05)
    j = S.Join((warm, cos, tail), (10, 100))
    for t in range(150):
        ref = warm(t) if t < 10 else cos(t - 10) if t < 100 else tail(t - 100)
        assert j(t) == ref
    assert_close(j(np.arange(150)), [j(t) for t in range(150)])  # vectorised over steps
    assert S.join([warm, cos], [10]) == S.Join((warm, cos), (10,))


def test_join_equals_named_warmup_cosine() -> None:
    named = S.get("warmup_cosine", total_steps=200, warmup_steps=20, lr=0.4)
    joined = S.Join(
        (S.Linear(20, lr=0.4, start_factor=0.0, end_factor=1.0), S.CosineAnnealing(180, lr=0.4)),
        (20,),
    )
    for t in range(220):
        assert joined(t) == pytest.approx(named(t), rel=1e-14, abs=1e-17)


def test_products() -> None:
    a, b = S.get("cosine", total_steps=20), S.get("exponential", gamma=0.9)
    p = a * b
    assert isinstance(p, S.Product)
    assert all(p(t) == a(t) * b(t) for t in range(25))
    assert (a * b * a).factors == (a, b, a)  # nested products flatten
    assert all((0.5 * a)(t) == 0.5 * a(t) for t in range(25))
    assert all((a * 2)(t) == a(t) * 2 for t in range(25))
    with pytest.raises(TypeError):
        a * "x"  # noqa: B018


# --- arrays: one schedule per setting ----------------------------------------------------

ARRAY_CASES = [
    (
        "cosine",
        {"total_steps": np.array([[50], [80], [120]]), "eta_min": np.array([[0.0], [0.1], [0.2]])},
    ),
    ("warmup_cosine", {"total_steps": 100, "warmup_steps": np.array([[0], [5], [30]])}),
    ("warmup_linear", {"total_steps": np.array([[60], [100]]), "lr": np.array([[0.1], [1.0]])}),
    ("warmup_inverse_sqrt", {"warmup_steps": np.array([[1], [10]]), "total_steps": 100}),
    ("step", {"step_size": np.array([[3], [7]]), "gamma": np.array([[0.5], [0.9]])}),
    ("exponential", {"gamma": np.array([[0.9], [0.99], [1.0]])}),
    ("polynomial", {"total_steps": 90, "power": np.array([[0.5], [1.0], [3.0]])}),
    ("linear", {"total_steps": np.array([[40], [90]]), "start_factor": np.array([[0.1], [1.0]])}),
    ("cosine_restarts", {"T_0": np.array([[5], [7], [3]]), "T_mult": np.array([[1], [2], [3]])}),
    (
        "cyclic",
        {
            "step_size_up": np.array([[5], [9]]),
            "mode": "exp_range",
            "gamma": np.array([[0.99], [0.95]]),
        },
    ),
    ("one_cycle", {"total_steps": np.array([[40], [100]]), "pct_start": np.array([[0.25], [0.4]])}),
    (
        "one_cycle",
        {"total_steps": 100, "three_phase": True, "div_factor": np.array([[10.0], [25.0]])},
    ),
    ("inverse_sqrt", {"d_model": np.array([[64], [512]]), "warmup_steps": np.array([[4], [9]])}),
    ("wsd", {"total_steps": 100, "decay_steps": np.array([[1], [20], [90]]), "decay": "sqrt"}),
    ("constant", {"lr": np.array([[0.1], [0.2]])}),
]


@pytest.mark.parametrize("name, kw", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
def test_array_arguments_equal_scalar_runs(name: str, kw: dict) -> None:
    batched = S.get(name, **kw)
    k = max(np.shape(v)[0] for v in kw.values() if isinstance(v, np.ndarray))
    for t in range(130):
        out = batched(t)
        assert isinstance(out, np.ndarray) and out.shape == (k, 1)
        for i in range(k):
            scalar_kw = {
                key: (v[i, 0].item() if isinstance(v, np.ndarray) else v) for key, v in kw.items()
            }
            scalar = S.get(name, **scalar_kw)
            assert out[i, 0] == pytest.approx(scalar(t), rel=1e-13, abs=1e-300), (t, i)
            if name in ("cyclic", "one_cycle"):  # the momentum cycle, per setting too
                mom = np.broadcast_to(batched.momentum()(t), (k, 1))
                assert mom[i, 0] == pytest.approx(scalar.momentum()(t), rel=1e-13)


def test_integer_tensor_steps() -> None:
    import torch

    s = S.get("cosine", total_steps=10)
    assert s(torch.tensor(3)) == s(3)
    np.testing.assert_array_equal(s(torch.arange(10)), s(np.arange(10)))
    with pytest.raises(ValueError, match="step must be"):
        s(torch.tensor(3.0))  # a float tensor is refused, like a float


def test_array_join_and_steps_broadcast() -> None:
    s = S.Join((S.Constant(lr=np.array([[0.1], [0.2]])), S.Constant(lr=1.0)), (5,))
    out = s(np.arange(8))
    assert out.shape == (2, 8)
    assert np.array_equal(out[:, :5], np.repeat([[0.1], [0.2]], 5, axis=1))
    assert (out[:, 5:] == 1.0).all()


# --- identity: pickle, eq, hash, repr ----------------------------------------------------


def _all_schedules() -> list[S.Schedule]:
    out = [S.get(name, total_steps=100) for name in S.list()]
    out.append(S.get("one_cycle", total_steps=100).momentum())
    out.append(S.Join((out[0], out[1]), (10,)))
    out.append(out[2] * out[3] * 0.5)
    return out


@pytest.mark.parametrize("s", _all_schedules(), ids=lambda s: type(s).__name__)
def test_pickle_eq_hash_repr(s: S.Schedule) -> None:
    back = pickle.loads(pickle.dumps(s))
    assert back == s and hash(back) == hash(s) and back is not s
    assert copy.deepcopy(s) == s
    assert all(back(t) == s(t) for t in range(0, 120, 7))
    ns = {n: getattr(S, n) for n in S.__all__ if n[0].isupper() and n != "ScheduleLR"}
    assert eval(repr(s), ns) == s  # the repr rebuilds the schedule
    with pytest.raises(AttributeError):
        s.lr = 3.0  # frozen


def test_equality_compares_values() -> None:
    assert S.get("cosine", total_steps=10) == S.CosineAnnealing(10)
    assert S.get("cosine", total_steps=10) != S.CosineAnnealing(11)
    assert S.get("cosine", total_steps=10) != S.Linear(10)
    a = S.Constant(lr=np.array([0.1, 0.2]))
    assert a == S.Constant(lr=np.array([0.1, 0.2]))
    assert a != S.Constant(lr=np.array([0.1, 0.3]))
    assert hash(a) == hash(S.Constant(lr=np.array([0.1, 0.2])))
    assert len({S.CosineAnnealing(10), S.CosineAnnealing(10), S.CosineAnnealing(12)}) == 2


# --- names and specs ----------------------------------------------------------------------


def test_names_and_lookup() -> None:
    names = S.list()
    assert names == sorted(names)
    for expected in [
        "constant",
        "step",
        "multistep",
        "exponential",
        "polynomial",
        "linear",
        "cosine",
        "cosine_restarts",
        "warmup_cosine",
        "warmup_linear",
        "warmup_constant",
        "warmup_inverse_sqrt",
        "inverse_sqrt",
        "cyclic",
        "one_cycle",
        "wsd",
    ]:
        assert expected in names
    assert S.get("One-Cycle", total_steps=10) == S.OneCycle(10)
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        S.get("cosin", total_steps=10)
    with pytest.raises(ValueError, match="unknown argument 'T_max'.*known: total_steps"):
        S.get("cosine", T_max=10)
    with pytest.raises(ValueError, match="unknown argument 'decay'"):
        S.get("warmup_cosine", total_steps=10, decay="linear")  # fixed by the name
    with pytest.raises(ValueError, match="name must be a string"):
        S.get(3)


def test_from_spec() -> None:
    s = S.from_spec("multistep:milestones=(30, 60),gamma=0.5", total_steps=100)
    assert s == S.MultiStepDecay(milestones=(30, 60), gamma=0.5, total_steps=100)
    assert S.from_spec("cyclic:mode=triangular2, step_size_up=4") == S.Cyclic(
        step_size_up=4, mode="triangular2"
    )
    assert S.from_spec("cosine", total_steps=5) == S.CosineAnnealing(5)
    with pytest.raises(ValueError, match="key=value"):
        S.from_spec("cosine:oops", total_steps=5)


# --- bad input ------------------------------------------------------------------------------

BAD = [
    (lambda: S.get("cosine", total_steps=0), "total_steps must be an integer >= 1, got 0"),
    (lambda: S.get("cosine", total_steps=-5), "total_steps must be an integer >= 1, got -5"),
    (lambda: S.get("cosine", total_steps=2.5), "total_steps must be an integer >= 1, got 2.5"),
    (lambda: S.get("cosine", total_steps=True), "total_steps must be an integer >= 1, got True"),
    (lambda: S.get("cosine", total_steps=float("nan")), "total_steps must be an integer"),
    (lambda: S.get("cosine", total_steps=float("inf")), "total_steps must be an integer"),
    (lambda: S.get("cosine"), "total_steps is required for cosine"),
    (lambda: S.get("cosine", total_steps=10, lr=-1.0), "lr must be >= 0, got -1.0"),
    (
        lambda: S.get("cosine", total_steps=10, lr=float("nan")),
        "lr must be a finite number >= 0, got nan",
    ),
    (
        lambda: S.get("cosine", total_steps=10, eta_min=float("inf")),
        "eta_min must be a finite number >= 0",
    ),
    (lambda: S.get("cosine", total_steps=10, lr="0.1"), "lr must be a number"),
    (
        lambda: S.get("warmup_cosine", total_steps=10, warmup_steps=10),
        "warmup_steps must be < total_steps, got warmup_steps=10 and total_steps=10",
    ),
    (lambda: S.get("warmup_linear", total_steps=10, warmup_steps=50), "warmup_steps must be <"),
    (lambda: S.get("warmup_constant"), "needs warmup_steps or total_steps"),
    (lambda: S.Warmup("constant", warmup_steps=5, end_lr=0.1), "end_lr is not used"),
    (lambda: S.get("warmup_constant", warmup_steps=5, end_lr=0.0), "unknown argument 'end_lr'"),
    (
        lambda: S.get("warmup_cosine", total_steps=10, warmup_steps=-1),
        "warmup_steps must be an integer >= 0",
    ),
    (
        lambda: S.get(
            "warmup_cosine", total_steps=np.array([[10], [5]]), warmup_steps=np.array([[3], [5]])
        ),
        "warmup_steps must be < total_steps",
    ),
    (lambda: S.get("inverse_sqrt", warmup_steps=0), "warmup_steps must be an integer >= 1, got 0"),
    (lambda: S.get("inverse_sqrt", d_model=0), "d_model must be > 0, got 0"),
    (lambda: S.get("one_cycle", total_steps=3), "one_cycle phase 1 would be empty"),
    (lambda: S.get("one_cycle", total_steps=1), "too few steps"),
    (lambda: S.get("one_cycle", total_steps=10, pct_start=1.0), "phase 2 would be empty"),
    (
        lambda: S.get("one_cycle", total_steps=10, pct_start=0.55, three_phase=True),
        "phase 3 would be empty",
    ),
    (lambda: S.get("one_cycle", total_steps=100, pct_start=1.5), r"pct_start must be in \[0, 1\]"),
    (lambda: S.get("one_cycle", total_steps=100, anneal="cosine"), "anneal must be one of"),
    (lambda: S.get("one_cycle", total_steps=100, three_phase=1), "three_phase must be True or"),
    (lambda: S.get("one_cycle", total_steps=100, div_factor=0), "div_factor must be > 0"),
    (lambda: S.get("step"), "step needs step_size or total_steps"),
    (lambda: S.get("step", step_size=0), "step_size must be an integer >= 1, got 0"),
    (lambda: S.get("multistep", milestones=(5, 5)), "strictly increasing"),
    (
        lambda: S.get("multistep", milestones=(0, 5)),
        r"milestones\[0\] must be an integer >= 1, got 0",
    ),
    (lambda: S.get("multistep", milestones=5, total_steps=9), "sequence of integers"),
    (lambda: S.get("multistep", milestones=(5, 20), total_steps=10), "never reached"),
    (lambda: S.get("exponential"), "exponential needs gamma or total_steps"),
    (lambda: S.get("exponential", gamma=-0.5), "gamma must be >= 0"),
    (lambda: S.get("cosine_restarts", T_0=0), "T_0 must be an integer >= 1, got 0"),
    (lambda: S.get("cosine_restarts", T_0=5, T_mult=0), "T_mult must be an integer >= 1"),
    (lambda: S.get("cosine_restarts", T_0=5, T_mult=1.5), "T_mult must be an integer"),
    (lambda: S.get("cyclic", step_size_up=5, min_lr=2.0), "min_lr must be <= lr"),
    (lambda: S.get("cyclic", step_size_up=5, gamma=0.9), "only with mode='exp_range'"),
    (lambda: S.get("cyclic", step_size_up=5, mode="exp_range", gamma=0.0), "gamma must be in"),
    (lambda: S.get("cyclic", step_size_up=5, mode="tri"), "mode must be one of"),
    (
        lambda: S.get("wsd", total_steps=10, warmup_steps=5, decay_steps=6),
        "warmup_steps \\+ decay_steps must be <= total_steps",
    ),
    (lambda: S.get("wsd", total_steps=10, decay_steps=0), "decay_steps must be an integer >= 1"),
    (lambda: S.get("polynomial", total_steps=10, power=-1), "power must be >= 0"),
    (lambda: S.get("linear", total_steps=10, end_factor=float("nan")), "end_factor"),
    (lambda: S.Join((S.Constant(),), (5,)), "one entry fewer"),
    (lambda: S.Join((S.Constant(), S.Constant(), S.Constant()), (5, 5)), "strictly increasing"),
    (
        lambda: S.Join((S.Constant(), S.Constant()), (0,)),
        r"boundaries\[0\] must be an integer >= 1, got 0",
    ),
    (lambda: S.Join((), ()), "non-empty sequence"),
    (lambda: S.Join((S.Constant(), 0.5), (3,)), "non-empty sequence of schedules"),
    (lambda: S.Product(()), "must not be empty"),
    (
        lambda: S.get("one_cycle", total_steps=10).momentum(max_momentum=1.0),
        r"max_momentum must be in \[0, 1\)",
    ),
    (lambda: S.Constant()(-1), "step must be an integer >= 0, got -1"),
    (lambda: S.Constant()(1.5), "step must be an integer >= 0"),
    (lambda: S.Constant()(True), "step must be an integer >= 0"),
    (lambda: S.Constant()(np.array([1, -2])), "step must be an integer >= 0"),
    (lambda: S.Constant()(np.array([True])), "step must be an integer >= 0"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_raises_clear_value_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- review: odd numbers where numbers are expected ------------------------------------------

ODD = [
    (lambda: S.get("cosine", total_steps=10**400), "total_steps must be"),
    (lambda: S.get("cosine", total_steps=10, lr=10**400), "lr must be"),
    (lambda: S.Constant()(10**400), "step must be an integer in \\[0, 9223372036854775807\\]"),
    (lambda: S.get("cosine", total_steps=10, lr=np.array([[1 + 1j]])), "lr must be a number"),
    (lambda: S.get("cosine", total_steps=10, lr=1j), "lr must be a number"),
    (lambda: S.Constant()(np.array([1 + 0j])), "step must be an integer >= 0"),
    (lambda: S.get("multistep", milestones=np.int64(5), total_steps=9), "sequence of integers"),
    (lambda: S.get("multistep", milestones=1j, total_steps=9), "sequence of integers"),
    # ints past int64 (NumPy would overflow later), named with the limit
    (
        lambda: S.get("cosine", total_steps=1e300),
        r"^total_steps must be an integer in \[1, 9223372036854775807\], got 1e\+300$",
    ),
    (lambda: S.get("step", step_size=2**70), "step_size must be an integer in"),
    # an unordered or non-sequence milestones is named
    (lambda: S.get("multistep", milestones={3, 6}), "^milestones must be a sequence of integers"),
    (lambda: S.get("multistep", milestones=None, total_steps=np.array([[9]])), "^total_steps"),
    # an array where one word is expected never reaches `in` (ambiguous truth value)
    (lambda: S.get("cyclic", step_size_up=4, mode=np.array(["triangular"])), "^mode must be one"),
    (lambda: S.get("one_cycle", total_steps=10, anneal=["cos"]), "^anneal must be one of"),
    # a list is refused at construction, not at the first call with a broadcast error
    (
        lambda: S.get("cosine", total_steps=10, lr=[0.1, 0.2]),
        r"^lr must be a number, got \[0.1, 0.2\] \(use a NumPy array",
    ),
    (lambda: S.get("cosine", total_steps=[10, 20]), "^total_steps must be an integer >= 1"),
    (lambda: S.Constant(lr=_torch_tensor()), "^lr must be a number, got a torch tensor$"),
]


def _torch_tensor():
    import torch

    return torch.tensor(0.1)


@pytest.mark.parametrize("make, message", ODD, ids=[str(i) for i in range(len(ODD))])
def test_huge_complex_and_scalar_numpy_inputs_raise_value_error(make, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ComplexWarning must not stand in for the error
        with pytest.raises(ValueError, match=message):
            make()


def test_cosine_restarts_far_past_many_cycles_warns_nothing() -> None:
    """T_mult=1 must not overflow the (unused) geometric branch after ~1024 cycles."""
    s = S.CosineWarmRestarts(T_0=10)
    steps = np.array([10_250, 123_456, 10**9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = s(steps)
        assert s(10_250) == S.CosineWarmRestarts(T_0=10)(0)
    expected = [0.5 * (1 + math.cos(math.pi * (t % 10) / 10)) for t in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cosine:total_steps={[1]: 2}", "total_steps must be an integer >= 1, got '{"),
        ("cosine:eta_min={{}: 1}", "eta_min must be a number"),
        ("cosine:lr=0.1,lr=0.2", "lr is given twice"),
        (None, "schedule spec must be a string"),
        (b"cosine", "schedule spec must be a string"),
    ],
)
def test_from_spec_odd_text_raises_value_error(spec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        S.from_spec(spec, total_steps=10)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: S.Join((S.Constant(), S.Constant()), 10), "boundaries must be a sequence"),
        (lambda: S.Join(S.Constant(), (5,)), "schedules must be a sequence"),
        (lambda: S.Product(S.Constant()), "factors must be a sequence"),
    ],
)
def test_join_and_product_given_one_item_instead_of_a_sequence(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_triangular2_after_a_thousand_cycles_warns_nothing() -> None:
    """2.0 ** (cycle - 1) overflowed (RuntimeWarning) after ~1025 cycles; the amplitude is 0."""
    s = S.Cyclic(step_size_up=10, mode="triangular2", lr=1.0, min_lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s(25_005) == 0.1
        np.testing.assert_array_equal(s(np.array([25_000, 10**9])), [0.1, 0.1])
        assert s.momentum()(25_005) == 0.9
    assert s(25) == 0.1 + 0.9 * 0.5 * 0.5  # cycle 2, halfway up: unchanged


@pytest.mark.parametrize("name", ["cosine", "step", "one_cycle", "cyclic", "wsd", "polynomial"])
def test_array_arguments_of_different_k_fail_at_construction_naming_them(name: str) -> None:
    """total_steps for 2 settings and lr for 3 used to build, then fail at the first call
    with NumPy's anonymous broadcast error."""
    with pytest.raises(ValueError, match=r"total_steps \(2, 1\).*lr \(3, 1\)|lr \(3, 1\).*total"):
        S.get(name, total_steps=np.array([[100], [200]]), lr=np.array([[1.0], [0.5], [0.1]]))


# --- plotting never touches the user's matplotlib setup --------------------------------------

_PLOT_WITH_A_CHOSEN_BACKEND = """
import sys
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
from optimlab import schedules
fig = schedules.plot(["cosine", "wsd"], 20, path=sys.argv[1])
print(matplotlib.get_backend(), plt.get_fignums(), type(fig).__name__)
"""

_PLOT_WITHOUT_PYPLOT = """
import sys
import matplotlib
from optimlab import schedules
schedules.plot("cosine", 20, path=sys.argv[1])
print("matplotlib.pyplot" in sys.modules)
"""


def test_plot_never_switches_a_backend_the_user_chose(tmp_path) -> None:
    """A notebook's backend stays what it was: plot builds a Figure of its own (no pyplot
    figure is registered, so nothing is shown twice or leaks), and still saves a PNG."""
    import subprocess
    import sys

    path = tmp_path / "s.png"
    run = subprocess.run(
        [sys.executable, "-c", _PLOT_WITH_A_CHOSEN_BACKEND, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == ["svg", "[]", "Figure"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = subprocess.run(
        [sys.executable, "-c", _PLOT_WITHOUT_PYPLOT, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == ["False"]  # pyplot (and its backend choice) never loaded
