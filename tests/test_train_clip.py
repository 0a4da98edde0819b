"""Clipping and the non-finite policy (contract 22): exact norms, never writing NaN."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from optimlab.train import (
    NonFiniteGradientError,
    TrainStep,
    clip_grad_norm,
    clip_grad_value,
    grad_norm,
    grads_finite,
    guarded_step,
)


def params_with_grads(*grads: list[float]) -> list[torch.nn.Parameter]:
    out = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(len(g), dtype=torch.float64))
        p.grad = torch.tensor(g, dtype=torch.float64)
        out.append(p)
    return out


def test_small_gradients_are_left_bitwise_unchanged() -> None:
    params = params_with_grads([0.1, -0.2], [0.3])
    before = [p.grad.clone() for p in params]
    norm = clip_grad_norm(params, 1.0)
    assert norm == pytest.approx(math.sqrt(0.01 + 0.04 + 0.09), rel=1e-15)
    for p, b in zip(params, before, strict=True):
        assert torch.equal(p.grad, b)


def test_large_gradients_scale_to_exactly_max_norm_and_keep_direction() -> None:
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64)) for _ in range(3)]
    for p in params:
        p.grad = 100 * torch.randn(p.shape, generator=g, dtype=torch.float64)
    before = torch.cat([p.grad.reshape(-1) for p in params])
    pre = clip_grad_norm(params, 2.5)
    after = torch.cat([p.grad.reshape(-1) for p in params])
    assert pre == pytest.approx(float(before.norm()), rel=1e-14)
    assert float(after.norm()) == pytest.approx(2.5, rel=1e-14)
    assert torch.allclose(after, before * (2.5 / pre), rtol=1e-15, atol=0)


@pytest.mark.parametrize("norm_type", [1.0, 3.0, math.inf])
def test_other_norm_types(norm_type: float) -> None:
    params = params_with_grads([3.0, -4.0], [12.0])
    flat = torch.tensor([3.0, -4.0, 12.0], dtype=torch.float64)
    expected = float(torch.linalg.vector_norm(flat, norm_type))
    assert clip_grad_norm(params, 1.0, norm_type=norm_type) == pytest.approx(expected, rel=1e-14)
    after = torch.cat([p.grad for p in params])
    assert float(torch.linalg.vector_norm(after, norm_type)) == pytest.approx(1.0, rel=1e-14)


def test_clip_by_value() -> None:
    params = params_with_grads([0.5, -3.0], [2.0])
    pre = clip_grad_value(params, 1.0)
    assert pre == pytest.approx(math.sqrt(0.25 + 9 + 4), rel=1e-15)
    assert params[0].grad.tolist() == [0.5, -1.0] and params[1].grad.tolist() == [1.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("clip", ["norm", "value"])
def test_nonfinite_gradients_follow_the_policy_and_never_write_nan(bad: float, clip: str) -> None:
    def run(policy: str) -> tuple[float, list[torch.Tensor]]:
        params = params_with_grads([1e3, 2e3], [bad, 1.0])
        fn = clip_grad_norm if clip == "norm" else clip_grad_value
        out = fn(params, 1.0, nonfinite=policy)
        return out, [p.grad for p in params]

    with pytest.raises(NonFiniteGradientError, match="non-finite gradient"):
        run("raise")
    for policy in ("skip", "propagate"):
        norm, grads = run(policy)
        assert not math.isfinite(norm)
        assert grads[0].tolist() == [1e3, 2e3]  # finite gradients untouched, no NaN written
        assert grads[1][1].item() == 1.0


def test_no_gradients() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    assert clip_grad_norm([p], 1.0) == 0.0 and grad_norm([p]) == 0.0 and grads_finite([p])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_norm": 0.0}, "max_norm must be > 0, got 0.0"),
        ({"max_norm": math.nan}, "max_norm must be a finite number > 0, got nan"),
        ({"max_norm": True}, "max_norm must be a number, got True"),
        ({"max_norm": 1.0, "norm_type": 0.5}, "norm_type must be >= 1 or inf, got 0.5"),
        ({"max_norm": 1.0, "norm_type": -math.inf}, "norm_type must be >= 1 or inf, got -inf"),
        ({"max_norm": 1.0, "nonfinite": "drop"}, "nonfinite must be one of"),
    ],
)
def test_invalid_clip_arguments_change_nothing(kwargs: dict, message: str) -> None:
    params = params_with_grads([30.0, 40.0])
    with pytest.raises(ValueError, match=message):
        clip_grad_norm(params, **kwargs)
    assert params[0].grad.tolist() == [30.0, 40.0]


def test_guarded_step_policies() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    assert guarded_step(opt, "skip")  # finite: steps
    state = copy.deepcopy(opt.state_dict())
    params = copy.deepcopy(model.state_dict())
    model.weight.grad[0, 1] = math.nan
    assert not guarded_step(opt, "skip")
    assert opt.state_dict()["state"][0]["step"] == state["state"][0]["step"] == 1
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    with pytest.raises(NonFiniteGradientError):
        guarded_step(opt, "raise")
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    assert guarded_step(opt, "propagate")
    assert torch.isnan(model.weight).any()


@pytest.mark.parametrize("clip", [{}, {"clip_norm": 1.0}, {"clip_value": 0.1}])
def test_train_step_skip_leaves_params_state_scheduler_and_count_unchanged(clip: dict) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    poison = {"on": False}

    def loss_fn(m: torch.nn.Module, b: torch.Tensor) -> torch.Tensor:
        loss = m(b).pow(2).mean()
        return loss * math.inf if poison["on"] else loss

    trainer = TrainStep(model, opt, loss_fn, scheduler=sched, nonfinite="skip", **clip)
    x = torch.randn(8, 3, dtype=torch.float64)
    trainer.step(x)
    params = copy.deepcopy(model.state_dict())
    state = copy.deepcopy(opt.state_dict())
    poison["on"] = True
    report = trainer.step(x)
    assert report.skipped and report.step == 1 and not math.isfinite(report.grad_norm)
    assert trainer.step_count == 1 and trainer.skipped_count == 1 and sched.last_epoch == 1
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    assert opt.state_dict()["state"][0]["step"] == state["state"][0]["step"]
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    trainer.nonfinite = "raise"
    with pytest.raises(NonFiniteGradientError):
        trainer.step(x)
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    poison["on"] = False
    assert not trainer.step(x).skipped and trainer.step_count == 2


def test_train_step_propagate_steps_with_nonfinite_gradients() -> None:
    model = torch.nn.Linear(2, 1).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = TrainStep(
        model, opt, lambda m, b: m(b).sum() * math.nan, nonfinite="propagate", clip_norm=1.0
    )
    report = trainer.step(torch.ones(3, 2, dtype=torch.float64))
    assert not report.skipped and trainer.step_count == 1 and math.isnan(report.grad_norm)
    assert torch.isnan(model.weight).all()
