"""The engine: batched == sequential, divergence isolation (F8/F9), schedules, records, errors.

Batched and one-at-a-time runs are two computations of the same mathematics: they agree
within ``tests/numerics.py``'s tolerance (``_close``). Isolation is bitwise (``_same``):
a setting's numbers in a batch that also holds diverging settings equal its numbers in
the batch without them (the same operations on the same values).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from numerics import assert_close

import optimlab
from optimlab import problems, schedules
from optimlab.lab.engine import Setting, Trace, run

# Rules that take parameters of any shape. Muon takes matrices only: it runs on these
# problems once parameters are routed by shape (issue 13, item 4).
ANY_SHAPE = [n for n in optimlab.list_optimizers() if optimlab.get_rule(n).param_ndim is None]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _same(a: Trace, b: Trace) -> None:
    """The same operations on the same values (isolation, reruns): bitwise."""
    assert a.status == b.status and a.diverged_step == b.diverged_step
    for field in ("loss", "lr", "grad_norm", "update_norm"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.evals == b.evals
    if a.trajectory is not None or b.trajectory is not None:
        np.testing.assert_array_equal(a.trajectory, b.trajectory)


def _close(a: Trace, b: Trace) -> None:
    """Two computations of one run (batched vs alone): within the numerics tolerance."""
    assert a.status == b.status and a.diverged_step == b.diverged_step
    for field in ("loss", "grad_norm", "update_norm"):
        assert_close(getattr(a, field), getattr(b, field), what=field)
    np.testing.assert_array_equal(a.lr, b.lr)  # the same schedule table, copied
    assert [s for s, _ in a.evals] == [s for s, _ in b.evals]
    for (_, ma), (_, mb) in zip(a.evals, b.evals, strict=True):
        assert ma.keys() == mb.keys()
        for k in ma:
            assert_close(ma[k], mb[k], what=k)
    if a.trajectory is not None or b.trajectory is not None:
        assert_close(a.trajectory, b.trajectory, what="trajectory")


def test_adam_on_rosenbrock_matches_the_equations():
    """Independent reference: Adam written out in the test; loss[t] is before update t."""
    lrs, steps, (b1, b2, eps) = [1e-3, 1e-2, 0.1], 200, (0.9, 0.999, 1e-8)
    traces = run("rosenbrock", [Setting("adam", {"lr": lr}) for lr in lrs], steps)
    f = problems.get("rosenbrock")
    for lr, tr in zip(lrs, traces, strict=True):
        x, m, v, losses, path = np.array([-1.0, 1.0]), 0.0, 0.0, [], [np.array([-1.0, 1.0])]
        for t in range(1, steps + 1):
            losses.append(f.loss(x))
            g = f.grad(x)
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            path.append(x)
        assert tr.status == "finished" and tr.diverged_step is None
        np.testing.assert_allclose(tr.loss, losses, rtol=1e-9)
        np.testing.assert_allclose(tr.trajectory, path, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(tr.lr, np.full(steps, lr))
        assert tr.evals[-1][0] == steps
        np.testing.assert_allclose(tr.evals[-1][1]["loss"], f.loss(x), rtol=1e-9)


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "ravine", "saddle", "rastrigin"])
def test_batched_equals_sequential_on_test_functions(name):
    settings = [
        Setting("adam", {"lr": lr, "beta1": b1}) for lr in (1e-3, 3e-2) for b1 in (0.8, 0.9)
    ] + [
        Setting("momentum", {"lr": 1e-3, "momentum": 0.5}, "warmup_cosine"),
        Setting("momentum", {"lr": 2e-3}, "step", {"step_size": 10, "gamma": 0.5}),
        Setting("momentum", {"lr": 1e-3, "weight_decay": 0.1}),
        Setting("adam", {"lr": 1e-2, "amsgrad": True}),
    ]
    p = problems.get(name, start="random")
    settings = [
        Setting(s.optimizer, s.hyperparams, s.schedule, s.schedule_kwargs, seed=i % 3)
        for i, s in enumerate(settings)
    ]
    batched = run(p, settings, 60, eval_every=20)
    alone = run(p, settings, 60, eval_every=20, batched=False)
    for a, b, s in zip(batched, alone, settings, strict=True):
        assert a.setting is s and b.setting is s
        _close(a, b)
        np.testing.assert_array_equal(a.trajectory[0], p.init(s.seed))


@pytest.mark.parametrize("opt", ANY_SHAPE)
def test_every_optimizer_runs_on_every_test_function(opt):
    for name in problems.list("function"):
        p = problems.get(name)
        settings = [Setting(opt, {"lr": 1e-4}), Setting(opt, {"lr": 1e-3}, seed=1)]
        batched = run(p, settings, 8)
        alone = run(p, settings, 8, batched=False)
        for a, b in zip(batched, alone, strict=True):
            assert a.status == "finished" and len(a.loss) == 8 and np.isfinite(a.loss).all()
            _close(a, b)
        assert_close(batched[0].loss[0], p.loss(p.init(0)))


def test_schedules_are_applied_per_setting():
    specs = [
        (None, {}),
        ("cosine", {}),
        ("warmup_linear", {"warmup_steps": 5}),
        ("step", {"step_size": 7, "gamma": 0.3}),
    ]
    settings = [Setting("sgd", {"lr": 1e-3 * (i + 1)}, s, kw) for i, (s, kw) in enumerate(specs)]
    steps = 30
    traces = run("ravine", settings, steps)
    for i, ((s, kw), tr) in enumerate(zip(specs, traces, strict=True)):
        sched = schedules.get(s, total_steps=steps, **kw) if s else (lambda t: 1.0)
        np.testing.assert_allclose(
            tr.lr, [1e-3 * (i + 1) * float(sched(t)) for t in range(steps)], rtol=1e-15
        )
        _close(tr, run("ravine", [settings[i]], steps)[0])
    # SGD on a quadratic: x_{t+1} = (1 - lr_t lam) x_t, coordinate by coordinate
    p, tr = problems.get("ravine"), traces[2]
    x = p.init(0)
    for t in range(steps):
        x = x * (1 - tr.lr[t] * p.curvatures)
    np.testing.assert_allclose(tr.trajectory[-1], x, rtol=1e-12)


def test_slow_divergence_is_caught_and_isolated():
    """F9: SGD just past 2/kappa on a ravine grows ~1.44x per step without NaN."""
    p = problems.get("ravine", condition=100.0)
    ok = [Setting("sgd", {"lr": 1e-3}), Setting("momentum", {"lr": 1e-3})]
    ok = [Setting("sgd", {"lr": lr}) for lr in (1e-3, 1e-2)]
    bad = Setting("sgd", {"lr": 0.022})
    traces = run(p, [ok[0], bad, ok[1]], 400, eval_every=100)
    tr = traces[1]
    l0 = p.loss(p.init(0))
    ref = [l0]
    x = p.init(0)
    while ref[-1] <= 1e3 * l0:
        x = x * (1 - 0.022 * p.curvatures)
        ref.append(p.loss(x))
    assert tr.status == "diverged" and tr.diverged_step == len(ref) - 1
    np.testing.assert_allclose(tr.loss, ref, rtol=1e-12)
    assert np.isnan(tr.update_norm[-1]) and np.isfinite(tr.update_norm[:-1]).all()
    assert len(tr.lr) == len(tr.grad_norm) == len(tr.time) == len(tr.loss)
    assert tr.trajectory.shape == (len(ref), 2) and tr.evals[-1][0] < len(ref)
    clean = run(p, ok, 400, eval_every=100)
    for a, b, s in zip([traces[0], traces[2]], clean, ok, strict=True):
        assert a.status == "finished"
        _close(a, b)  # the diverging row, dropped, changed nothing beyond rounding
        _close(a, run(p, [s], 400, eval_every=100)[0])
    # with a lax rule it runs on to 1e30 and beyond, still finite, still stopped
    far = run(p, [bad], 400, divergence_factor=1e40)[0]
    assert far.status == "diverged" and far.loss[-1] > 1e40 * l0 and far.loss[-2] > 1e30
    assert np.isfinite(far.loss).all()


class _Storm(problems.Ravine):
    """A ravine whose gradient is NaN wherever |y| > 0.6."""

    def gradient(self, x):
        g = super().gradient(x)
        return np.where(np.abs(x[..., 1:]) > 0.6, np.nan, g)


def test_nan_storm_in_one_setting_leaves_the_others_untouched():
    """F8: NaN gradients in one setting of a batch mark it diverged; the others give the
    numbers of a batch without it (no NaN, no change beyond rounding)."""
    p = _Storm()
    ok = [
        Setting("adam", {"lr": 1e-3}),
        Setting("sgd", {"lr": 1e-2}),
        Setting("adam", {"lr": 1e-2}, seed=1),
    ]
    stormy = [
        Setting("sgd", {"lr": 0.025}),
        Setting("adam", {"lr": 1e6}),
        Setting("adam", {"lr": 1.5}),
    ]
    mixed = run(p, [ok[0], stormy[0], ok[1], stormy[1], ok[2], stormy[2]], 50)
    clean = run(p, ok, 50)
    for a, b in zip(mixed[0::2], clean, strict=True):
        assert a.status == "finished"
        _close(a, b)  # batches of other sizes: the same numbers within rounding
    st = mixed[1]  # sgd: y = 0.5 -> -0.75 after one step, where the gradient is NaN
    assert st.status == "diverged" and st.diverged_step == 1 and len(st.loss) == 2
    assert np.isfinite(st.loss).all() and np.isnan(st.grad_norm[-1])
    assert mixed[3].status == "diverged" and mixed[3].diverged_step == 1
    assert mixed[5].status == "diverged"
    assert np.isfinite(st.update_norm[:-1]).all() and np.isnan(st.update_norm[-1])


def test_progress_counts_every_setting_step():
    seen: list[int] = []
    settings = [Setting("sgd", {"lr": lr}) for lr in (1e-3, 0.03, 1e-2)]
    traces = run("ravine", settings, 50, progress=seen.append)
    assert traces[1].status == "diverged"
    assert seen == sorted(seen) and seen[-1] == 3 * 50
    seen.clear()
    run("ravine", settings, 50, progress=seen.append, batched=False)
    assert seen == sorted(seen) and seen[-1] == 3 * 50


def test_evals_and_time():
    tr = run("beale", [Setting("adam", {"lr": 0.01})], 25, eval_every=10)[0]
    assert [s for s, _ in tr.evals] == [0, 10, 20, 25]
    assert set(tr.evals[0][1]) == {"loss", "distance"}
    assert tr.evals[0][1]["loss"] == tr.loss[0] and tr.evals[1][1]["loss"] == tr.loss[10]
    assert len(tr.time) == 25 and (np.diff(tr.time) >= 0).all() and tr.time[0] >= 0
    tr = run("rosenbrock", [Setting("adam", {"lr": 0.01})], 5)[0]
    assert [s for s, _ in tr.evals] == [5]
    nd = run(problems.get("rosenbrock", dim=4), [Setting("adam", {"lr": 0.01})], 5)[0]
    assert nd.trajectory is None


def test_flags_split_groups_and_keep_order():
    settings = [
        Setting("adam", {"lr": 0.01, "amsgrad": a}, seed=i)
        for i, a in enumerate([True, False, True, False])
    ]
    batched = run("himmelblau", settings, 20)
    for tr, s in zip(batched, settings, strict=True):
        assert tr.setting is s
        _close(tr, run("himmelblau", [s], 20)[0])


def test_bad_input_fails_before_running():
    ok = Setting("adam", {"lr": 0.1})
    cases = [
        ([Setting("adamm", {})], 10, {}, "did you mean 'adam'"),
        ([ok, Setting("adam", {"lr": -1.0})], 10, {}, "lr must be >= 0, got -1.0"),
        ([Setting("adam", {"lr": float("nan")})], 10, {}, "lr must be"),
        ([Setting("sgd", {"lr": 0.1, "foo": 1})], 10, {}, "unknown hyperparameter 'foo'"),
        ([ok], 0, {}, "steps must be an integer >= 1, got 0"),
        ([ok], 10, {"eval_every": 0}, "eval_every must be None or an integer >= 1, got 0"),
        ([ok], 10, {"divergence_factor": 1.0}, "divergence_factor must be > 1, got 1.0"),
        ([ok], 10, {"divergence_factor": True}, "divergence_factor must be a number, got True"),
        (
            [ok],
            10,
            {"divergence_factor": float("inf")},
            "divergence_factor must be a finite number > 1, got inf",
        ),
        ([Setting("adam", {}, "cosinus")], 10, {}, "did you mean 'cosine'"),
        ([Setting("adam", {}, seed=-2)], 10, {}, "seed must be an integer >= 0, got -2"),
        ([Setting("adam", {}, "cosine", {"total_steps": 5})], 10, {}, "must not set total_steps"),
        ([Setting("adam", {}, "warmup_cosine", {"warmup_steps": 50})], 10, {}, "warmup_steps"),
        ([("adam", {})], 10, {}, "settings must be Setting objects"),
    ]
    calls: list[int] = []
    for settings, steps, kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            run("rosenbrock", settings, steps, progress=calls.append, **kw)
    assert calls == []
    assert run("rosenbrock", [], 5) == []
    with pytest.raises(ValueError, match="unknown problem"):
        run("rosenbrockk", [ok], 3)
    with pytest.raises(ValueError, match="problem must be"):
        run(object(), [ok], 3)


def test_torch_backend_of_test_functions_matches_numpy():
    """The same loop on torch tensors (used by the benchmark) gives the NumPy numbers."""
    from optimlab.lab.engine.functions import run_functions
    from optimlab.lab.engine.grouping import plan
    from optimlab.lab.engine.loop import LoopOptions

    settings = [Setting("adam", {"lr": lr}) for lr in (1e-3, 1e-2, 1e-1, 1e6)]
    p = problems.get("rosenbrock")
    (group,) = plan(settings, 100)
    a = run_functions(p, group, 100, LoopOptions())
    b = run_functions(p, group, 100, LoopOptions(), array="torch")
    assert [t.diverged_step for t in a] == [t.diverged_step for t in b] == [None, None, None, 1]
    for x, y in zip(b, a, strict=True):
        _close(x, y)
    for x, y in zip(a, run(p, settings, 100), strict=True):
        _same(x, y)  # engine.run is this NumPy loop: the same computation, bitwise


@hyp_settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(ANY_SHAPE),
            st.floats(-5, 1.5),
            st.integers(0, 2),
            st.sampled_from([None, "cosine", "warmup_linear"]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["rosenbrock", "beale", "himmelblau", "saddle"]),
)
def test_property_any_batch_equals_its_settings_alone(specs, name):
    """Whatever the mix (optimizers, lrs up to 30, seeds, schedules, divergences), every
    setting of a batch gives the numbers it gives alone (within the numerics tolerance)."""
    p = problems.get(name, start="random")
    batch = [Setting(o, {"lr": 10.0**e}, sch, seed=s) for o, e, s, sch in specs]
    together = run(p, batch, 12)
    for tr, s in zip(together, batch, strict=True):
        _close(tr, run(p, [s], 12)[0])


def test_reasonable_settings_reach_the_known_minima():
    """Contract 3 through the engine: each problem is solvable from its start."""
    cases = {
        "rosenbrock": ("adam", 0.02, 1e-4),
        "beale": ("adam", 0.01, 0.05),
        "himmelblau": ("adam", 0.05, 1e-8),
        "ravine": ("momentum", 0.005, 1e-8),
        "saddle": ("sgd", 0.05, 1e-8),
    }
    for name, (opt, lr, tol) in cases.items():
        tr = run(name, [Setting(opt, {"lr": lr})], 3000)[0]
        assert tr.status == "finished" and tr.evals[-1][1]["distance"] < tol, name
    # Rastrigin traps Adam in a local minimum: stationary but not the global one
    tr = run("rastrigin", [Setting("adam", {"lr": 0.05})], 3000)[0]
    end = tr.trajectory[-1]
    assert tr.evals[-1][1]["loss"] > 1 and np.abs(problems.get("rastrigin").grad(end)).max() < 1e-3
