"""Mixed precision (contract 23): bf16 autocast, fp16 with dynamic loss scaling."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from optimlab.train import LossScaler, NonFiniteGradientError, TrainStep


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops: one thread avoids oversubscribing the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def problem(seed: int = 0) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    x = torch.randn(64, 8)
    y = torch.tanh(x @ torch.randn(8, 1)) + 0.01 * torch.randn(64, 1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    return model, (x, y)


def same(a: object, b: object) -> bool:
    """Exact (bitwise) equality of nested state: tensors, numbers, lists, dicts."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def mse(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(batch[0]).float(), batch[1])


def final_loss(precision: str, steps: int = 100) -> tuple[float, float]:
    model, batch = problem()
    with torch.no_grad():
        start = float(mse(model, batch))
    trainer = TrainStep(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        mse,
        precision=precision,
        accumulation_steps=2,
        clip_norm=1.0,
    )
    for _ in range(steps):
        trainer.step(batch)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    with torch.no_grad():
        return start, float(mse(model, batch))


def test_bf16_and_fp16_converge_to_within_5_percent_of_fp32() -> None:
    start, fp32 = final_loss("fp32")
    assert fp32 < 0.02 * start
    for precision in ("bf16", "fp16"):
        _, low = final_loss(precision)
        assert low == pytest.approx(fp32, rel=0.05), precision


def test_fp16_overflow_steps_are_skipped_and_the_scale_adapts() -> None:
    model, batch = problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10, gamma=0.9)
    overflow_at = {3, 4, 12}
    calls = {"step": 0}

    def loss_fn(m: torch.nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        loss = mse(m, b)
        return loss * 1e38 if calls["step"] in overflow_at else loss  # x scale -> inf

    scaler = LossScaler(2.0**12, growth_interval=5)
    trainer = TrainStep(
        model, opt, loss_fn, scheduler=sched, precision="fp16", scaler=scaler, accumulation_steps=2
    )
    with torch.no_grad():
        start = float(mse(model, batch))
    scales, taken = [], 0
    for i in range(80):
        calls["step"] = i
        params = copy.deepcopy(model.state_dict())
        state = copy.deepcopy(opt.state_dict())
        report = trainer.step(batch)
        scales.append(report.scale)
        if i in overflow_at:
            assert report.skipped
        if report.skipped:  # injected, or a natural overflow once the scale has grown
            assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
            assert same(opt.state_dict(), state)  # optimizer state unchanged
            assert scaler.scale == report.scale * 0.5
        else:
            taken += 1
        assert trainer.step_count == taken == report.step and sched.last_epoch == taken
    # Overflows at steps 3 and 4 halve the scale twice; 5 good steps double it once.
    assert scales[:6] == [2.0**12, 2.0**12, 2.0**12, 2.0**12, 2.0**11, 2.0**10]
    assert scales[10] == 2.0**11
    assert trainer.skipped_count == 80 - taken >= 3
    with torch.no_grad():
        assert float(mse(model, batch)) < 0.1 * start  # training still converges


def test_fp16_inf_gradient_from_a_hook_is_skipped() -> None:
    model, batch = problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    poison = {"on": False}
    model[0].weight.register_hook(lambda g: g * math.inf if poison["on"] else g)
    trainer = TrainStep(model, opt, mse, precision="fp16")
    trainer.step(batch)
    params = copy.deepcopy(model.state_dict())
    buf = opt.state[model[0].weight]["momentum_buffer"].clone()
    poison["on"] = True
    report = trainer.step(batch)
    assert report.skipped and trainer.scaler.scale == 2.0**15
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    assert torch.equal(opt.state[model[0].weight]["momentum_buffer"], buf)


def test_fp16_gradients_are_unscaled_exactly_once() -> None:
    model, batch = problem()
    reference = copy.deepcopy(model)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = mse(reference, batch)
    loss.backward()
    trainer = TrainStep(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        mse,
        precision="fp16",
        scaler=LossScaler(2.0**10),
    )
    report = trainer.step(batch)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=2e-2, atol=1e-4)
    ref_norm = float(torch.cat([q.grad.reshape(-1) for q in reference.parameters()]).norm())
    assert report.grad_norm == pytest.approx(ref_norm, rel=2e-2)


def test_persistent_nan_raises_once_the_scale_bottoms_out() -> None:
    model, batch = problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = LossScaler(4.0, min_scale=1.0)
    trainer = TrainStep(
        model, opt, lambda m, b: mse(m, b) * math.nan, precision="fp16", scaler=scaler
    )
    before = copy.deepcopy(model.state_dict())
    assert trainer.step(batch).skipped and trainer.step(batch).skipped  # 4 -> 2 -> 1
    with pytest.raises(NonFiniteGradientError, match="below min_scale=1"):
        trainer.step(batch)
    assert scaler.scale == 1.0 and trainer.step_count == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    trainer.loss_fn = mse  # the next step works: the scaler is ready for a new step
    assert not trainer.step(batch).skipped


def test_loss_scaler_rules() -> None:
    scaler = LossScaler(8.0, growth_interval=2, backoff_factor=0.25, max_scale=32.0)
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([8.0, 16.0])
    assert scaler.unscale_([p]) and p.grad.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="already called"):
        scaler.unscale_([p])
    for _ in range(6):
        scaler.update(found_inf=False)
    assert scaler.scale == 32.0  # 8 -> 16 -> 32, capped
    scaler.update(found_inf=True)
    assert scaler.scale == 8.0 and scaler.good_steps == 0
    fresh = LossScaler()
    fresh.load_state_dict(scaler.state_dict())
    assert fresh.state_dict() == scaler.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"init_scale": 0.0}, "init_scale must be > 0, got 0.0"),
        ({"init_scale": math.nan}, "init_scale must be a finite number > 0, got nan"),
        ({"growth_factor": 1.0}, "growth_factor must be > 1, got 1.0"),
        ({"backoff_factor": 1.0}, r"backoff_factor must be in \(0, 1\), got 1.0"),
        ({"growth_interval": 0}, "growth_interval must be an integer >= 1, got 0"),
        ({"min_scale": 0.0}, r"min_scale must be in \(0, 65536\], got 0.0"),
        ({"max_scale": 2.0}, "max_scale must be >= 65536, got 2.0"),
    ],
)
def test_loss_scaler_invalid(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LossScaler(**kwargs)


def test_scaler_only_with_fp16() -> None:
    model, _ = problem()
    with pytest.raises(ValueError, match="scaler is only used with precision='fp16'"):
        TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mse, scaler=LossScaler())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_converges(precision: str) -> None:
    model, (x, y) = problem()
    model, batch = model.cuda(), (x.cuda(), y.cuda())
    with torch.no_grad():
        start = float(mse(model, batch))
    trainer = TrainStep(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        mse,
        precision=precision,
        accumulation_steps=2,
        clip_norm=1.0,
    )
    assert trainer.device_type == "cuda"
    for _ in range(100):
        trainer.step(batch)
    with torch.no_grad():
        assert float(mse(model, batch)) < 0.05 * start
