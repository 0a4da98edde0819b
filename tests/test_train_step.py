"""TrainStep: accumulation equals the full batch (contract 21), counters, reports, bad input."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from optimlab.train import StepReport, TrainStep, sample_count, split_batch

N, D_IN, D_OUT = 10, 3, 2


def make_model(seed: int = 0, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(D_IN, 6),
        torch.nn.Tanh(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(6, D_OUT),
    )
    return model.double()


def mse(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


def data(seed: int = 1, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, D_IN, generator=g, dtype=torch.float64),
        torch.randn(n, D_OUT, generator=g, dtype=torch.float64),
    )


def optimizers() -> dict[str, object]:
    out: dict[str, object] = {
        "torch.SGD": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "torch.AdamW": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
    }
    out["optimlab.sgd"] = lambda p: optimlab.create_optimizer("momentum", p, lr=0.1)
    out["optimlab.adamw"] = lambda p: optimlab.create_optimizer("adamw", p, lr=0.05)
    return out


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def reference_run(make_opt, steps: int) -> tuple[torch.nn.Module, list[float]]:
    """The plain torch loop on the full batch: the independent reference."""
    model = make_model()
    opt = make_opt(list(model.parameters()))
    losses = []
    for s in range(steps):
        opt.zero_grad()
        loss = mse(model, data(seed=s))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model, losses


@pytest.mark.parametrize("opt_name", list(optimizers()))
@pytest.mark.parametrize("sizes", [[10], [5, 5], [4, 4, 2], [3, 3, 3, 1], [1] * 10])
def test_micro_batches_equal_one_full_batch(opt_name: str, sizes: list[int]) -> None:
    make_opt = optimizers()[opt_name]
    ref, ref_losses = reference_run(make_opt, steps=6)
    model = make_model()
    trainer = TrainStep(model, make_opt(list(model.parameters())), mse)
    for s in range(6):
        x, y = data(seed=s)
        micro = list(zip(torch.split(x, sizes), torch.split(y, sizes), strict=True))
        report = trainer.step_micro(micro)
        assert report.samples == N and report.micro_batches == len(sizes)
        assert report.loss == pytest.approx(ref_losses[s], rel=1e-12)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert rel(p.detach(), q.detach()) < 1e-10
    assert trainer.step_count == 6


def test_accumulated_gradient_equals_full_batch_gradient() -> None:
    model = make_model()
    full = copy.deepcopy(model)
    mse(full, data()).backward()
    trainer = TrainStep(
        model, torch.optim.SGD(model.parameters(), lr=0.0), mse, accumulation_steps=4
    )  # 10 samples -> 3, 3, 2, 2
    trainer.step(data())
    for p, q in zip(model.parameters(), full.parameters(), strict=True):
        assert rel(p.grad, q.grad) < 1e-12


def test_split_batch_sizes_and_structures() -> None:
    x, y = data()
    parts = split_batch((x, y), 4)
    assert [sample_count(p) for p in parts] == [3, 3, 2, 2]
    assert torch.equal(torch.cat([p[0] for p in parts]), x)
    d = split_batch({"x": x, "y": y}, 3)
    assert [sample_count(p) for p in d] == [4, 3, 3] and set(d[0]) == {"x", "y"}
    assert [sample_count(p) for p in split_batch(x[:2], 5)] == [1, 1]  # empty ones dropped
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        split_batch(x, 0)


def test_scheduler_and_counter_advance_once_per_optimizer_step() -> None:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)
    trainer = TrainStep(model, opt, mse, scheduler=sched, accumulation_steps=5)
    lrs = [trainer.step(data(seed=s)).lr for s in range(4)]
    assert lrs == [1.0, 0.5, 0.25, 0.125]
    assert trainer.step_count == 4 and sched.last_epoch == 4


def test_optimlab_schedule_adapter() -> None:
    from optimlab import schedules

    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched_fn = schedules.get("warmup_cosine", lr=0.1, warmup_steps=2, total_steps=8)
    trainer = TrainStep(
        model, opt, mse, scheduler=schedules.to_torch(sched_fn, opt), accumulation_steps=3
    )
    lrs = [trainer.step(data(seed=s)).lr for s in range(8)]
    assert lrs == pytest.approx([sched_fn(s) for s in range(8)], rel=1e-15)


def test_report_fields() -> None:
    model = make_model()
    trainer = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mse)
    before = copy.deepcopy(model)
    report = trainer.step(data())
    assert isinstance(report, StepReport)
    mse(before, data()).backward()
    norm = torch.cat([p.grad.reshape(-1) for p in before.parameters()]).norm()
    assert report.grad_norm == pytest.approx(float(norm), rel=1e-12)
    assert report.step == 1 and not report.skipped and report.scale is None
    assert report.lr == 0.1


def test_dict_batches_and_custom_batch_size() -> None:
    model = make_model()
    x, y = data()

    def loss_fn(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        return mse(m, (b["x"], b["y"]))

    trainer = TrainStep(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        loss_fn,
        accumulation_steps=2,
        batch_size=lambda b: len(b["y"]),
    )
    assert trainer.step({"x": x, "y": y}).samples == N


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accumulation_steps": 0}, "accumulation_steps must be an integer >= 1, got 0"),
        ({"accumulation_steps": True}, "accumulation_steps must be an integer >= 1, got True"),
        ({"clip_norm": -1.0}, "clip_norm must be > 0, got -1.0"),
        ({"clip_norm": float("nan")}, "clip_norm must be a finite number > 0, got nan"),
        ({"clip_value": 0.0}, "clip_value must be > 0, got 0.0"),
        ({"clip_norm": 1.0, "clip_value": 1.0}, "give clip_norm or clip_value, not both"),
        ({"precision": "fp8"}, "precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
        ({"nonfinite": "ignore"}, "nonfinite must be one of .* got 'ignore'"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    model = make_model()
    with pytest.raises(ValueError, match=message):
        TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mse, **kwargs)


def test_low_precision_requires_fp32_master_weights() -> None:
    model = make_model().half()
    with pytest.raises(ValueError, match="fp32 master weights; parameter '0.weight' is"):
        TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mse, precision="bf16")


def test_bad_micro_batches_change_nothing() -> None:
    model = make_model()
    trainer = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mse)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="at least one batch"):
        trainer.step_micro([])
    with pytest.raises(ValueError, match="loss_fn must return a scalar"):
        TrainStep(model, trainer.optimizer, lambda m, b: m(b[0])).step(data())
    sized = TrainStep(model, trainer.optimizer, mse, batch_size=lambda b: 0)
    with pytest.raises(ValueError, match=r"micro-batch sizes must be integers >= 1, got \[0\]"):
        sized.step(data())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert trainer.step_count == 0


def test_state_dict_round_trip() -> None:
    model = make_model()
    trainer = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mse)
    trainer.step(data())
    other = TrainStep(model, trainer.optimizer, mse)
    other.load_state_dict(trainer.state_dict())
    assert other.step_count == 1 and other.skipped_count == 0
    with pytest.raises(ValueError, match="step_count must be an integer >= 0, got -1"):
        other.load_state_dict({**trainer.state_dict(), "step_count": -1})


def test_a_scheduler_whose_step_needs_a_metric_is_refused_up_front() -> None:
    """ReduceLROnPlateau.step(metrics) cannot be called by TrainStep: refused at construction,
    not with a TypeError after the optimizer has already stepped (step_count left behind)."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="ReduceLROnPlateau.*metric"):
        TrainStep(model, opt, mse, scheduler=plateau)
    with pytest.raises(ValueError, match="scheduler must have a step"):
        TrainStep(model, opt, mse, scheduler=object())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_named_tuple_batches_are_split_into_named_tuples() -> None:
    from collections import namedtuple

    Batch = namedtuple("Batch", "x y")
    x, y = data()
    for n in (1, 3):
        parts = split_batch(Batch(x, y), n)
        assert all(type(p) is Batch for p in parts)
        assert torch.equal(torch.cat([p.x for p in parts]), x)
        assert torch.equal(torch.cat([p.y for p in parts]), y)
    model = make_model()
    trainer = TrainStep(
        model, torch.optim.SGD(model.parameters(), lr=0.1), mse, accumulation_steps=2
    )
    assert trainer.step(Batch(x, y)).samples == N
