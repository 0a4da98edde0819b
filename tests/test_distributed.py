"""DTensor parameters (FSDP2, tensor parallel) in one process, on a one-rank mesh (fast).

The sharded step (optim/sharded.py) hands the paths local shards, or gathers the whole
tensor for rules that reduce over it, and keeps the state as DTensors. On one rank the
shard is the whole tensor, so every optimizer must leave DTensor parameters and their
state bitwise equal to plain ones (the same operations on the same values). Real
sharding over two processes: tests/test_distributed_slow.py.
"""

from __future__ import annotations

import pytest
import torch
from cases import CASES, Case
from torch_cases import ours_kwargs, shapes_for

from optimlab.optim import CLASSES, AdamW
from optimlab.rules.registry import get_rule

dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover - torch built without distributed
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor  # noqa: E402


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory):
    """A one-rank gloo process group and its device mesh, for this module only."""
    from torch.distributed.device_mesh import init_device_mesh

    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def shard(t: torch.Tensor, mesh) -> torch.Tensor:
    return distribute_tensor(t.detach().clone(), mesh, [Shard(0)] if t.ndim else [Replicate()])


def whole(x):
    return x.full_tensor() if isinstance(x, DTensor) else x


def assert_same_state(plain_opt, sharded_opt, plain, sharded) -> None:
    for p, q in zip(plain, sharded, strict=True):
        a, b = plain_opt.state[p], sharded_opt.state[q]
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, torch.Tensor):
                assert isinstance(b[key], DTensor), key
                assert torch.equal(whole(b[key]), value), key
            else:
                assert b[key] == value, key


def run_both(case: Case, mesh, steps: int = 3, **flags: bool):
    """The same gradients for plain and DTensor copies of the same parameters; the first
    parameter has no gradient at step 1 (a layer frozen for a step)."""
    g = torch.Generator().manual_seed(0)
    shapes = shapes_for(case.name)
    plain = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in shapes]
    sharded = [torch.nn.Parameter(shard(p, mesh)) for p in plain]
    kwargs = ours_kwargs(case) | flags
    cls = CLASSES[case.name]
    plain_opt, sharded_opt = cls(plain, **kwargs), cls(sharded, **kwargs)
    for step in range(steps):
        for i, (p, q) in enumerate(zip(plain, sharded, strict=True)):
            grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.grad = None if (step == 1 and i == 0) else grad
            q.grad = None if p.grad is None else shard(grad, mesh)
        plain_opt.step()
        sharded_opt.step()
    return plain_opt, sharded_opt, plain, sharded


GROUP_WIDE = [c for c in CASES if get_rule(c.name).group_wide]


@pytest.mark.parametrize("case", [c for c in CASES if c not in GROUP_WIDE], ids=lambda c: c.id)
def test_dtensor_parameters_step_like_plain_ones(mesh, case: Case) -> None:
    plain_opt, sharded_opt, plain, sharded = run_both(case, mesh)
    for p, q in zip(plain, sharded, strict=True):
        assert isinstance(q, DTensor)
        assert torch.equal(q.full_tensor(), p)
    assert_same_state(plain_opt, sharded_opt, plain, sharded)


@pytest.mark.parametrize("case", GROUP_WIDE[:1], ids=lambda c: c.id)
def test_group_wide_rules_refuse_dtensor_parameters(mesh, case: Case) -> None:
    """Prodigy's d sums over the whole group: sharded parameters are refused up front."""
    sharded = [torch.nn.Parameter(shard(torch.ones(4, 2, dtype=torch.float64), mesh))]
    with pytest.raises(ValueError, match="prodigy sums over every parameter of its group"):
        CLASSES[case.name](sharded, **ours_kwargs(case))


