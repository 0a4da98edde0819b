"""train_with_gradient_descent, experiment_learning_rates and compare_optimizers."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import optimlab
from optimlab import functional as F


def parabola(x):
    """f(x) = x^2 on a number."""
    return x * x, 2 * x


def least_squares_problem(rng, n=40, d=3):
    """f(w, b) = mean((X w + b - y)^2) / 2 as a dict of parameters."""
    X = rng.normal(size=(n, d))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.01 * rng.normal(size=n)

    def loss_and_grads(params):
        r = X @ params["w"] + params["b"] - y
        return 0.5 * float(np.mean(r * r)), {"w": X.T @ r / n, "b": np.mean(r)}

    return {"w": np.zeros(d), "b": 0.0}, loss_and_grads


def test_train_matches_closed_form_on_parabola():
    # x_{k+1} = x_k - lr * 2 x_k = (1 - 2 lr) x_k
    for lr in (0.05, 0.3, 0.9):
        got = F.train_with_gradient_descent(3.0, parabola, lr=lr, epochs=25)
        assert got == pytest.approx(3.0 * (1 - 2 * lr) ** 25, rel=1e-12, abs=1e-300)


def test_train_matches_a_hand_written_loop(rng):
    params, f = least_squares_problem(rng)
    before = copy.deepcopy(params)
    got = F.train_with_gradient_descent(params, f, lr=0.2, epochs=30)
    w, b = before["w"].copy(), before["b"]
    for _ in range(30):
        _, g = f({"w": w, "b": b})
        w, b = w - 0.2 * g["w"], b - 0.2 * g["b"]
    np.testing.assert_allclose(got["w"], w, rtol=1e-13)
    assert got["b"] == pytest.approx(b, rel=1e-13)
    np.testing.assert_array_equal(params["w"], before["w"])  # input untouched
    assert params["b"] == before["b"] and f(got)[0] < f(params)[0]


def test_train_stops_at_divergence_without_raising():
    out = F.train_with_gradient_descent(1.0, parabola, lr=1.5, epochs=5000)
    assert math.isfinite(out) and abs(out) > 1e100  # the last finite point before overflow


def test_train_validates(rng):
    with pytest.raises(ValueError, match="lr must be >= 0, got -0.1"):
        F.train_with_gradient_descent(1.0, parabola, lr=-0.1, epochs=3)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0, got -1"):
        F.train_with_gradient_descent(1.0, parabola, lr=0.1, epochs=-1)
    with pytest.raises(ValueError, match="epochs must be an integer"):
        F.train_with_gradient_descent(1.0, parabola, lr=0.1, epochs=2.5)
    assert F.train_with_gradient_descent(1.0, parabola, lr=0.1, epochs=0) == 1.0


def test_experiment_learning_rates_small_good_divergent(rng):
    params, f = least_squares_problem(rng)
    lrs = [1e-4, 0.5, 5.0, 1e3]
    result = F.experiment_learning_rates(params, f, lrs, epochs=200)
    assert list(result) == lrs
    start = f(params)[0]
    assert start * 0.5 < result[1e-4] < start  # too small: barely moved
    assert result[0.5] < 1e-3  # good: near the noise floor
    assert result[5.0] > start and not math.isfinite(result[1e3])  # divergent
    # each value is the loss at the parameters that many GD steps reach
    w = F.train_with_gradient_descent(params, f, 0.5, 200)
    assert result[0.5] == f(w)[0]


def test_experiment_learning_rates_reports_nan_or_inf():
    result = F.experiment_learning_rates(1.0, parabola, [0.1, 1.5], epochs=2000)
    assert result[1.5] == math.inf and result[0.1] < 1e-100
    with pytest.raises(ValueError, match=r"^lrs\[1\] must be a finite number >= 0, got nan$"):
        F.experiment_learning_rates(1.0, parabola, [0.1, float("nan")], epochs=3)


def test_compare_optimizers_three_kinds(rng):
    params, f = least_squares_problem(rng)
    before = copy.deepcopy(params)
    given = optimlab.numpy_optimizer("momentum", lr=0.05)
    curves = F.compare_optimizers(
        {
            "adam": "adam",
            "rmsprop 0.01": ("rmsprop", {"lr": 0.01}),
            "momentum": given,
            "gd 0.3": lambda p, g: F.gradient_descent_step(p, g, 0.3),
        },
        params,
        f,
        epochs=40,
    )
    assert list(curves) == ["adam", "rmsprop 0.01", "momentum", "gd 0.3"]
    start = f(before)[0]
    for name, losses in curves.items():
        assert len(losses) == 40 and losses[0] == start, name
        assert losses[-1] < start, name
    assert given.step == 0  # a copy was used
    np.testing.assert_array_equal(params["w"], before["w"])

    # each curve is exactly what a hand-written loop with the same optimizer gives
    opts = {
        "adam": optimlab.numpy_optimizer("adam"),
        "rmsprop 0.01": optimlab.numpy_optimizer("rmsprop", lr=0.01),
        "momentum": optimlab.numpy_optimizer("momentum", lr=0.05),
    }
    for name, opt in opts.items():
        p, losses = copy.deepcopy(before), []
        for _ in range(40):
            loss, g = f(p)
            losses.append(loss)
            p = opt.update(p, g)
        assert curves[name] == losses, name
    p, losses = copy.deepcopy(before), []
    for _ in range(40):
        loss, g = f(p)
        losses.append(loss)
        p = F.gradient_descent_step(p, g, 0.3)
    assert curves["gd 0.3"] == losses


def test_compare_optimizers_divergence_ends_the_curve():
    curves = F.compare_optimizers(
        {"fine": ("sgd", {"lr": 0.1}), "diverges": ("sgd", {"lr": 1.5})}, 1.0, parabola, 3000
    )
    assert len(curves["fine"]) == 3000
    assert 0 < len(curves["diverges"]) < 3000 and curves["diverges"][-1] == math.inf
    assert all(math.isfinite(x) for x in curves["diverges"][:-1])


def test_compare_optimizers_accepts_a_list_of_names():
    curves = F.compare_optimizers(["sgd", ("adam", {"lr": 0.1})], 2.0, parabola, 5)
    assert list(curves) == ["sgd", "adam"] and all(len(c) == 5 for c in curves.values())


def test_compare_optimizers_in_place_step_does_not_touch_the_start():
    start = np.array([1.0, 2.0])

    def in_place(p, g):
        p -= 0.1 * g
        return p

    curves = F.compare_optimizers({"x": in_place}, start, lambda p: (float(p @ p), 2 * p), 3)
    np.testing.assert_array_equal(start, [1.0, 2.0])
    assert curves["x"] == pytest.approx([5.0, 5.0 * 0.64, 5.0 * 0.64**2])


@pytest.mark.parametrize(
    "spec,message",
    [
        ("adamm", "did you mean 'adam'"),
        (("adam", {"lr": -1.0}), "lr must be >= 0, got -1.0"),
        (("adam", {"betas": (0.9, 0.99)}), "unknown hyperparameter 'betas'"),
        (("adam", 0.1), "hyperparameters must be a dict"),
        (42, "opt_steps['bad'] must be an optimizer name"),
    ],
)
def test_compare_optimizers_bad_specs(spec, message):
    calls = []

    def f(x):
        calls.append(x)
        return parabola(x)

    with pytest.raises(ValueError) as info:
        F.compare_optimizers({"ok": "sgd", "bad": spec}, 1.0, f, 3)
    assert message in str(info.value)
    assert calls == []  # every spec is checked before anything runs
