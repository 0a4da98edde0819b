"""Flat storage (``flat=True``, optim/flat.py): parameters and gradients as views of one
buffer per (device, dtype), and everything a model and an optimizer do around them.

The steps here take the multi-tensor path (groups below the compile threshold), so flat
storage must change no number: results equal ``flat=False`` bitwise. Its parity on the
compiled path is in test_optim_compiled.py.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from test_optim_compiled import run_schedule
from test_optim_fast import FAST_CASES, assert_same_state
from torch_cases import one_thread

from optimlab.optim import CLASSES, AdamW

pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread


def model(seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(
        dtype
    )


def data(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    return torch.randn(n, 6, generator=gen), torch.randn(n, 3, generator=gen)


def train(m: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, set_to_none=True) -> None:
    x, y = data()
    for _ in range(steps):
        opt.zero_grad(set_to_none=set_to_none)
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()


def storages(m: torch.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in m.parameters()}


@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: c.id)
def test_flat_changes_no_number(case) -> None:
    maximize = case.label == "defaults"
    a, opt_a = run_schedule(case, maximize=maximize)
    b, opt_b = run_schedule(case, flat=True, maximize=maximize)
    for x, y in zip(b, a, strict=True):
        assert torch.equal(x, y)
    assert_same_state(opt_b, opt_a)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_params_and_grads_are_views_of_one_buffer(set_to_none: bool) -> None:
    m, ref = model(), model()
    opt = AdamW(m.parameters(), lr=0.01, flat=True)
    assert len(storages(m)) == 1  # moved at construction, values kept
    for p, q in zip(m.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    train(m, opt, 3, set_to_none)
    train(ref, AdamW(ref.parameters(), lr=0.01), 3, set_to_none)
    for p, q in zip(m.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    grads = [p.grad for p in m.parameters()]
    assert len({g.untyped_storage().data_ptr() for g in grads}) == 1
    opt.zero_grad(set_to_none=False)  # one pass over the buffer; grads stay its views
    assert all(
        torch.count_nonzero(p.grad) == 0 and p.grad is g
        for p, g in zip(m.parameters(), grads, strict=True)
    )
    x, y = data()
    torch.nn.functional.mse_loss(m(x), y).backward()  # accumulates in place
    assert all(p.grad is g for p, g in zip(m.parameters(), grads, strict=True))
    opt.zero_grad()  # torch's default: None, as torch
    assert all(p.grad is None for p in m.parameters())


def test_state_dict_round_trip_resumes_bitwise(tmp_path) -> None:
    m, opt = model(), None
    opt = AdamW(m.parameters(), lr=0.01, weight_decay=0.1, flat=True)
    train(m, opt, 4)
    torch.save({"model": m.state_dict(), "opt": opt.state_dict()}, tmp_path / "ck.pt")
    train(m, opt, 4)
    saved = torch.load(tmp_path / "ck.pt", weights_only=True)
    m2 = model(seed=1)
    opt2 = AdamW(m2.parameters(), lr=0.01, weight_decay=0.1, flat=True)
    m2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    assert len(storages(m2)) == 1  # load_state_dict copies into the views
    train(m2, opt2, 4)
    for p, q in zip(m2.parameters(), m.parameters(), strict=True):
        assert torch.equal(p, q)


def test_torch_save_of_the_model() -> None:
    m = model()
    opt = AdamW(m.parameters(), lr=0.01, flat=True)
    train(m, opt, 2)
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for p, q in zip(loaded.parameters(), m.parameters(), strict=True):
        assert torch.equal(p, q)
    train(loaded, AdamW(loaded.parameters(), lr=0.01, flat=True), 2)  # and trains on
    assert copy.deepcopy(opt).state_dict()["state"].keys() == opt.state_dict()["state"].keys()


def test_param_groups_and_a_group_added_later() -> None:
    m, ref = model(), model()

    def groups(mod):
        first, second = list(mod[0].parameters()), list(mod[2].parameters())
        return [{"params": first, "lr": 0.02}], second

    g, later = groups(m)
    opt = AdamW(g, lr=0.01, flat=True)
    train(m, opt, 2)
    opt.add_param_group({"params": later, "lr": 0.005})  # flattened again, values kept
    assert len(storages(m)) == 1
    train(m, opt, 3)
    g_ref, later_ref = groups(ref)
    opt_ref = AdamW(g_ref, lr=0.01)
    train(ref, opt_ref, 2)
    opt_ref.add_param_group({"params": later_ref, "lr": 0.005})
    train(ref, opt_ref, 3)
    for p, q in zip(m.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


def test_frozen_layer_and_moved_parameters() -> None:
    """A layer frozen mid-run keeps grad None and is skipped; a model moved to another
    dtype (its parameters get new storage) is flattened again at the next step."""
    m, ref = model(), model()
    runs = [(m, AdamW(m.parameters(), lr=0.01, flat=True)), (ref, AdamW(ref.parameters(), lr=0.01))]
    for mod, opt in runs:
        train(mod, opt, 2)
        mod[0].requires_grad_(False)
        train(mod, opt, 2)
        mod[0].requires_grad_(True)
        train(mod, opt, 1)
    assert m[0].weight.grad is not None and runs[0][1].state[m[0].weight]["count"] == 3
    for p, q in zip(m.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    m.double()
    opt = AdamW(m.parameters(), lr=0.01, flat=True)
    m.float()  # new storage for every parameter
    train(m, opt, 1)
    assert len(storages(m)) == 1


def test_refuses_shared_memory_and_tensor_subclasses() -> None:
    base = torch.randn(10)
    a, b = torch.nn.Parameter(base[:6]), torch.nn.Parameter(base[5:])
    with pytest.raises(ValueError, match="share memory"):
        AdamW([a, b], flat=True)

    class Sharded(torch.Tensor):
        pass

    p = torch.nn.Parameter(torch.randn(3).as_subclass(Sharded))
    with pytest.raises(ValueError, match="plain tensors; parameter 0 of group 0 is a Sharded"):
        AdamW([p], flat=True)
    with pytest.raises(ValueError, match="flat must be True or False"):
        AdamW([torch.nn.Parameter(torch.randn(2))], flat="yes")


def test_ddp_single_process(tmp_path) -> None:
    """DDP copies the reduced gradients into p.grad, our views: flat storage trains as
    without DDP (world size 1, gloo)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        m, ref = model(), model()
        ddp = torch.nn.parallel.DistributedDataParallel(m)
        opt = AdamW(ddp.parameters(), lr=0.01, flat=True)
        train(ddp, opt, 3, set_to_none=False)
        train(ref, AdamW(ref.parameters(), lr=0.01), 3, set_to_none=False)
        assert len(storages(m)) == 1
        for p, q in zip(m.parameters(), ref.parameters(), strict=True):
            assert torch.equal(p, q)
    finally:
        dist.destroy_process_group()


def test_every_class_takes_flat() -> None:
    for name, cls in CLASSES.items():
        if cls._arguments.spec.rule.param_ndim == 2:
            params = [torch.nn.Parameter(torch.randn(3, 4)) for _ in range(2)]
        else:
            params = [torch.nn.Parameter(torch.randn(3)) for _ in range(2)]
        opt = cls(params, flat=True)
        for p in params:
            p.grad = torch.randn(p.shape)
        opt.step()
        assert len({p.untyped_storage().data_ptr() for p in params}) == 1, name
