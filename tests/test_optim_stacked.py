"""Rules that reduce over a tensor, compiled on stacks of same-shape tensors (optim/stacked.py).

The compiled path (its kernel run eagerly here; compiled for real in the slow tests of
test_optim_compiled.py, whose schedule has stacks too) stacks the small parameters of one
shape, dtype, device, state layout and step count, steps the stack with ``batch_ndim=1``
and copies the results back. A stack runs batched operations, so it equals the plain rule
(one tensor at a time) within the numerics tolerance, on every case of Adafactor, Muon,
LAMB and MARS: parameters and every state slot, with stacks that split when a layer is
frozen (its count falls behind), a non-contiguous member, a parameter too large to stack,
stacks cut at ``STACK_MAX``, and a gradient that is None for a step.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from cases import Case
from numerics import assert_close
from test_optim_compiled import REDUCING, REDUCING_CASES, assert_close_state
from torch_cases import one_thread, ours_kwargs

from optimlab.optim import CLASSES, compiled, stacked

pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The sizes of the stacks each step makes (a single parameter is a stack of 1);
    small limits, so that the test's tensors take every branch; compiled kernels eager."""
    monkeypatch.setattr(stacked, "STACK_NUMEL", 40)
    monkeypatch.setattr(stacked, "STACK_MAX", 90)
    monkeypatch.setattr(compiled, "kernel", lambda rule, maximize, flags: compiled.apply_rule)
    sizes: list[list[int]] = []
    make = stacked._stacks

    def spy(params: list[torch.Tensor], states: Any) -> list[list[torch.Tensor]]:
        out = make(params, states)
        sizes.append(sorted(len(s) for s in out))
        return out

    monkeypatch.setattr(stacked, "_stacks", spy)
    return sizes


def schedule(case: Case, steps: int = 16, **flags: Any) -> tuple[list, Any]:
    """Five 6x5 matrices (the fourth frozen for steps 4-7, the fifth non-contiguous), two
    4x3, one 9x8 (above STACK_NUMEL: alone), and for the rules that take them three
    vectors of 7 (stepped alone) and two 2x3x4 tensors; the second matrix has no gradient
    at step 2; zero gradients at step 5."""
    gen = torch.Generator().manual_seed(11)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    tensors = [rnd(6, 5) for _ in range(4)] + [rnd(5, 6).t(), rnd(4, 3), rnd(4, 3), rnd(9, 8)]
    if case.name != "muon":
        tensors += [rnd(7) for _ in range(3)] + [rnd(2, 3, 4) for _ in range(2)]
    params = [torch.nn.Parameter(t) for t in tensors]
    opt = CLASSES[case.name](params, **ours_kwargs(case), **flags)
    for step in range(steps):
        for i, p in enumerate(params):
            g = rnd(*p.shape) * (step != 5)
            p.grad = None if (i == 1 and step == 2) or (i == 3 and 4 <= step < 8) else g
        opt.step()
    return params, opt


@pytest.mark.parametrize("case", REDUCING_CASES, ids=lambda c: c.id)
def test_stacks_equal_the_plain_rule(case: Case, recorded: list) -> None:
    maximize = case.label == "defaults"
    plain, opt_plain = schedule(case, foreach=False, maximize=maximize)
    assert not recorded  # the plain path steps one tensor at a time
    fast, opt_fast = schedule(case, fused=True, maximize=maximize)
    for i, (x, y) in enumerate(zip(fast, plain, strict=True)):
        assert_close(x, y, what=f"param {i}")
    assert_close_state(opt_fast, opt_plain)
    # stacks formed: 4 + 1 matrices of 6x5 cut to 3 (STACK_MAX = 90 elements) and 2...
    assert max(max(sizes) for sizes in recorded) == 3
    # ...and a frozen layer, behind in count, is stepped apart from its kind
    assert opt_fast.state[fast[3]]["count"] == 12 and opt_fast.state[fast[0]]["count"] == 16
    for state in opt_fast.state.values():  # every slot its own memory, not a stack's row
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.numel():
                assert value.untyped_storage().nbytes() == value.numel() * value.element_size()


def test_a_refused_parameter_changes_nothing() -> None:
    """Muon refuses a vector: the compiled path makes every state before it steps any
    parameter, so nothing has moved when the error is raised."""
    params = [torch.nn.Parameter(torch.randn(4, 3)) for _ in range(2)]
    params.append(torch.nn.Parameter(torch.randn(5)))
    for p in params:
        p.grad = torch.randn(p.shape)
    before = [p.detach().clone() for p in params]
    opt = CLASSES["muon"](params, lr=0.1, fused=True)
    with pytest.raises(ValueError, match=r"2-D parameters \(matrices\) only.*\(5,\)"):
        opt.step()
    for p, b in zip(params, before, strict=True):
        assert torch.equal(p.detach(), b)
    assert all(s.get("count", 0) == 0 for s in opt.state.values())


FIRST_OF_EACH = [next(c for c in REDUCING_CASES if c.name == n) for n in REDUCING]


@pytest.mark.slow
@pytest.mark.parametrize("case", FIRST_OF_EACH, ids=lambda c: c.id)
def test_compiled_stacks_equal_the_plain_rule(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same schedule with the rule compiled for real (a kernel with ``batch_ndim=1``
    for the stacks, one without for the parameters stepped alone)."""
    monkeypatch.setattr(stacked, "STACK_NUMEL", 40)
    monkeypatch.setattr(stacked, "STACK_MAX", 90)
    plain, opt_plain = schedule(case, foreach=False)
    fast, opt_fast = schedule(case, fused=True)
    for i, (x, y) in enumerate(zip(fast, plain, strict=True)):
        assert_close(x, y, what=f"param {i}")
    assert_close_state(opt_fast, opt_plain)
    assert compiled.available() and not compiled._EAGER, (compiled._BROKEN, compiled._EAGER)
