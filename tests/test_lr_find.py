"""The LR range test: leaves no trace, suggests a rate inside the known stable range of a
quadratic, stops on divergence, accumulates like one big batch, and validates its input."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import optimlab
from optimlab.train.lr_range_test import LRFindResult, lr_find, lr_range

# --- a least-squares problem with known curvature ------------------------------------------


def least_squares(n: int = 256, d: int = 10):
    g = torch.Generator().manual_seed(1)
    scales = torch.logspace(0, 1, d, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scales
    y = x @ torch.randn(d, generator=g, dtype=torch.float64)
    y = y + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    # loss = mean(r^2)/2 has Hessian X^T X / n; gradient descent is stable iff lr < 2/L
    curvature = float(np.linalg.eigvalsh((x.T @ x / n).numpy())[-1])
    model = torch.nn.Linear(d, 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    return model, x, y, curvature


def mse(model: torch.nn.Module, batch) -> torch.Tensor:
    return 0.5 * ((model(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()


def test_suggestion_falls_inside_the_stable_range_and_divergence_stops_early() -> None:
    model, x, y, L = least_squares()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lr_find(model, mse, [(x, y)], opt, start_lr=1e-6, end_lr=10.0, num_iter=100)
    assert isinstance(res, LRFindResult)
    assert res.suggested_lr is not None
    assert 0.01 / L < res.suggested_lr < 2 / L  # gradient descent converges for lr < 2/L
    assert res.diverged and len(res.lrs) < 100
    assert res.lrs[-1] > 2 / L  # it can only blow up beyond the stability limit
    assert "diverged" in res.stop_reason
    np.testing.assert_allclose(res.lrs, lr_range(1e-6, 10.0, 100, "exp")[: len(res.lrs)])
    assert len(res.losses) == len(res.smoothed) == len(res.lrs)
    with torch.no_grad():
        start = float(mse(model, (x, y)))
    assert res.initial_loss == pytest.approx(start, rel=1e-12)


def test_linear_mode_and_smoothing_formula() -> None:
    model, x, y, L = least_squares()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lr_find(
        model,
        mse,
        [(x, y)],
        opt,
        start_lr=1e-4,
        end_lr=1.5 / L,
        num_iter=40,
        mode="linear",
        smooth=0.3,
    )
    assert not res.diverged and len(res.lrs) == 40
    np.testing.assert_allclose(np.diff(res.lrs), (1.5 / L - 1e-4) / 39, rtol=1e-9)
    assert 0 < res.suggested_lr < 2 / L
    # debiased EMA written out
    avg, expect = 0.0, []
    for i, loss in enumerate(res.losses):
        avg = 0.7 * avg + 0.3 * loss
        expect.append(avg / (1 - 0.7 ** (i + 1)))
    np.testing.assert_allclose(res.smoothed, expect, rtol=1e-13)
    # the losses are those of plain gradient descent at the rates tried (loss after step i)
    w = torch.zeros(x.shape[1], dtype=torch.float64)
    for i, lr in enumerate(res.lrs):
        w = w - lr * (x.T @ (x @ w - y)) / x.shape[0]
        assert res.losses[i] == pytest.approx(float(0.5 * ((x @ w - y) ** 2).mean()), rel=1e-10)


def test_nan_loss_counts_as_divergence() -> None:
    model, x, y, _ = least_squares()
    calls = {"n": 0}

    def loss_fn(m, b):
        calls["n"] += 1
        out = mse(m, b)
        return out * float("nan") if calls["n"] > 6 else out

    res = lr_find(
        model, loss_fn, [(x, y)], torch.optim.SGD(model.parameters(), lr=0.1), num_iter=50
    )
    assert res.diverged and len(res.losses) == 6


def test_accumulation_equals_one_big_batch() -> None:
    model, x, y, _ = least_squares(n=256)
    kw = dict(start_lr=1e-5, end_lr=1.0, num_iter=30)
    whole = lr_find(model, mse, [(x, y)], torch.optim.SGD(model.parameters(), lr=0.1), **kw)
    halves = [(x[:128], y[:128]), (x[128:], y[128:])]
    acc = lr_find(
        model, mse, halves, torch.optim.SGD(model.parameters(), lr=0.1), accumulation_steps=2, **kw
    )
    np.testing.assert_allclose(acc.losses, whole.losses, rtol=1e-11)
    np.testing.assert_array_equal(acc.lrs, whole.lrs)
    assert acc.suggested_lr == whole.suggested_lr


def test_val_batch_records_validation_loss() -> None:
    model, x, y, L = least_squares()
    val = (x[:64], y[:64])
    res = lr_find(
        model,
        mse,
        [(x, y)],
        torch.optim.SGD(model.parameters(), lr=0.1),
        start_lr=1e-4,
        end_lr=1 / L,
        num_iter=20,
        mode="linear",
        val_batch=val,
    )
    w = torch.zeros(x.shape[1], dtype=torch.float64)
    for i, lr in enumerate(res.lrs):
        w = w - lr * (x.T @ (x @ w - y)) / x.shape[0]
        ref = 0.5 * ((val[0] @ w - val[1]) ** 2).mean()
        assert res.losses[i] == pytest.approx(float(ref), rel=1e-10)


def test_reiterable_batches_restart_and_are_iterated_once_per_pass() -> None:
    model, x, y, _ = least_squares()

    class Counting:
        def __init__(self) -> None:
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            return iter([(x[:128], y[:128]), (x[128:], y[128:])])

    data = Counting()
    res = lr_find(
        model, mse, data, torch.optim.SGD(model.parameters(), lr=0.1), num_iter=9, end_lr=1e-3
    )
    assert len(res.losses) == 9 and data.passes == 5  # 10 batches drawn, 2 per pass


def test_finite_iterator_that_runs_out() -> None:
    model, x, y, _ = least_squares()
    res = lr_find(
        model, mse, iter([(x, y)] * 5), torch.optim.SGD(model.parameters(), lr=0.1), num_iter=50
    )
    assert len(res.losses) == 4 and "ran out" in res.stop_reason
    with pytest.raises(ValueError, match="too few batches"):
        lr_find(model, mse, iter([]), torch.optim.SGD(model.parameters(), lr=0.1))


# --- leaves no trace ---------------------------------------------------------------------------


class Net(torch.nn.Module):
    """BatchNorm buffers, dropout (uses the RNG), a buffer replaced in forward, a frozen layer,
    and a loss that draws from NumPy's and Python's global RNGs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(6, 8),
            torch.nn.BatchNorm1d(8),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(8, 1),
        )
        self.frozen = torch.nn.Linear(6, 1)
        self.frozen.requires_grad_(False)
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls = self.calls + 1  # a new tensor object each call
        self.python_calls = getattr(self, "python_calls", 0) + 1  # a plain attribute
        return self.body(x) + self.frozen(x) + self.outside.sum()


