"""The multi-tensor path equals the plain per-tensor rule, bitwise, on params and state.

Every case of every elementwise optimizer, through a schedule that exercises what the
fast path must get right: a zero-size parameter, a step where one gradient is None, a
layer frozen mid-run (its step count falls behind, so it forms its own bucket) and
unfrozen, a complex parameter, a non-contiguous one, fp32 state on a bf16 parameter,
and pack sizes small enough that both packing (many tensors per pack) and slicing (one
tensor over several packs) happen.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from cases import CASES, Case
from torch_cases import ELEMENTWISE, one_thread, ours_kwargs

from optimlab.optim import CLASSES, multi_tensor

pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread

FAST_CASES = [c for c in CASES if c.name in ELEMENTWISE]


def _params(dtype: torch.dtype = torch.float64) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(3)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

    return [
        torch.nn.Parameter(rnd(6, 5)),
        torch.nn.Parameter(rnd(0, 3)),  # zero-size
        torch.nn.Parameter(rnd(40)),  # larger than the test's pack: sliced
        torch.nn.Parameter(rnd(3)),
        torch.nn.Parameter(rnd(4, 3).t()),  # non-contiguous: the plain path inside
        torch.nn.Parameter(
            rnd(2, 3).to(torch.complex128 if dtype == torch.float64 else torch.complex64)
        ),
        torch.nn.Parameter(rnd(())),
    ]


def _grad_schedule(params: list[torch.Tensor], step: int, gen: torch.Generator) -> list:
    grads = []
    for i, p in enumerate(params):
        g = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        if p.is_complex():
            g = torch.complex(g, torch.randn(p.shape, generator=gen, dtype=torch.float64))
        g = g.to(p.dtype)
        if step % 7 == 3:
            g = torch.zeros_like(g)  # zero gradients still step
        if (i == 3 and step == 5) or (i in (0, 2) and 10 <= step < 20):
            g = None  # one None grad; a "layer" frozen for 10 steps
        grads.append(g)
    return grads


def run_schedule(case: Case, steps: int = 30, **flags: Any) -> tuple[list, torch.optim.Optimizer]:
    """``case`` stepped ``steps`` times with ``flags`` on the schedule above: zero-size,
    None grad, a layer frozen for 10 steps, complex, non-contiguous and 0-d parameters,
    zero gradients every 7th step."""
    params = _params()
    opt = CLASSES[case.name](params, **ours_kwargs(case), **flags)
    gen = torch.Generator().manual_seed(4)
    for step in range(steps):
        for p, g in zip(params, _grad_schedule(params, step, gen), strict=True):
            p.grad = g
        opt.step()
    return params, opt


def assert_same_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    for pa, pb in zip(a.param_groups[0]["params"], b.param_groups[0]["params"], strict=True):
        sa, sb = a.state[pa], b.state[pb]
        assert sa.keys() == sb.keys()
        for key in sa:
            x, y = sa[key], sb[key]
            if isinstance(x, torch.Tensor):
                assert isinstance(y, torch.Tensor) and x.dtype == y.dtype, key
                assert torch.equal(x, y), key
            else:
                assert x == y, key


@pytest.mark.parametrize("pack", [8, 1 << 16], ids=["pack8", "pack-default"])
@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: c.id)
def test_fast_path_equals_plain_rule(
    case: Case, pack: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multi_tensor, "PACK_NUMEL", pack)
    maximize = case.label == "defaults"
    plain, opt_plain = run_schedule(case, foreach=False, maximize=maximize)
    fast, opt_fast = run_schedule(case, maximize=maximize)
    for x, y in zip(fast, plain, strict=True):
        assert torch.equal(x, y)
    assert_same_state(opt_fast, opt_plain)
    # the frozen layer's count fell behind while it was frozen
    counts = [opt_fast.state[p]["count"] for p in fast]
    assert counts[0] == 20 and counts[1] == 30 and counts[3] == 29


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_fast_path_bf16_params_fp32_state(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """State loaded as fp32 on bf16 params stays fp32 on both paths, and they agree."""
    monkeypatch.setattr(multi_tensor, "PACK_NUMEL", 8)
    rows = [c for c in CASES if c.name == name]
    case = next((c for c in rows if "momentum" in c.hp), rows[0])
    results = []
    for foreach in (False, None):
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(5, 4, generator=gen).bfloat16()) for _ in range(3)]
        opt = CLASSES[name](params, **ours_kwargs(case), foreach=foreach)
        for step in range(12):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).bfloat16()
            opt.step()
            if step == 1:  # upcast the state, as a mixed-precision user would
                for p in params:
                    for k, v in opt.state[p].items():
                        if isinstance(v, torch.Tensor):
                            opt.state[p][k] = v.float()
        for p in params:
            assert p.dtype == torch.bfloat16
            assert all(
                v.dtype == torch.float32
                for v in opt.state[p].values()
                if isinstance(v, torch.Tensor)
            )
        results.append((params, opt))
    (pa, oa), (pb, ob) = results
    for x, y in zip(pa, pb, strict=True):
        assert torch.equal(x, y)
    assert_same_state(oa, ob)


def test_many_tensors_pack_into_few_rule_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """200 small tensors take a handful of rule calls on the fast path, not 200."""
    calls = []
    opt_cls = CLASSES["adam"]
    rule = opt_cls._arguments.spec.rule
    original = rule.update

    def counting(*args, **kwargs):
        calls.append(args[0].numel())
        return original(*args, **kwargs)

    params = [torch.nn.Parameter(torch.randn(50)) for _ in range(200)]
    for p in params:
        p.grad = torch.randn(50)
    monkeypatch.setattr(multi_tensor, "PACK_NUMEL", 2048)
    arguments = opt_cls._arguments
    spec = dataclasses.replace(arguments.spec, rule=dataclasses.replace(rule, update=counting))
    counted = type(
        "CountedAdam", (opt_cls,), {"_arguments": dataclasses.replace(arguments, spec=spec)}
    )
    counted(params).step()
    assert sum(calls) == 200 * 50 and len(calls) == 5


@pytest.mark.parametrize(
    "name, edit",
    [
        ("sgd", {"momentum": 0.9}),  # a slot the rule creates mid-run
        ("adam", {"amsgrad": True, "lr": 0.05}),
        ("rmsprop", {"centered": True, "momentum": 0.5}),
    ],
)
def test_group_edit_mid_run_creates_slots_identically(
    name: str, edit: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multi_tensor, "PACK_NUMEL", 8)
    runs = []
    for foreach in (False, None):
        params = _params()
        opt = CLASSES[name](params, lr=0.01, foreach=foreach)
        gen = torch.Generator().manual_seed(5)
        for step in range(12):
            if step == 5:
                opt.param_groups[0].update(edit)
            for p, g in zip(params, _grad_schedule(params, step, gen), strict=True):
                p.grad = g
            opt.step()
        runs.append((params, opt))
    (pa, oa), (pb, ob) = runs
    for x, y in zip(pa, pb, strict=True):
        assert torch.equal(x, y)
    assert_same_state(oa, ob)


def test_tensor_lr_matches_torch() -> None:
    """torch accepts a tensor lr (edited in place by some schedulers)."""
    results = []
    for cls in (CLASSES["adam"], torch.optim.Adam):
        lr = torch.tensor(0.01, dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(4, 3, generator=gen, dtype=torch.float64))]
        opt = cls(params, lr=lr)
        for step in range(10):
            if step == 5:
                lr.fill_(0.002)
            params[0].grad = torch.randn(4, 3, generator=gen, dtype=torch.float64)
            opt.step()
        results.append(params[0].detach())
    torch.testing.assert_close(results[0], results[1], rtol=1e-13, atol=1e-15)