@pytest.mark.parametrize("name", ["adamw", "momentum", "lion", "lookahead"])
def test_compiled_path_with_dtensors(mesh, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fused=True`` (the compiled path, its kernel run eagerly here: the same operations)
    steps the local shards like plain tensors."""
    from optimlab.optim import compiled

    calls: list[int] = []

    def counting(*args):
        calls.append(1)
        return compiled.apply_rule(*args)

    monkeypatch.setattr(compiled, "kernel", lambda rule, maximize, flags: counting)
    plain_opt, sharded_opt, plain, sharded = run_both(Case(name), mesh, fused=True)
    assert calls  # the compiled path ran
    for p, q in zip(plain, sharded, strict=True):
        assert torch.equal(q.full_tensor(), p)
    assert_same_state(plain_opt, sharded_opt, plain, sharded)


@pytest.mark.parametrize("name", ["adamw", "lion", "adafactor"])
def test_plain_path_with_dtensors(mesh, name: str) -> None:
    case = Case(name)
    plain_opt, sharded_opt, plain, sharded = run_both(case, mesh, foreach=False)
    for p, q in zip(plain, sharded, strict=True):
        assert torch.equal(q.full_tensor(), p)
    assert_same_state(plain_opt, sharded_opt, plain, sharded)


def test_a_group_mixing_dtensors_and_tensors(mesh) -> None:
    g = torch.Generator().manual_seed(1)
    values = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3)]
    plain = [torch.nn.Parameter(v.clone()) for v in values]
    mixed = [torch.nn.Parameter(shard(values[0], mesh)), torch.nn.Parameter(values[1].clone())]
    mixed.append(torch.nn.Parameter(shard(values[2], mesh)))
    plain_opt, mixed_opt = AdamW(plain, lr=0.1), AdamW(mixed, lr=0.1)
    for _ in range(3):
        for p, q in zip(plain, mixed, strict=True):
            grad = torch.randn(4, 3, generator=g, dtype=torch.float64)
            p.grad = grad
            q.grad = shard(grad, mesh) if isinstance(q, DTensor) else grad.clone()
        plain_opt.step()
        mixed_opt.step()
    for p, q in zip(plain, mixed, strict=True):
        assert torch.equal(whole(q), p)


@pytest.mark.parametrize("name", ["adamw", "adafactor"])
def test_unsharded_state_loads_into_sharded_optimizer(mesh, name: str) -> None:
    """A single-process checkpoint (plain tensors) resumes a sharded run exactly."""
    case = Case(name)
    plain_opt, _, plain, _ = run_both(case, mesh, steps=2)
    saved = plain_opt.state_dict()
    sharded = [torch.nn.Parameter(shard(p, mesh)) for p in plain]
    cls = CLASSES[name]
    sharded_opt = cls(sharded, **ours_kwargs(case))
    sharded_opt.load_state_dict(saved)
    g = torch.Generator().manual_seed(7)
    for _ in range(2):
        for p, q in zip(plain, sharded, strict=True):
            grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.grad, q.grad = grad, shard(grad, mesh)
        plain_opt.step()
        sharded_opt.step()
    for p, q in zip(plain, sharded, strict=True):
        assert torch.equal(q.full_tensor(), p)
    assert_same_state(plain_opt, sharded_opt, plain, sharded)


def test_a_plain_gradient_on_a_dtensor_names_the_parameter(mesh) -> None:
    w = torch.nn.Parameter(shard(torch.ones(4, 2, dtype=torch.float64), mesh))
    opt = AdamW([("encoder.weight", w)])
    w.grad = torch.ones(4, 2, dtype=torch.float64)  # what no wrapper does: a mixed pair
    before = w.full_tensor().clone()
    with pytest.raises(RuntimeError, match="parameter 'encoder.weight' is a DTensor but its"):
        opt.step()
    assert torch.equal(w.full_tensor(), before)


def _fsdp_model():
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).double()
    fully_shard(model)
    return model


@pytest.mark.parametrize("name", ["adamw", "adafactor"])
def test_distributed_checkpoint_resumes_exactly(mesh, tmp_path, name: str) -> None:
    """``get_optimizer_state_dict`` / ``set_optimizer_state_dict`` through
    ``torch.distributed.checkpoint``: resume equals the uninterrupted run bitwise."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(8, 4, generator=g, dtype=torch.float64) for _ in range(6)]

    def train(model, opt, xs):
        for x in xs:
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad()

    cls = CLASSES[name]
    model = _fsdp_model()
    opt = cls(model.named_parameters(), lr=0.01)
    train(model, opt, batches[:3])
    state = {
        "model": get_model_state_dict(model),
        "optim": get_optimizer_state_dict(model, opt),
    }
    dcp.save(state, checkpoint_id=tmp_path)
    train(model, opt, batches[3:])

    resumed = _fsdp_model()
    resumed_opt = cls(resumed.named_parameters(), lr=0.01)
    state = {
        "model": get_model_state_dict(resumed),
        "optim": get_optimizer_state_dict(resumed, resumed_opt),
    }
    dcp.load(state, checkpoint_id=tmp_path)
    set_model_state_dict(resumed, state["model"])
    set_optimizer_state_dict(resumed, resumed_opt, state["optim"])
    train(resumed, resumed_opt, batches[3:])
    for p, q in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p.full_tensor(), q.full_tensor())
    saved = opt.state_dict()["state"]
    for key, slots in resumed_opt.state_dict()["state"].items():
        for slot, value in slots.items():
            assert isinstance(value, DTensor) or not isinstance(value, torch.Tensor)
            if isinstance(value, DTensor):
                assert torch.equal(value.full_tensor(), saved[key][slot].full_tensor())
            else:
                assert value == saved[key][slot]
