"""The compiled path (``fused=True``, optim/compiled.py) and how the default path is chosen.

Two layers, tested apart:

- the plumbing (buckets, in-place runs of adjacent tensors, gathered packs, per-step
  scalars computed outside the kernel, scalar slots kept in Python, slots created
  mid-run): with the kernel run eagerly, every element sees the plain rule's operations,
  so the path equals the plain rule bitwise on every fast-path case, with and without
  flat storage (default suite);
- the compiled kernel itself (marked ``slow``: each compile takes seconds): the same
  cases within the numerics tolerance, no recompile when a schedule changes ``lr``, and
  the fallback when compiling fails (said once).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from cases import CASES, Case
from numerics import assert_close
from test_optim_fast import FAST_CASES, assert_same_state, run_schedule
from torch_cases import one_thread, ours_kwargs

from optimlab.optim import CLASSES, compiled, multi_tensor
from optimlab.optim.plain import GroupStep

pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread


@pytest.fixture
def eager_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled path with its kernel run eagerly (same operations as the plain rule)."""
    monkeypatch.setattr(compiled, "kernel", lambda rule, maximize, flags: compiled.apply_rule)


@pytest.fixture
def small_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans and packs small enough that the test's tensors take every branch."""
    monkeypatch.setattr(compiled, "DIRECT_NUMEL", 16)
    monkeypatch.setattr(compiled, "GATHER_NUMEL", 8)
    monkeypatch.setattr(multi_tensor, "PACK_NUMEL", 8)


def assert_close_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer, rtol=None) -> None:
    """Every state slot of ``a`` within the numerics tolerance of ``b``'s."""
    for pa, pb in zip(a.param_groups[0]["params"], b.param_groups[0]["params"], strict=True):
        sa, sb = a.state[pa], b.state[pb]
        assert sa.keys() == sb.keys()
        for key, y in sb.items():
            x = sa[key]
            if isinstance(y, torch.Tensor):
                assert isinstance(x, torch.Tensor) and x.dtype == y.dtype, key
                assert_close(x, y, rtol=rtol, what=key)
            elif isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-13), key
            else:
                assert x == y, key


@pytest.mark.usefixtures("eager_kernel", "small_spans")
@pytest.mark.parametrize("flat", [False, True], ids=["separate", "flat"])
@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: c.id)
def test_compiled_path_plumbing_equals_plain_rule(case: Case, flat: bool) -> None:
    maximize = case.label == "defaults"
    plain, opt_plain = run_schedule(case, foreach=False, maximize=maximize)
    fast, opt_fast = run_schedule(case, fused=True, flat=flat, maximize=maximize)
    chosen, paths = _choice(opt_fast)
    assert chosen is paths.compiled  # a reducing option (cautious): compiled per tensor
    for x, y in zip(fast, plain, strict=True):
        assert torch.equal(x, y)
    assert_same_state(opt_fast, opt_plain)
    counts = [opt_fast.state[p]["count"] for p in fast]
    assert counts[0] == 20 and counts[1] == 30 and counts[3] == 29


def _choice(opt: Any) -> tuple[Any, Any]:
    """The path ``opt`` takes for its first group, and the paths it chose among."""
    group = opt.param_groups[0]
    work: GroupStep | None = opt._work(0, group)
    assert work is not None
    paths = opt._paths_of(opt.group_rule(group))
    return opt._path(group, work, paths), paths


@pytest.mark.usefixtures("eager_kernel")
def test_flat_bucket_is_one_span_and_small_tensors_are_packed(monkeypatch) -> None:
    """Flat storage: 200 adjacent tensors are one in-place span (one kernel call);
    separate ones are gathered into packs of at most GATHER_NUMEL elements."""
    calls: list[int] = []

    def counting(rule, state_type, blank, maximize, g, p, *rest):
        calls.append(g.numel())
        return compiled.apply_rule(rule, state_type, blank, maximize, g, p, *rest)

    monkeypatch.setattr(compiled, "kernel", lambda rule, maximize, flags: counting)
    monkeypatch.setattr(compiled, "GATHER_NUMEL", 2048)
    for flat, want in ((True, [200 * 500]), (False, [2000] * 50)):
        params = [torch.nn.Parameter(torch.randn(500)) for _ in range(200)]
        opt = CLASSES["adamw"](params, fused=True, flat=flat)
        for p in params:
            p.grad = torch.randn(500)
        calls.clear()
        opt.step()
        assert calls == want


