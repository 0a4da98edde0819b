"""Problems: analytic gradients vs torch autograd, minima, determinism, names and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import assert_close

from optimlab import problems

FUNCTION_CASES = [
    ("rosenbrock", {}),
    ("rosenbrock", {"dim": 5, "b": 10.0}),
    ("beale", {}),
    ("himmelblau", {}),
    ("rastrigin", {}),
    ("rastrigin", {"dim": 4, "amplitude": 3.0}),
    ("ravine", {}),
    ("ravine", {"dim": 6, "condition": 1e4}),
    ("saddle", {}),
]
MODEL_NAMES = ["logistic", "mlp", "least_squares", "shapes", "adding"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _points(p: problems.TestFunction, k: int, seed: int) -> np.ndarray:
    lo, hi = np.array(p.box).T
    return np.random.default_rng(seed).uniform(lo, hi, size=(k, p.dim))


@pytest.mark.parametrize(("name", "kw"), FUNCTION_CASES)
def test_gradient_matches_autograd_batched(name, kw):
    p = problems.get(name, **kw)
    x = _points(p, 16, 0)
    loss, grad = p.loss_and_grad(x)
    xt = torch.tensor(x, requires_grad=True)
    lt = p.loss(xt)
    (gt,) = torch.autograd.grad(lt.sum(), xt)
    assert loss.shape == (16,) and grad.shape == (16, p.dim)
    np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(grad, gt.numpy(), rtol=1e-11, atol=1e-10)
    # the analytic torch gradient equals the NumPy one too
    np.testing.assert_allclose(p.grad(torch.tensor(x)).numpy(), grad, rtol=1e-13, atol=1e-12)
    # a single point gives the row of the batch
    np.testing.assert_allclose(p.grad(x[3]), grad[3], rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(("name", "kw"), FUNCTION_CASES)
def test_gradient_matches_finite_differences(name, kw):
    p = problems.get(name, **kw)
    x = _points(p, 1, 1)[0]
    h = 1e-6
    fd = np.array([(p.loss(x + h * e) - p.loss(x - h * e)) / (2 * h) for e in np.eye(p.dim)])
    np.testing.assert_allclose(p.grad(x), fd, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize(("name", "kw"), FUNCTION_CASES)
def test_minima_are_stationary_with_the_stated_value(name, kw):
    p = problems.get(name, **kw)
    assert p.minima.shape[1] == p.dim
    np.testing.assert_allclose(p.loss(p.minima), p.min_value, atol=1e-12)
    assert np.abs(p.grad(p.minima)).max() < 1e-9
    np.testing.assert_allclose(p.distance(p.minima), 0.0, atol=1e-15)
    # a point in the box is worse than the minimum
    assert (p.loss(_points(p, 32, 2)) > p.min_value).all()


def test_saddle_is_a_saddle():
    p = problems.get("saddle")
    np.testing.assert_array_equal(p.grad(np.zeros(2)), [0.0, 0.0])
    assert p.loss(np.array([0.0, 0.1])) < 0 < p.loss(np.array([0.1, 0.0]))


def test_ravine_condition_number():
    p = problems.get("ravine", dim=3, condition=1e3)
    hess = torch.autograd.functional.hessian(p.loss, torch.zeros(3, dtype=torch.float64))
    eig = np.linalg.eigvalsh(hess.numpy())
    np.testing.assert_allclose(eig.max() / eig.min(), 1e3, rtol=1e-12)


def test_meshgrid_and_grid():
    p = problems.get("rosenbrock")
    X, Y = np.meshgrid(np.linspace(-2, 2, 7), np.linspace(-1, 3, 5))
    Z = p.loss(np.stack([X, Y], axis=-1))
    assert Z.shape == (5, 7)
    assert Z[2, 3] == p.loss(np.array([X[2, 3], Y[2, 3]]))
    gx, gy, gz = problems.get("himmelblau").grid(30)
    assert gx.shape == gy.shape == gz.shape == (30, 30) and np.isfinite(gz).all()


def test_starts():
    rb = problems.get("rosenbrock")
    np.testing.assert_array_equal(rb.init(0), [-1.0, 1.0])
    np.testing.assert_array_equal(rb.init(5), [-1.0, 1.0])  # fixed start ignores the seed
    assert rb.init(0) is not rb.init(0)
    rnd = problems.get("beale", start="random")
    a, b = rnd.init(3), rnd.init(4)
    np.testing.assert_array_equal(a, problems.get("beale", start="random").init(3))
    assert not np.array_equal(a, b)
    lo, hi = np.array(rnd.box).T
    assert ((lo <= a) & (a <= hi)).all()
    np.testing.assert_array_equal(problems.get("saddle", start=[0.5, 0.5]).init(0), [0.5, 0.5])


def test_test_function_torch_task():
    p = problems.get("rosenbrock")
    task = p.torch_task(0)
    loss = task.loss(task.model, next(task.batches))
    assert loss.item() == 4.0 and loss.dtype == torch.float64
    loss.backward()
    # autograd through the torch formula vs the analytic NumPy gradient: equal within rounding
    assert_close(task.model.x.grad, p.grad(p.init(0)))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_problems_are_deterministic_by_seed(name):
    p = problems.get(name, dtype="float64")
    a, b, c = p.torch_task(0), p.torch_task(0), p.torch_task(1)
    for (na, va), (nb, vb) in zip(
        a.model.named_parameters(), b.model.named_parameters(), strict=True
    ):
        assert na == nb and torch.equal(va, vb) and va.dtype == torch.float64
    assert any(
        not torch.equal(va, vc)
        for va, vc in zip(a.model.parameters(), c.model.parameters(), strict=True)
    )
    for _ in range(3):
        ba, bb, bc = next(a.batches), next(b.batches), next(c.batches)
        assert all(torch.equal(x, y) for x, y in zip(ba, bb, strict=True))
    if p.batch_size is not None:
        assert not torch.equal(ba[0], bc[0])
    # a fresh problem object generates the same data
    q = problems.get(name, dtype="float64")
    assert all(np.array_equal(x, y) for x, y in zip(p.data, q.data, strict=True))
    metrics = a.metrics(a.model, a.val_batch)
    assert "loss" in metrics and all(torch.isfinite(v) for v in metrics.values())
    np.testing.assert_allclose(
        metrics["loss"].item(), a.loss(a.model, a.val_batch).item(), rtol=1e-14
    )
    if name in ("logistic", "mlp", "shapes"):
        assert 0 <= metrics["accuracy"].item() <= 1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_problems_train(name):
    """A few Adam steps on each model lower its validation loss (the data are learnable)."""
    p = problems.get(name, dtype="float64")
    task = p.torch_task(0)
    before = task.metrics(task.model, task.val_batch)["loss"].item()
    opt = torch.optim.Adam(task.model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        task.loss(task.model, next(task.batches)).backward()
        opt.step()
    assert task.metrics(task.model, task.val_batch)["loss"].item() < 0.9 * before


@pytest.mark.parametrize("classes", [2, 5, 15, 16, 97])
def test_cross_entropy_is_torchs_on_both_sides_of_the_short_class_path(classes):
    """Fewer than ``SHORT_CLASSES`` classes take the transposed log-softmax; the loss and
    its gradient are torch's cross-entropy within the numerics tolerance, alone and under
    vmap (the lab's batched sweeps), where the settings are a leading axis."""
    from torch.func import grad, vmap

    from optimlab.problems.model_base import SHORT_CLASSES, cross_entropy

    gen = torch.Generator().manual_seed(classes)
    logits = torch.randn(4, 64, classes, dtype=torch.float64, generator=gen) * 3
    y = torch.randint(0, classes, (64,), generator=gen)
    assert (classes < SHORT_CLASSES) == (classes in (2, 5, 15))

    def reference(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(z, y)

    for ours, theirs in (
        (vmap(cross_entropy, in_dims=(0, None))(logits, y), vmap(reference)(logits)),
        (vmap(grad(cross_entropy), in_dims=(0, None))(logits, y), vmap(grad(reference))(logits)),
        (cross_entropy(logits[1], y), reference(logits[1])),
    ):
        assert_close(ours, theirs)


def test_least_squares_optimum_is_the_closed_form():
    p = problems.get("least_squares", dtype="float64", features=5, n_train=40)
    task = p.torch_task(0)
    with torch.no_grad():
        task.model.weight.copy_(torch.as_tensor(p.optimum)[None])
    loss = task.loss(task.model, next(task.batches))
    (g,) = torch.autograd.grad(loss, [task.model.weight])
    assert g.abs().max().item() < 1e-12
    m = task.metrics(task.model, task.val_batch)
    assert abs(m["excess_loss"].item()) < 1e-14 and m["distance"].item() < 1e-14
    np.testing.assert_allclose(loss.item(), p.optimal_loss, rtol=1e-12)


def test_names_and_errors():
    assert {
        "rosenbrock",
        "beale",
        "himmelblau",
        "rastrigin",
        "ravine",
        "saddle",
        "logistic",
        "mlp",
        "least_squares",
        "shapes",
        "adding",
    } <= set(problems.list())
    assert set(problems.list("function")) | set(problems.list("torch")) == set(problems.list())
    with pytest.raises(ValueError, match="did you mean 'rosenbrock'"):
        problems.get("rosenbrok")
    with pytest.raises(ValueError, match="unknown argument 'dimm'; did you mean 'dim'.*known: dim"):
        problems.get("rosenbrock", dimm=3)
    with pytest.raises(ValueError, match="dim must be an integer >= 2, got 1"):
        problems.get("rosenbrock", dim=1)
    with pytest.raises(ValueError, match="condition must be a finite number >= 1, got nan"):
        problems.get("ravine", condition=float("nan"))
    with pytest.raises(ValueError, match="dtype must be"):
        problems.get("mlp", dtype="float16")
    with pytest.raises(ValueError, match="start must be 2 finite numbers"):
        problems.get("beale", start=[1.0])
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        problems.get("beale").init(-1)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        problems.get("beale").loss(np.zeros(3))
    with pytest.raises(ValueError, match="kind must be"):
        problems.list("toy")
    assert all(problems.describe(n) for n in problems.list())
    assert "banana" in problems.describe("rosenbrock")
    with pytest.raises(ValueError, match="did you mean 'saddle'"):
        problems.describe("sadle")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: problems.get("rosenbrock", dim=True), "^dim must be an integer >= 2, got True$"),
        (lambda: problems.get("rosenbrock", dim=2.5), "^dim must be an integer >= 2, got 2.5$"),
        (lambda: problems.get("rosenbrock", dim=2**70), r"^dim must be an integer in \[2, 9"),
        (lambda: problems.get("rosenbrock", b=0), "^b must be > 0, got 0$"),
        (lambda: problems.get("mlp", hidden="64"), "^hidden must be an integer >= 1, got '64'$"),
        (lambda: problems.get("mlp", batch_size=0), "^batch_size must be an integer >= 1, got 0$"),
        (lambda: problems.get("least_squares", n_train=5), r"^n_train must be >= features \(10\)"),
        (lambda: problems.get("least_squares", n_train="x"), "^n_train must be an integer >= 1"),
        (lambda: problems.get("beale").init(np.array([1, 2])), "^seed must be an integer >= 0"),
        (lambda: problems.list(np.array(["torch"])), "^kind must be one of None, 'function'"),
    ],
)
def test_odd_arguments_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_integers_are_accepted_as_sizes():
    p = problems.get("rosenbrock", dim=np.int64(3), b=np.float32(50))
    assert p.dim == 3 and type(p.dim) is int and p.b == 50.0 and type(p.b) is float
    assert problems.get("beale").init(np.int64(2)).shape == (2,)


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = (
        "import sys, optimlab.problems as p; p.get('rosenbrock').loss([0.0, 0.0]); "
        "p.get('mlp').data; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
