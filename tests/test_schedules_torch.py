"""Schedules against torch.optim.lr_scheduler over 1000 steps, and the torch adapter."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch.optim import lr_scheduler as tls

from optimlab import schedules as S

STEPS = 1000
BASE = 0.5


def _opt(kind: str = "sgd", lr: float = BASE) -> torch.optim.Optimizer:
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    if kind == "adam":
        return torch.optim.Adam([p], lr=lr, betas=(0.9, 0.999))
    return torch.optim.SGD([p], lr=lr, momentum=0.9)


def _torch_trace(make, kind: str = "sgd", steps: int = STEPS, key: str = "lr") -> list[float]:
    """The group value at scheduler steps 0 .. steps-1 (optimizer stepped first, as torch asks)."""
    opt = _opt(kind)
    sched = make(opt)
    out = []
    for t in range(steps):
        group = opt.param_groups[0]
        out.append(float(group["betas"][0] if key == "betas" else group[key]))
        if t < steps - 1:
            opt.step()
            sched.step()
    return out


def _assert_close(ours: list[float], ref: list[float], rel: float = 1e-12) -> None:
    assert len(ours) == len(ref)
    for t, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert abs(a - b) <= rel * abs(b) or a == b, f"step {t}: ours {a!r}, torch {b!r}"


CASES = [
    (
        "StepLR",
        lambda o: tls.StepLR(o, step_size=7, gamma=0.9),
        S.StepDecay(step_size=7, gamma=0.9, lr=BASE),
    ),
    (
        "MultiStepLR",
        lambda o: tls.MultiStepLR(o, milestones=[100, 300, 650], gamma=0.5),
        S.MultiStepDecay(milestones=(100, 300, 650), gamma=0.5, lr=BASE),
    ),
    (
        "ExponentialLR",
        lambda o: tls.ExponentialLR(o, gamma=0.995),
        S.ExponentialDecay(gamma=0.995, lr=BASE),
    ),
    (
        "PolynomialLR",
        lambda o: tls.PolynomialLR(o, total_iters=800, power=2.0),
        S.PolynomialDecay(total_steps=800, power=2.0, lr=BASE),
    ),
    (
        "PolynomialLR-p1",
        lambda o: tls.PolynomialLR(o, total_iters=1000, power=1.0),
        S.PolynomialDecay(total_steps=1000, lr=BASE),
    ),
    (
        "LinearLR",
        lambda o: tls.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=400),
        S.Linear(total_steps=400, lr=BASE, start_factor=0.25, end_factor=0.75),
    ),
    (
        "LinearLR-warmup",
        lambda o: tls.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=999),
        S.Linear(total_steps=999, lr=BASE, start_factor=0.01, end_factor=1.0),
    ),
    (
        "CosineAnnealingLR",
        lambda o: tls.CosineAnnealingLR(o, T_max=1000, eta_min=0.01),
        S.CosineAnnealing(total_steps=1000, lr=BASE, eta_min=0.01),
    ),
    (
        "CosineAnnealingLR-0",
        lambda o: tls.CosineAnnealingLR(o, T_max=1000),
        S.CosineAnnealing(total_steps=1000, lr=BASE),
    ),
    (
        "WarmRestarts",
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=50),
        S.CosineWarmRestarts(T_0=50, lr=BASE),
    ),
    (
        "WarmRestarts-mult2",
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001),
        S.CosineWarmRestarts(T_0=10, T_mult=2, lr=BASE, eta_min=0.001),
    ),
    (
        "WarmRestarts-mult3",
        lambda o: tls.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=3),
        S.CosineWarmRestarts(T_0=3, T_mult=3, lr=BASE),
    ),
    (
        "CyclicLR",
        lambda o: tls.CyclicLR(o, base_lr=0.01, max_lr=BASE, step_size_up=37, cycle_momentum=False),
        S.Cyclic(step_size_up=37, lr=BASE, min_lr=0.01),
    ),
    (
        "CyclicLR-tri2",
        lambda o: tls.CyclicLR(
            o,
            base_lr=0.01,
            max_lr=BASE,
            step_size_up=37,
            step_size_down=63,
            mode="triangular2",
            cycle_momentum=False,
        ),
        S.Cyclic(step_size_up=37, step_size_down=63, lr=BASE, min_lr=0.01, mode="triangular2"),
    ),
    (
        "CyclicLR-exp",
        lambda o: tls.CyclicLR(
            o,
            base_lr=0.01,
            max_lr=BASE,
            step_size_up=20,
            step_size_down=80,
            mode="exp_range",
            gamma=0.998,
            cycle_momentum=False,
        ),
        S.Cyclic(
            step_size_up=20, step_size_down=80, lr=BASE, min_lr=0.01, mode="exp_range", gamma=0.998
        ),
    ),
    (
        "OneCycleLR",
        lambda o: tls.OneCycleLR(o, max_lr=BASE, total_steps=STEPS),
        S.OneCycle(total_steps=STEPS, lr=BASE),
    ),
    (
        "OneCycleLR-linear",
        lambda o: tls.OneCycleLR(
            o, max_lr=BASE, total_steps=STEPS, anneal_strategy="linear", pct_start=0.25
        ),
        S.OneCycle(total_steps=STEPS, lr=BASE, anneal="linear", pct_start=0.25),
    ),
    (
        "OneCycleLR-3phase",
        lambda o: tls.OneCycleLR(
            o,
            max_lr=BASE,
            total_steps=STEPS,
            three_phase=True,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        S.OneCycle(
            total_steps=STEPS, lr=BASE, three_phase=True, div_factor=10.0, final_div_factor=100.0
        ),
    ),
    (
        "SequentialLR",
        lambda o: tls.SequentialLR(
            o,
            [
                tls.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=50),
                tls.CosineAnnealingLR(o, T_max=950, eta_min=0.001),
            ],
            milestones=[50],
        ),
        S.Join(
            (
                S.Linear(50, lr=BASE, start_factor=0.1, end_factor=1.0),
                S.CosineAnnealing(950, lr=BASE, eta_min=0.001),
            ),
            (50,),
        ),
    ),
    (
        "SequentialLR-3",
        lambda o: tls.SequentialLR(
            o,
            [
                tls.ConstantLR(o, factor=0.2, total_iters=100),
                tls.ExponentialLR(o, gamma=0.99),
                tls.StepLR(o, step_size=50, gamma=0.5),
            ],
            milestones=[100, 400],
        ),
        S.Join(
            (
                S.Constant(lr=0.2 * BASE),
                S.ExponentialDecay(gamma=0.99, lr=BASE),
                S.StepDecay(step_size=50, gamma=0.5, lr=BASE),
            ),
            (100, 400),
        ),
    ),
]


@pytest.mark.parametrize("make, ours", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_matches_torch_scheduler(make, ours) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # SequentialLR's own deprecation chatter
        ref = _torch_trace(make)
    _assert_close([ours(t) for t in range(STEPS)], ref)


MOMENTUM_CASES = [
    (
        "OneCycle-sgd",
        "sgd",
        "momentum",
        lambda o: tls.OneCycleLR(o, max_lr=BASE, total_steps=STEPS),
        S.OneCycle(total_steps=STEPS, lr=BASE).momentum(),
    ),
    (
        "OneCycle-adam-3phase",
        "adam",
        "betas",
        lambda o: tls.OneCycleLR(
            o, max_lr=BASE, total_steps=STEPS, three_phase=True, base_momentum=0.8, max_momentum=0.9
        ),
        S.OneCycle(total_steps=STEPS, lr=BASE, three_phase=True).momentum(0.8, 0.9),
    ),
    (
        "OneCycle-linear",
        "sgd",
        "momentum",
        lambda o: tls.OneCycleLR(o, max_lr=BASE, total_steps=STEPS, anneal_strategy="linear"),
        S.OneCycle(total_steps=STEPS, lr=BASE, anneal="linear").momentum(),
    ),
    (
        "Cyclic-sgd",
        "sgd",
        "momentum",
        lambda o: tls.CyclicLR(
            o, base_lr=0.01, max_lr=BASE, step_size_up=30, step_size_down=70, mode="triangular2"
        ),
        S.Cyclic(
            step_size_up=30, step_size_down=70, lr=BASE, min_lr=0.01, mode="triangular2"
        ).momentum(),
    ),
    (
        "Cyclic-adam",
        "adam",
        "betas",
        lambda o: tls.CyclicLR(
            o,
            base_lr=0.01,
            max_lr=BASE,
            step_size_up=25,
            mode="exp_range",
            gamma=0.999,
            base_momentum=0.85,
            max_momentum=0.95,
        ),
        S.Cyclic(step_size_up=25, lr=BASE, min_lr=0.01, mode="exp_range", gamma=0.999).momentum(
            0.85, 0.95
        ),
    ),
]


@pytest.mark.parametrize(
    "kind, key, make, ours", [c[1:] for c in MOMENTUM_CASES], ids=[c[0] for c in MOMENTUM_CASES]
)
def test_momentum_cycle_matches_torch(kind, key, make, ours) -> None:
    ref = _torch_trace(make, kind=kind, key=key)
    _assert_close([ours(t) for t in range(STEPS)], ref)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_adapter_equals_pure_schedule_and_drives_momentum(kind: str) -> None:
    lr_sched = S.OneCycle(total_steps=300, lr=0.2, three_phase=True)
    mom = lr_sched.momentum()
    opt = _opt(kind)
    sched = S.to_torch(lr_sched, opt, momentum_schedule=mom)
    key = "betas" if kind == "adam" else "momentum"
    for t in range(300):
        group = opt.param_groups[0]
        assert group["lr"] == lr_sched(t)
        assert sched.get_last_lr() == [lr_sched(t)]
        assert (group["betas"][0] if key == "betas" else group[key]) == mom(t)
        if kind == "adam":
            assert group["betas"][1] == 0.999
        opt.step()
        sched.step()


def test_adapter_per_group_schedules_and_our_optimizers() -> None:
    from optimlab import optim

    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    s_a, s_b = (
        S.get("cosine", total_steps=20, lr=0.1),
        S.get("warmup_linear", total_steps=20, lr=0.01),
    )
    sched = S.to_torch([s_a, s_b], opt, momentum_schedule=S.Constant(lr=0.8))
    for t in range(25):
        assert [g["lr"] for g in opt.param_groups] == [s_a(t), s_b(t)]
        assert all(g["betas"][0] == 0.8 for g in opt.param_groups)
        (a.sum() + b.sum()).backward()
        opt.step()
        sched.step()


def _train(opt, sched, w, steps, xs) -> list[float]:
    lrs = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((xs @ w - 1.0) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("order", ["optimizer_first", "scheduler_first"])
def test_resume_from_state_equals_uninterrupted(order: str) -> None:
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(16, 4, dtype=torch.float64, generator=g)
    w0 = torch.randn(4, dtype=torch.float64, generator=g)
    schedule = S.OneCycle(total_steps=200, lr=0.05)
    mom = schedule.momentum()

    def fresh():
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.SGD([w], lr=1.0, momentum=0.5, nesterov=False)
        return w, opt, S.to_torch(schedule, opt, momentum_schedule=mom)

    w, opt, sched = fresh()
    full = _train(opt, sched, w, 200, xs)
    w_full = w.detach().clone()

    w, opt, sched = fresh()
    first = _train(opt, sched, w, 77, xs)
    buf = io.BytesIO()
    torch.save({"w": w.detach(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    assert saved["sched"] == {
        "step": 77,
        "schedule": [repr(schedule)],
        "momentum_schedule": [repr(mom)],
    }

    w2 = saved["w"].clone().requires_grad_(True)
    opt2 = torch.optim.SGD([w2], lr=123.0, momentum=0.0)
    sched2 = S.to_torch(schedule, opt2, momentum_schedule=mom)
    if order == "optimizer_first":
        opt2.load_state_dict(saved["opt"])
        sched2.load_state_dict(saved["sched"])
    else:
        sched2.load_state_dict(saved["sched"])
        opt2.load_state_dict(saved["opt"])
    assert opt2.param_groups[0]["lr"] == schedule(77)
    assert opt2.param_groups[0]["momentum"] == mom(77)
    rest = _train(opt2, sched2, w2, 123, xs)
    assert first + rest == full
    assert torch.equal(w2.detach(), w_full)
    assert sched2.state_dict()["step"] == sched.state_dict()["step"] + 123


def test_adapter_rejects_mismatch_and_bad_input() -> None:
    opt = _opt()
    sched = S.to_torch(S.get("cosine", total_steps=10), opt)
    other = S.to_torch(S.get("cosine", total_steps=11), _opt())
    with pytest.raises(ValueError, match="saved schedule differs"):
        sched.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="missing"):
        sched.load_state_dict({"step": 3})
    with pytest.raises(ValueError, match="step must be"):
        sched.load_state_dict({**sched.state_dict(), "step": -1})
    with pytest.raises(TypeError, match="optimlab schedule"):
        S.to_torch(lambda t: 0.1, _opt())
    with pytest.raises(ValueError, match="one per param group"):
        S.to_torch([S.Constant(), S.Constant()], _opt())
    with pytest.raises(ValueError, match="array"):
        import numpy as np

        S.to_torch(S.Constant(lr=np.array([[0.1], [0.2]])), _opt())
    p = torch.zeros(1, requires_grad=True)
    no_momentum = torch.optim.Adagrad([p], lr=0.1)
    before = dict(no_momentum.param_groups[0])
    with pytest.raises(ValueError, match="param group 0"):
        S.to_torch(S.Constant(), no_momentum, momentum_schedule=S.Constant(lr=0.9))
    assert no_momentum.param_groups[0] == before  # nothing changed before the error


def test_adapter_with_tensor_lr() -> None:
    p = torch.zeros(2, requires_grad=True)
    betas = (torch.tensor(0.9), torch.tensor(0.999))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.1), betas=betas, foreach=False)
    lr_tensor = opt.param_groups[0]["lr"]
    s = S.get("linear", total_steps=4, lr=0.1)
    sched = S.to_torch(s, opt, momentum_schedule=S.Constant(lr=0.7))
    for t in range(6):
        assert opt.param_groups[0]["lr"] is lr_tensor
        assert float(lr_tensor) == pytest.approx(s(t), rel=1e-6)
        assert float(opt.param_groups[0]["betas"][0]) == pytest.approx(0.7)
        p.sum().backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize(
    "name, key",
    [
        ("adam", ("betas", 0)),
        ("lion", ("betas", 0)),
        ("sgd", ("momentum", None)),
        ("rmsprop", ("momentum", None)),
        ("nadam", ("betas", 0)),
    ],
)
def test_momentum_of_our_optimizers_goes_where_the_registry_says(name: str, key) -> None:
    """An optimlab optimizer's momentum key comes from its registry row's torch_args."""
    import optimlab

    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = optimlab.create_optimizer(name, [p], lr=0.1)
    mom = S.Linear(total_steps=5, lr=0.9, end_factor=0.5)
    sched = S.to_torch(S.Constant(lr=0.1), opt, momentum_schedule=mom)
    for t in range(5):
        group = opt.param_groups[0]
        value = group[key[0]] if key[1] is None else group[key[0]][key[1]]
        assert value == mom(t)
        p.grad = torch.ones(2, dtype=torch.float64)
        opt.step()
        sched.step()


def test_momentum_schedule_needs_a_momentum_hyperparameter() -> None:
    import optimlab

    opt = optimlab.create_optimizer("adafactor", [torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="needs a momentum hyperparameter .beta1 or momentum.; "):
        S.to_torch(S.Constant(), opt, momentum_schedule=S.Constant(lr=0.9))