EDITS = ("none", "state_slot", "grad_by_hand", "moved", "params_appended", "grad_none")


def _edit_and_train(edit: str, **flags: Any) -> tuple[list[torch.Tensor], Any, list[Any]]:
    """AdamW for 8 steps on a small MLP, gradients accumulating in place
    (``zero_grad(set_to_none=False)``), with ``edit`` made before the 5th step: a state
    slot replaced, a gradient set by hand, a parameter moved (``p.data = ...``), two
    parameters appended to the group in place (one without a gradient), a gradient set to
    None. Returns the parameters, the optimizer and each step's ``GroupStep.unchanged``."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    extra = [torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(7))]
    opt = CLASSES["adamw"](m.parameters(), lr=0.01, weight_decay=0.1, **flags)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(32, 6, generator=gen), torch.randn(32, 3, generator=gen)
    w = m[0].weight
    tokens = []
    for step in range(8):
        opt.zero_grad(set_to_none=False)
        torch.nn.functional.mse_loss(m(x), y).backward()
        if step == 4:
            if edit == "state_slot":
                opt.state[w]["m"] = torch.full_like(w, 0.5)
            elif edit == "grad_by_hand":
                w.grad = torch.linspace(-1.0, 1.0, w.numel()).view_as(w)
            elif edit == "moved":
                w.data = w.data.clone()
            elif edit == "params_appended":
                opt.param_groups[0]["params"].extend(extra)
                extra[0].grad = torch.ones(5)
            elif edit == "grad_none":
                m[2].bias.grad = None
        if opt._flat is not None:
            opt._flat.prepare()
            work = opt._work(0, opt.param_groups[0])
            tokens.append(work.unchanged if work is not None else None)
        opt.step()
    return [*m.parameters(), *extra], opt, tokens


@pytest.mark.usefixtures("eager_kernel", "small_spans")
@pytest.mark.parametrize("edit", EDITS)
def test_flat_steps_under_one_token_still_see_every_edit(edit: str) -> None:
    """Flat storage with gradients in place: while nothing changes, each step carries the
    same token (``GroupStep.unchanged``) and the compiled path skips re-checking gradients
    and places; every edit between steps is still seen (results equal the plain rule
    bitwise, parameters and state)."""
    fast, opt_fast, tokens = _edit_and_train(edit, fused=True, flat=True)
    plain, opt_plain, _ = _edit_and_train(edit, foreach=False)
    assert len(fast) == len(plain) == 6
    for x, y in zip(fast, plain, strict=True):
        assert torch.equal(x, y)
    assert_same_state(opt_fast, opt_plain)
    if edit == "params_appended":  # the one with a gradient stepped from then on
        assert (opt_fast.state[fast[4]]["count"], opt_fast.state[fast[5]]) == (4, {})
    assert tokens[1] is not None and tokens[1:4] == [tokens[1]] * 3  # steady: one token
    if edit in ("grad_by_hand", "moved"):  # a gradient adopted, or the buffers rebuilt
        assert None not in tokens[4:] and tokens[4] != tokens[3]
    elif edit in ("params_appended", "grad_none"):  # not all in the buffers, or no grad
        assert tokens[4] is None
    else:
        assert tokens[4] == tokens[3]


def test_default_path_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small groups: multi-tensor; large ones (>= COMPILE_MIN_NUMEL): compiled; fused=True
    compiled; foreach=True or fused=False multi-tensor; foreach=False or a reducing
    option (cautious): plain; compiling broken: multi-tensor whatever was asked."""
    params = [torch.nn.Parameter(torch.randn(100)) for _ in range(3)]
    for p in params:
        p.grad = torch.randn(100)

    def path(**kw: Any) -> str:
        opt = CLASSES["adam"](params, **kw)
        chosen, paths = _choice(opt)
        return {
            id(paths.plain): "plain",
            id(paths.fast): "multi",
            id(paths.compiled): "compiled",
        }[id(chosen)]

    assert path() == "multi"
    assert path(fused=True) == "compiled"
    assert path(foreach=True) == path(fused=False) == "multi"
    assert path(foreach=False) == path(cautious=True) == "plain"
    assert path(foreach=True, cautious=True) == "plain"
    assert path(fused=True, cautious=True) == "compiled"
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL", 300)
    monkeypatch.setattr(compiled, "COMPILE_MIN_NUMEL_REDUCING", 300)
    assert path() == path(cautious=True) == "compiled" and path(foreach=True) == "multi"
    monkeypatch.setattr(compiled, "_BROKEN", ["no compiler"])
    assert path() == path(fused=True) == "multi"