def net_loss(model, batch) -> torch.Tensor:
    noise = float(np.random.rand()) + random.random()  # consume the global RNGs
    return ((model(batch[0]) - batch[1]) ** 2).mean() + 1e-3 * noise


def _everything(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "objects": {k: id(v) for k, v in model.state_dict(keep_vars=True).items()},
        "grads": {
            k: None if p.grad is None else (id(p.grad), p.grad.clone())
            for k, p in model.named_parameters()
        },
        "training": [m.training for m in model.modules()],
        "opt": _clone(opt.state_dict()),
        "opt_state_ids": {id(p): {k: id(v) for k, v in s.items()} for p, s in opt.state.items()},
        "groups": [{k: _clone(v) for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "rng": (torch.get_rng_state(), np.random.get_state(), random.getstate()),
        "outside": (model.outside.detach().clone(), _clone(model.outside.grad)),
        "attrs": (sorted(vars(opt)), getattr(model, "python_calls", None)),
    }


def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_clone(v) for v in x)
    return x


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


def _make(kind: str):
    torch.manual_seed(0)
    model = Net().double()
    # optimized but not the model's: a plain tensor attribute, not a registered parameter
    outside = torch.tensor([0.5, -0.25], dtype=torch.float64, requires_grad=True)
    model.outside = outside
    groups = [
        {"params": model.body[0].parameters(), "lr": 0.01},
        {"params": [*model.body[1].parameters(), *model.body[4].parameters(), outside]},
    ]
    if kind == "torch_adam":
        opt = torch.optim.Adam(groups, lr=0.003, weight_decay=0.01)
    elif kind == "torch_sgd":
        opt = torch.optim.SGD(groups, lr=0.003, momentum=0.9, nesterov=True)
    else:
        opt = optimlab.create_optimizer("adam", groups, lr=0.003)
    g = torch.Generator().manual_seed(3)
    data = [
        (
            torch.randn(16, 6, generator=g, dtype=torch.float64),
            torch.randn(16, 1, generator=g, dtype=torch.float64),
        )
        for _ in range(4)
    ]
    for batch in data[:3]:  # some optimizer state and BatchNorm statistics already
        opt.zero_grad()
        net_loss(model, batch).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    net_loss(model, data[3]).backward()  # leave gradients in place ...
    model.body[4].weight.grad = None  # ... except on one parameter
    model.eval()
    model.body[3].train()  # mixed modes must come back as they were
    torch.optim.lr_scheduler.StepLR(opt, step_size=5)  # its step wrapper marks opt when used
    assert not hasattr(opt, "_opt_called")
    return model, opt, data


@pytest.mark.parametrize("kind", ["torch_adam", "torch_sgd", "optimlab_adam"])
@pytest.mark.parametrize("val", [False, True])
def test_leaves_no_trace(kind: str, val: bool) -> None:
    model, opt, data = _make(kind)
    np.random.seed(5)
    random.seed(5)
    before = _everything(model, opt)
    res = lr_find(
        model,
        net_loss,
        data,
        opt,
        start_lr=1e-5,
        end_lr=100.0,
        num_iter=40,
        accumulation_steps=2,
        val_batch=data[0] if val else None,
    )
    assert len(res.losses) > 3
    after = _everything(model, opt)
    for key in before:
        assert _same(before[key], after[key]), key
    # and training from here gives what it would have given without the range test
    model2, opt2, _ = _make(kind)
    for m, o in ((model, opt), (model2, opt2)):
        torch.manual_seed(9)
        o.zero_grad()
        net_loss(m, data[1]).backward()
        o.step()
    assert _same(model.state_dict(), model2.state_dict())


def test_restores_after_an_error() -> None:
    model, opt, data = _make("torch_adam")
    before = _everything(model, opt)
    calls = {"n": 0}

    def failing(m, b):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("boom")
        return net_loss(m, b)

    with pytest.raises(RuntimeError, match="boom"):
        lr_find(model, failing, data, opt, num_iter=20)
    after = _everything(model, opt)
    for key in before:
        assert _same(before[key], after[key]), key


def test_fresh_optimizer_state_is_removed_again() -> None:
    model, x, y, _ = least_squares()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    lr_find(model, mse, [(x, y)], opt, num_iter=10)
    assert len(opt.state) == 0 and opt.param_groups[0]["lr"] == 0.1


def test_package_attribute_is_the_function() -> None:
    import optimlab.train.lr_range_test  # importing the module must not shadow the function

    assert optimlab.lr_find is optimlab.train.lr_range_test.lr_find
    model, x, y, _ = least_squares()
    res = optimlab.lr_find(
        model, mse, [(x, y)], torch.optim.SGD(model.parameters(), lr=0.1), num_iter=10
    )
    assert isinstance(res, LRFindResult)


def test_task_helper_with_registry_optimizer() -> None:
    from optimlab import problems
    from optimlab.train.lr_range_test import lr_find_task

    task = problems.get("least_squares").torch_task(0)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    res = lr_find_task(task, "momentum", num_iter=60, start_lr=1e-5, end_lr=10.0)
    assert res.suggested_lr is not None and 1e-5 <= res.suggested_lr <= 10.0
    assert _same(before, dict(task.model.state_dict()))
    res_val = lr_find_task(
        task, "adam", hyperparams={"betas": (0.9, 0.99)}, num_iter=20, use_val_batch=True
    )
    assert len(res_val.losses) > 0
    with pytest.raises(ValueError, match="must not set lr"):
        lr_find_task(task, "sgd", hyperparams={"lr": 0.1})
    with pytest.raises(ValueError, match="unknown optimizer"):
        lr_find_task(task, "adamm")


def test_plot_writes_png(tmp_path) -> None:
    model, x, y, _ = least_squares()
    res = lr_find(
        model, mse, [(x, y)], torch.optim.SGD(model.parameters(), lr=0.1), num_iter=60, end_lr=1.0
    )
    path = tmp_path / "lr.png"
    fig = res.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes[0].get_xscale() == "log"
    assert "suggested lr" in str(res)


def test_plot_keeps_the_backend_the_user_chose(tmp_path) -> None:
    """A notebook's backend stays: plotting never switches it (as matplotlib.use would)."""
    import matplotlib

    model, x, y, _ = least_squares()
    res = lr_find(model, mse, [(x, y)], torch.optim.SGD(model.parameters(), lr=0.1), num_iter=20)
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        fig = res.plot(tmp_path / "lr.png")
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
        assert fig.axes[0].get_xlabel() == "learning rate"
    finally:
        matplotlib.use(before)


BAD = [
    ({"start_lr": 0.0}, "start_lr must be > 0, got 0.0"),
    ({"start_lr": float("nan")}, "start_lr must be a finite number > 0, got nan"),
    ({"start_lr": True}, "start_lr must be a number, got True"),
    ({"end_lr": 1e-8}, r"end_lr must be > start_lr \(1e-07\), got 1e-08"),
    ({"end_lr": float("inf")}, "end_lr must be a finite number, got inf"),
    ({"num_iter": 1}, "num_iter must be an integer >= 2, got 1"),
    ({"num_iter": 10.5}, "num_iter must be an integer >= 2, got 10.5"),
    ({"mode": "log"}, "mode must be one of 'exp', 'linear', got 'log'"),
    ({"smooth": 0.0}, r"smooth must be in \(0, 1\], got 0.0"),
    ({"smooth": 1.5}, r"smooth must be in \(0, 1\]"),
    ({"diverge_threshold": 1.0}, "diverge_threshold must be > 1, got 1.0"),
    ({"accumulation_steps": 0}, "accumulation_steps must be an integer >= 1, got 0"),
    ({"skip_start": -1}, "skip_start must be an integer >= 0"),
]


@pytest.mark.parametrize("kw, message", BAD, ids=[m for _, m in BAD])
def test_bad_input(kw: dict, message: str) -> None:
    model, x, y, _ = least_squares()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    with pytest.raises(ValueError, match=message):
        lr_find(model, mse, [(x, y)], opt, **kw)
    assert torch.equal(model.weight, before) and opt.param_groups[0]["lr"] == 0.1


def test_bad_objects() -> None:
    model, x, y, _ = least_squares()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        lr_find(lambda b: b, mse, [(x, y)], opt)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer"):
        lr_find(model, mse, [(x, y)], "sgd")
    with pytest.raises(ValueError, match="loss_fn must be callable"):
        lr_find(model, 3, [(x, y)], opt)
    with pytest.raises(ValueError, match="batches must be iterable"):
        lr_find(model, mse, 3, opt)


def test_task_helper_names_a_bad_start_lr() -> None:
    from optimlab import problems
    from optimlab.train.lr_range_test import lr_find_task

    with pytest.raises(ValueError, match=r"start_lr must be > 0, got -1"):
        lr_find_task(problems.get("least_squares").torch_task(0), "sgd", start_lr=-1.0)


def test_tensor_hyperparameters_inside_tuples_keep_their_identity() -> None:
    """Adam(betas=(tensor, tensor)): the same tensor objects, with their values, come back
    (they used to be replaced by deep copies, cutting links the caller holds to them)."""
    model, x, y, _ = least_squares()
    b0, b1 = torch.tensor(0.9, dtype=torch.float64), torch.tensor(0.999, dtype=torch.float64)
    lr = torch.tensor(0.01, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(b0, b1))
    opt.param_groups[0]["extra"] = [torch.tensor([1.0, 2.0]), "plain"]  # a list value too
    extra = opt.param_groups[0]["extra"]
    first = extra[0]

    def loss(m, b):
        b0.add_(0.01)  # changed in place during the test: must be put back
        extra[0] = torch.zeros(2)
        return mse(m, b)

    lr_find(model, loss, [(x, y)], opt, num_iter=5)
    g = opt.param_groups[0]
    assert g["lr"] is lr and g["betas"][0] is b0 and g["betas"][1] is b1
    assert float(b0) == 0.9 and float(b1) == 0.999
    assert type(g["betas"]) is tuple
    assert g["extra"] is extra and extra[0] is first and extra[1] == "plain"
    assert torch.equal(first, torch.tensor([1.0, 2.0]))


def test_counts_accept_what_the_one_vocabulary_accepts() -> None:
    """NumPy integers and integral floats are counts (core.checks.integer), returned as int."""
    model, x, y, _ = least_squares()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lr_find(model, mse, [(x, y)], opt, num_iter=np.int64(12), accumulation_steps=1.0)
    assert len(res.lrs) <= 12 and res.lrs.shape[0] == len(res.losses)