def test_default_path_of_a_reducing_rule() -> None:
    """A rule that is not elementwise (Adafactor) compiles from COMPILE_MIN_NUMEL_REDUCING
    elements by default (its alternative is the plain rule); below, the plain rule."""

    def path(numel: int) -> str:
        params = [torch.nn.Parameter(torch.zeros(numel // 64, 64)) for _ in range(2)]
        for p in params:
            p.grad = torch.zeros_like(p)
        chosen, paths = _choice(CLASSES["adafactor"](params))
        return "compiled" if chosen is paths.compiled else "plain" if chosen is paths.plain else "?"

    assert compiled.COMPILE_MIN_NUMEL_REDUCING < compiled.COMPILE_MIN_NUMEL
    assert path(compiled.COMPILE_MIN_NUMEL_REDUCING // 2) == "compiled"  # 2 tensors: the limit
    assert path(compiled.COMPILE_MIN_NUMEL_REDUCING // 2 - 64) == "plain"


def test_failed_compile_warns_once_and_steps_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_compiler(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no C++ compiler found\nmore text")

    monkeypatch.setattr(compiled, "_BROKEN", [])
    monkeypatch.setattr(compiled, "_KERNELS", {})
    monkeypatch.setattr(torch, "compile", no_compiler)
    case = next(c for c in FAST_CASES if c.name == "adamw")
    plain, opt_plain = run_schedule(case, steps=6, foreach=False)
    with pytest.warns(RuntimeWarning, match="compiling the optimizer step failed") as record:
        fast, opt_fast = run_schedule(case, steps=6, fused=True)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert "RuntimeError: no C++ compiler found" in str(record[0].message)
    for x, y in zip(fast, plain, strict=True):
        assert torch.equal(x, y)
    assert_same_state(opt_fast, opt_plain)


def fail_one_kernel(monkeypatch: pytest.MonkeyPatch, name: str, exc: Exception) -> None:
    """Every kernel runs eagerly (``apply_rule``) but ``name``'s, which raises ``exc``;
    compiling has not failed yet in this process."""

    def kernel(rule, maximize, flags):
        if rule.name == name:
            raise exc
        return compiled.apply_rule

    monkeypatch.setattr(compiled, "_BROKEN", [])
    monkeypatch.setattr(compiled, "_EAGER", set())
    monkeypatch.setattr(compiled, "kernel", kernel)


def test_a_kernel_past_the_recompile_limit_runs_eagerly_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kernel that keeps recompiling falls back to eager (said once, naming the rule);
    compiling stays on for the other rules."""

    class FailOnRecompileLimitHit(Exception):  # dynamo's exception, by name
        pass

    fail_one_kernel(monkeypatch, "adamw", FailOnRecompileLimitHit("Hard failure (fullgraph)"))
    case = next(c for c in FAST_CASES if c.name == "adamw")
    plain, _ = run_schedule(case, steps=6, foreach=False)
    with pytest.warns(RuntimeWarning, match="the compiled adamw step recompiled 64 times") as rec:
        fast, _ = run_schedule(case, steps=6, fused=True)
    assert len(rec) == 1 and compiled.available()
    assert [key[0] for key in compiled._EAGER] == ["adamw"]
    for x, y in zip(fast, plain, strict=True):
        assert torch.equal(x, y)
    lion = next(c for c in FAST_CASES if c.name == "lion")
    run_schedule(lion, steps=2, fused=True)  # still compiled: no warning
    assert [key[0] for key in compiled._EAGER] == ["adamw"]


# Rules that reduce over a tensor (not elementwise, not group-wide): compiled per tensor.
REDUCING = ("adafactor", "muon", "lamb", "mars")
REDUCING_CASES = [c for c in CASES if c.name in REDUCING]


def reducing_schedule(case: Case, steps: int = 24, **flags: Any) -> tuple[list, Any]:
    """Matrices (one of them non-contiguous), and for the rules that take them a zero-size,
    a 1-D, a 3-D and a 0-d parameter; one gradient None at step 5, a "layer" frozen for
    steps 8-13, zero gradients every 7th step."""
    gen = torch.Generator().manual_seed(5)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    tensors = [rnd(6, 5), rnd(3, 7), rnd(4, 3).t()]
    if case.name != "muon":  # Muon steps matrices only
        tensors += [rnd(0, 3), rnd(9), rnd(2, 3, 4), rnd()]
    params = [torch.nn.Parameter(t) for t in tensors]
    opt = CLASSES[case.name](params, **ours_kwargs(case), **flags)
    for step in range(steps):
        for i, p in enumerate(params):
            g = rnd(*p.shape) * (step % 7 != 3)
            p.grad = None if (i == 1 and step == 5) or (i == 0 and 8 <= step < 14) else g
        opt.step()
    return params, opt


@pytest.mark.usefixtures("eager_kernel")
@pytest.mark.parametrize("case", REDUCING_CASES, ids=lambda c: c.id)
def test_reducing_rules_compiled_per_tensor_plumbing_equals_plain_rule(case: Case) -> None:
    maximize = case.label == "defaults"
    plain, opt_plain = reducing_schedule(case, foreach=False, maximize=maximize)
    fast, opt_fast = reducing_schedule(case, fused=True, maximize=maximize)
    chosen, paths = _choice(opt_fast)
    assert chosen is paths.compiled
    for x, y in zip(fast, plain, strict=True):
        assert torch.equal(x, y)
    assert_same_state(opt_fast, opt_plain)
    assert opt_fast.state[fast[0]]["count"] == 18 and opt_fast.state[fast[1]]["count"] == 23


def test_a_rule_that_cannot_be_traced_runs_eagerly_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """dynamo refusing one rule (a graph break under fullgraph) sends that kernel to eager,
    said once naming the rule; the results are the plain rule's, and compiling stays on."""

    fail_one_kernel(monkeypatch, "adafactor", torch._dynamo.exc.Unsupported("hasattr call"))
    case = next(c for c in REDUCING_CASES if c.name == "adafactor")
    plain, opt_plain = reducing_schedule(case, steps=6, foreach=False)
    with pytest.warns(RuntimeWarning, match="the adafactor step cannot be compiled") as rec:
        fast, opt_fast = reducing_schedule(case, steps=6, fused=True)
    assert len(rec) == 1 and compiled.available()
    assert [key[0] for key in compiled._EAGER] == ["adafactor"]
    for x, y in zip(fast, plain, strict=True):
        assert torch.equal(x, y)
    assert_same_state(opt_fast, opt_plain)


# ---------------------------------------------------------------- compiled for real (slow)


@pytest.mark.slow
@pytest.mark.parametrize("flat", [False, True], ids=["separate", "flat"])
@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: c.id)
def test_compiled_equals_plain_rule(case: Case, flat: bool, small_spans: None) -> None:
    maximize = case.label == "defaults"
    plain, opt_plain = run_schedule(case, foreach=False, maximize=maximize)
    fast, opt_fast = run_schedule(case, fused=True, flat=flat, maximize=maximize)
    for i, (x, y) in enumerate(zip(fast, plain, strict=True)):
        assert_close(x, y, what=f"param {i}")
    assert_close_state(opt_fast, opt_plain)
    # compiled, not the eager fallback
    assert compiled.available(), compiled._BROKEN
    assert not compiled._EAGER, compiled._EAGER


@pytest.mark.slow
@pytest.mark.parametrize("case", REDUCING_CASES, ids=lambda c: c.id)
def test_reducing_rules_compiled_equal_plain_rule(case: Case) -> None:
    maximize = case.label == "defaults"
    plain, opt_plain = reducing_schedule(case, foreach=False, maximize=maximize)
    fast, opt_fast = reducing_schedule(case, fused=True, maximize=maximize)
    for i, (x, y) in enumerate(zip(fast, plain, strict=True)):
        assert_close(x, y, what=f"param {i}")
    assert_close_state(opt_fast, opt_plain)
    assert compiled.available() and not compiled._EAGER, (compiled._BROKEN, compiled._EAGER)


@pytest.mark.slow
def test_muon_bfloat16_iteration_compiled_equals_plain_rule() -> None:
    """Muon with ``ns_dtype="bfloat16"`` compiled: inductor fuses the bfloat16 iteration's
    elementwise work with other roundings than eager, so the two agree to bfloat16's
    resolution (2^-8; 5e-2 leaves room for five iterations), not to float32's; the
    parameters and the momentum stay float32."""
    case = Case("muon", {"lr": 0.02, "ns_dtype": "bfloat16"}, "bf16")
    runs = [
        reducing_schedule(case, steps=8, **flags) for flags in ({"foreach": False}, {"fused": True})
    ]
    (plain, opt_plain), (fast, opt_fast) = runs
    for i, (x, y) in enumerate(zip(fast, plain, strict=True)):
        assert x.dtype == torch.float64
        assert_close(x, y, rtol=5e-2, what=f"param {i}")
    assert_close_state(opt_fast, opt_plain, rtol=5e-2)
    assert compiled.available() and not compiled._EAGER, (compiled._BROKEN, compiled._EAGER)


@pytest.mark.slow
def test_no_kernel_inherits_another_kernels_specialisations(small_spans: None) -> None:
    """dynamo keeps floats it had to specialise by symbol name across compiles; without
    clearing them, NAdam compiled after SGD with dampening specialised its step size and
    recompiled at every step (past the limit: eager). 70 steps stay compiled."""
    cases = {c.id: c for c in FAST_CASES}
    run_schedule(cases["sgd-dampening"], steps=5, fused=True)
    run_schedule(cases["nadam-defaults"], steps=RECOMPILE_STEPS, fused=True, maximize=True)
    assert compiled.available() and not compiled._EAGER, compiled._EAGER


RECOMPILE_STEPS = compiled.RECOMPILE_LIMIT + 6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adamw", "sgd", "lion"])
def test_compiled_bf16_params_fp32_state(name: str, small_spans: None) -> None:
    """bf16 parameters with fp32 state: the compiled kernel rounds as eager does
    (emulate_precision_casts), so it agrees with the plain rule to a few bf16 ulps of the
    parameters (bf16's eps is 7.8e-3: 2e-2 leaves room for one rounding flip amplified
    over 12 steps) and to the float32 bound on the fp32 state."""
    runs = []
    for flags in ({"foreach": False}, {"fused": True}):
        gen = torch.Generator().manual_seed(0)
        params = [
            torch.nn.Parameter(torch.randn(5, 40, generator=gen).bfloat16()) for _ in range(3)
        ]
        opt = CLASSES[name](params, lr=0.01, state_dtype=torch.float32, **flags)
        for _ in range(12):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).bfloat16()
            opt.step()
        runs.append((params, opt))
    (fast, opt_fast), (plain, opt_plain) = runs[1], runs[0]
    for x, y in zip(fast, plain, strict=True):
        assert x.dtype == torch.bfloat16
        assert_close(x, y, rtol=2e-2)
    assert_close_state(opt_fast, opt_plain, rtol=2e-2)


@pytest.mark.slow
def test_lr_schedule_and_step_count_never_recompile() -> None:
    from torch._dynamo.utils import counters

    params = [torch.nn.Parameter(torch.randn(3000)) for _ in range(2)]
    opt = CLASSES["adamw"](params, lr=0.01, weight_decay=0.1, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + t))
    graphs = []
    for _ in range(8):
        for p in params:
            p.grad = torch.randn(3000)
        opt.step()
        sched.step()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[-1] == graphs[0]  # compiled once at the first step, never again


@pytest.mark.slow
def test_fresh_process_compiles_without_falling_back() -> None:
    """In a new process the compiled kernel is the first thing to run a rule (the rules'
    array namespace must exist before tracing): no warning, the kernel is used."""
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from optimlab.optim import AdamW, compiled\n"
        "p = torch.nn.Parameter(torch.ones(10)); p.grad = torch.ones(10)\n"
        "AdamW([p], lr=0.1, fused=True).step()\n"
        "assert compiled.available() and compiled._KERNELS, compiled._BROKEN\n"
        "print(round(p[0].item(), 6))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "0.899"  # 1 - lr - lr * weight_decay (0.01)
