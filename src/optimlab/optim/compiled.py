"""The compiled path: an elementwise rule compiled into one pass over flat buffers; a rule
that reduces over a tensor (Adafactor's row and column means, Muon's Newton-Schulz
iteration, the norms of LAMB and MARS, cautious masks) compiled on each whole tensor or
stack of small same-shape matrices (``stacked.py``).

The rule itself is compiled (``torch.compile``, inductor), together with the in-place
writes of the step: ``param += delta`` and each new state slot copied over the old. Per
bucket of parameters (``multi_tensor``: same device, dtypes, step count and state layout,
state slots in flat buffers) and per step:

1. The rule's per-step scalars (``Rule.per_step``: bias corrections, step sizes) are
   computed once, in Python, and passed to the kernel with the hyperparameters as scalar
   arguments: the kernel never evaluates ``beta1 ** t`` per element, and a schedule
   changing ``lr`` (or the step count changing) changes only an argument. Floats are
   symbolic from the first compile (``dynamic=True``), so is every buffer length: one
   compile serves every bucket and pack size.
2. Runs of parameters adjacent in memory whose gradients are adjacent too (flat storage,
   ``flat.py``: one run per bucket) are stepped in place as one span of at least
   ``DIRECT_NUMEL`` elements; so is any single large parameter. Smaller ones are
   gathered into packs of up to ``GATHER_NUMEL`` elements (few kernel calls).
3. The new scalar slots are ``count + 1`` and the per-step values of the same names
   (NAdam's ``mu_product``; see ``Rule.per_step``), kept in Python: the kernel sees only
   fixed placeholders for them, so it is never recompiled for a new count.

A kernel is compiled once per (rule, maximize, flag values) and reused by every optimizer
in the process; dtypes, devices and which slots exist are guarded inside it. inductor
keeps compiled code on disk (``TORCHINDUCTOR_CACHE_DIR``, default
``/tmp/torchinductor_$USER``), so a second process skips most of the compile. bfloat16 and
float16 are computed with eager's rounding (``emulate_precision_casts``); ``a * b + c``
is contracted into fused multiply-adds (``KERNEL_OPTIONS``).

Where compiling is unavailable (no C++ compiler, a device or Python version inductor does
not support) the first failure is said once in a ``RuntimeWarning``; that call runs the same
function eagerly (the multi-tensor path's operations, so the plain rule's results), and the
optimizer's later steps take the multi-tensor path.

The results equal the plain rule within the numerics tolerance, not bitwise: compiled code
fuses and may contract operations (tests/test_optim_compiled.py).
"""

from __future__ import annotations

import operator
import types
import warnings
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import Any

import torch

from ..core.arrays import namespace
from ..rules.base import Rule
from .multi_tensor import MultiTensorPath, _Bucket, _Pack
from .plain import GroupStep, PlainPath, States, grad_of, real
from .stacked import apply_rule, scalar_slots_after, step_tensors

# The default path compiles a group once its parameters have this many elements: below,
# the compile (seconds) outweighs what it saves per step for a long time. A rule that
# reduces over a tensor has no eager multi-tensor path (its alternative is the plain rule,
# one tensor at a time), so compiling saves more per element and repays itself on a group
# a quarter the size (1e6 elements: Adafactor 4.4 against 6.6 ms, Muon 31-33 against 39).
COMPILE_MIN_NUMEL = 1 << 20
COMPILE_MIN_NUMEL_REDUCING = 1 << 18
# A run of adjacent parameters (or one parameter) this long is stepped in place; shorter
# ones are gathered into packs of at most GATHER_NUMEL elements. Packs are large (unlike
# the eager path's cache-sized ones): a kernel call costs a fixed ~0.1 ms, and on a busy
# machine a multi-threaded call waits milliseconds for its threads, while the extra
# memory traffic of a large gather is a fraction of the step.
DIRECT_NUMEL = 1 << 16
GATHER_NUMEL = 1 << 22


# inductor's options for every kernel: bfloat16 and float16 rounded as eager rounds them;
# a * b + c contracted into one fused multiply-add (C++ -ffp-contract=fast, off by
# default in inductor), as torch's own fused CPU kernels do (vec::fmadd). The step moves
# bytes more than it computes, yet on the 2 vCPUs of our machines the fewer instructions
# showed: the kernel took 6-10% less time at 1e7 elements (SGD, AdamW, side by side).
KERNEL_OPTIONS: dict[str, str | int | bool | Callable[..., Any]] = {
    "emulate_precision_casts": True,
    "cpp.enable_floating_point_contract_flag": "fast",
}

_KERNELS: dict[tuple, Callable[..., dict[str, torch.Tensor]]] = {}
_BROKEN: list[str] = []  # why compiling failed in this process (then never tried again)
_EAGER: set[tuple] = set()  # kernels that hit the recompile limit: eager from then on


# A kernel is specialised per dtype, device, which slots exist (SGD's momentum buffer
# from its first step on), the branch a float hyperparameter takes (momentum 0 or not)
# and spans starting at offset 0 or 1: more than dynamo's default of 8 variants per
# function where one process steps many settings. Raised to this (never lowered) when
# the first kernel is made; past it, compiling fails and the steps run eagerly (said once).
RECOMPILE_LIMIT = 64


def _fresh_function(name: str) -> Callable[..., Any]:
    """``apply_rule`` under its own code object and name: torch.compile caches (and limits
    the recompiles of) each code object separately, and keeps what it learnt of a
    function's inputs (which of them vary) by name, so every kernel gets its own budget
    and its own history."""
    code = apply_rule.__code__.replace(co_name=name, co_qualname=name)
    return types.FunctionType(code, apply_rule.__globals__, name)


def _key(rule: Rule, maximize: bool, flags: tuple) -> tuple:
    """What a kernel is made for: the rule, ``maximize`` and the flag values."""
    return (rule.name, id(rule), maximize, flags)


def kernel(rule: Rule, maximize: bool, flags: tuple) -> Callable[..., dict[str, torch.Tensor]]:
    """The compiled ``apply_rule`` for a rule, ``maximize`` and its flag values (every
    hyperparameter that is not a float), made once per process."""
    key = _key(rule, maximize, flags)
    fn = _KERNELS.get(key)
    if fn is None:
        namespace(torch.empty(0))  # made here: the trace cannot build the rules' namespace
        dynamo = torch._dynamo.config
        dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
        compiled = torch.compile(
            _fresh_function(f"step_{rule.name}_{len(_KERNELS)}"),
            dynamic=True,
            fullgraph=True,
            options=KERNEL_OPTIONS,
        )
        fn = _KERNELS[key] = compiled
    return fn


def available() -> bool:
    """Whether compiling has not failed in this process."""
    return not _BROKEN


def flags_of(hp: dict[str, Any]) -> tuple:
    """The hyperparameters a kernel is made for: every one that is not a float."""
    return tuple((k, v) for k, v in sorted(hp.items()) if not isinstance(v, float | torch.Tensor))


def run(
    rule: Rule, state_type: Any, blank: dict[str, Any], maximize: bool, flags: tuple, args: tuple
) -> dict[str, torch.Tensor]:
    """``apply_rule`` compiled, or eagerly once compiling has failed (said once). Packs of
    0 or 1 elements run eagerly too: the compiler specialises those sizes, and with them
    the float arguments, so it would recompile at every step (and they cost nothing). A
    kernel that keeps recompiling (past ``RECOMPILE_LIMIT``) runs eagerly from then on,
    said once for it; the others stay compiled."""
    g, p, slots, hp, scalars = args
    key = _key(rule, maximize, flags)
    if not _BROKEN and key not in _EAGER and g.numel() > 1:
        try:
            fn = kernel(rule, maximize, flags)
            _forget_other_specialisations()
            return fn(rule, state_type, blank, maximize, g, p, slots, hp, scalars)
        except Exception as exc:  # compiling failed: no compiler, unsupported device, ...
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if type(exc).__name__ == "FailOnRecompileLimitHit":
                _EAGER.add(key)
                what = f"the compiled {rule.name} step recompiled {RECOMPILE_LIMIT} times"
            elif isinstance(exc, torch._dynamo.exc.Unsupported):  # this rule cannot be traced
                _EAGER.add(key)
                what = f"the {rule.name} step cannot be compiled"
            else:
                _BROKEN.append(why)
                what = "compiling the optimizer step failed"
            warnings.warn(
                f"optimlab: {what} ({why}); using the eager multi-tensor path instead "
                "(the same results within rounding)",
                RuntimeWarning,
                stacklevel=5,
            )
    return apply_rule(rule, state_type, blank, maximize, g, p, slots, hp, scalars)


def _forget_other_specialisations() -> None:
    """Clear the float inputs dynamo decided to specialise in an earlier compile. It keeps
    them process-wide by symbol name (``zf76``) and a successful compile does not clear
    them (torch 2.13), so a later compile of another kernel specialised its own float of
    that name on its value (NAdam's step size after SGD's kernel): a recompile at every
    step. Within one compile, dynamo restarts and uses them before this runs again."""
    state = getattr(torch._dynamo.symbolic_convert, "TensorifyState", None)
    if state is not None and state.force_specializations:
        state.clear()


_DATA_PTR = torch.Tensor.data_ptr  # unbound: twice as fast as a methodcaller in map


def _span(t: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """``n`` elements of ``t``'s storage from ``t``'s own element ``start`` on (a run of
    adjacent tensors as one flat view)."""
    return t.detach().as_strided((n,), (1,), t.storage_offset() + start)


def _adjacent(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether contiguous ``b`` starts where contiguous ``a`` ends, in the same storage."""
    return (
        a.dtype == b.dtype
        and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
        and a.storage_offset() + a.numel() == b.storage_offset()
    )


class CompiledBucket(_Bucket):
    """A bucket stepped by the compiled rule: runs in place, small tensors packed."""

    def _plan_packs(self) -> list[_Pack]:
        grads = [real(grad_of(p)) for p in self.owners]
        params = [real(p) for p in self.owners]
        self.grads_seen = [p.grad for p in self.owners]
        self.unchanged: int | None = None  # the token the checks above were made under
        self.runs: list[tuple[int, int]] = []  # (first, last) items of in-place runs
        self.run_items: list[int] = []  # the items in those runs, and their data_ptrs
        self.run_ptrs: list[int] = []
        runs, first = [], 0
        for i in range(1, len(params) + 1):
            if i == len(params) or not (
                _adjacent(params[i - 1], params[i]) and _adjacent(grads[i - 1], grads[i])
            ):
                runs.append((first, i - 1))
                first = i
        packs: list[_Pack] = []
        small: list[int] = []
        for first, last in runs:
            start, stop = self.offsets[first], self.offsets[last + 1]
            if stop - start >= DIRECT_NUMEL:
                items = list(range(first, last + 1))
                packs.append(_Pack(start, stop, items, (first, 0, stop - start)))
                if last > first:
                    self.runs.append((first, last))
                    self.run_items += items
                    self.run_ptrs += [params[i].data_ptr() for i in items]
            else:
                small += range(first, last + 1)
        return packs + self._gather_packs(small)

    def _gather_packs(self, items: list[int]) -> list[_Pack]:
        """Packs of at most ``GATHER_NUMEL`` elements (or one item) over ``items``, each
        gathered into the pack buffer (a pack's items are consecutive in the bucket, so
        its state is one slice of each flat slot)."""
        packs: list[_Pack] = []
        current: list[int] = []
        for i in items:
            if current and (
                i != current[-1] + 1
                or self.offsets[i + 1] - self.offsets[current[0]] > GATHER_NUMEL
            ):
                packs.append(
                    _Pack(self.offsets[current[0]], self.offsets[current[-1] + 1], current)
                )
                current = []
            current.append(i)
        if current:
            packs.append(_Pack(self.offsets[current[0]], self.offsets[current[-1] + 1], current))
        return packs

    def valid(self, states: States, unchanged: int | None) -> bool:
        """``_Bucket.valid``'s checks, vectorised: a step over thousands of parameters
        must not spend milliseconds in Python checking that nothing changed. The gradients
        and the places of the in-place runs are not checked again under the
        ``unchanged`` token (``GroupStep.unchanged``) they were last found valid under."""
        owners, mine = self.owners, self.states
        if unchanged is None or unchanged != self.unchanged:
            self.unchanged = None
            grads = [p.grad for p in owners]
            if not all(map(operator.is_, grads, self.grads_seen)):
                if any(
                    g is None or g.dtype != self.grad_dtype or not g.is_contiguous() for g in grads
                ):
                    return False
                for a, b in self.runs:
                    if not all(
                        _adjacent(real(grad_of(owners[i - 1])), real(grad_of(owners[i])))
                        for i in range(a + 1, b + 1)
                    ):
                        return False
                self.grads_seen = grads
            if list(map(_DATA_PTR, map(owners.__getitem__, self.run_items))) != self.run_ptrs:
                return False
        if not all(map(operator.is_, map(states.get, owners), mine)):
            return False
        base, n_keys = mine[0], len(self.tensor_slots) + len(self.scalar_slots)
        if set(map(len, mine)) != {n_keys}:
            return False
        for k in self.tensor_slots:
            if not all(map(operator.is_, map(dict.get, mine, repeat(k)), self.views[k])):
                return False
        for k in self.scalar_slots:
            if k not in base:
                return False
            values = list(map(dict.get, mine, repeat(k)))
            if set(map(type, values)) != {type(base[k])} or values.count(base[k]) != len(mine):
                return False
        self.unchanged = unchanged
        return True

    def step(self, plain: PlainPath, work: GroupStep) -> None:
        """The compiled rule once per run or pack; the scalar slots updated in Python."""
        rule, hp, first = plain.rule, work.hyperparams, self.states[0]
        scalars = rule.per_step(plain.state_type(**first), **hp) if rule.per_step else None
        fixed, flags = plain.fresh_scalars, flags_of(hp)
        blank = {k: fixed[k] for k in self.scalar_slots if first[k] is not None}
        empty = {k: None for k in self.scalar_slots if first[k] is None}
        flat_before = dict(self.flat)  # slots created during this step start as None
        grads: list[Any] = self.grads_seen  # this step's gradients: valid() just saw them
        params = self.owners
        if self.any_complex:
            grads, params = [real(g) for g in grads], [real(p) for p in params]
        for pack in self.packs:
            n = pack.stop - pack.start
            if pack.chunk is not None:
                i, a, b = pack.chunk
                g, p = _span(grads[i], a, b - a), _span(params[i], a, b - a)
            else:
                torch._foreach_copy_(pack.g_views, [grads[i] for i in pack.items])
                torch._foreach_copy_(pack.p_views, [params[i] for i in pack.items])
                g, p = self.g_buf[:n], self.p_buf[:n]
            slots = {**empty, **{k: f[pack.start : pack.stop] for k, f in flat_before.items()}}
            args = (g, p, slots, hp, scalars)
            created = run(rule, plain.state_type, blank, work.maximize, flags, args)
            for key, value in created.items():
                dtype = value.dtype if work.state_dtype is None else work.state_dtype
                self._slot(key, dtype)[pack.start : pack.stop].copy_(value)
            if pack.chunk is None:
                torch._foreach_copy_([params[i] for i in pack.items], pack.p_views)
        new = scalar_slots_after(blank, scalars, first["count"])
        deque(map(dict.update, self.states, repeat(new)), maxlen=0)  # each state, in C


class CompiledPath(MultiTensorPath):
    """The compiled path of one optimizer: the multi-tensor path's plans (buckets, flat
    state), stepped by the compiled rule. ``step`` has the plain path's contract and its
    results within the numerics tolerance."""

    bucket_type = CompiledBucket

    def __init__(self, plain: PlainPath) -> None:
        super().__init__(plain)
        self._sizes: dict[tuple[int, ...], int] = {}

    def step(self, states: States, work: GroupStep) -> None:
        """Elementwise rules: the buckets over flat buffers; others: :meth:`step_tensors`."""
        if self.plain.rule.elementwise_with(work.hyperparams):
            super().step(states, work)
        else:
            self.step_tensors(states, work)

    def step_tensors(self, states: States, work: GroupStep) -> None:
        """The rule compiled on each parameter or stack of small same-shape parameters
        (``stacked.py``; inductor fuses the elementwise work around the reductions)."""

        def apply(rule: Rule, state_type: Any, blank: dict, maximize: bool, args: tuple) -> dict:
            return run(rule, state_type, blank, maximize, flags_of(args[3]), args)

        step_tensors(self.plain, states, work, apply)

    def worthwhile(self, work: GroupStep) -> bool:
        """Whether the default path should compile this group's step: compiling works
        here and the group has at least ``COMPILE_MIN_NUMEL`` elements to step
        (``COMPILE_MIN_NUMEL_REDUCING`` for a rule that is not elementwise)."""
        if _BROKEN:
            return False
        ids = work.ids
        size = self._sizes.get(ids)
        if size is None:
            self._sizes.clear()
            size = self._sizes[ids] = sum(p.numel() for p in work.params)
        if self.plain.rule.elementwise_with(work.hyperparams):
            return size >= COMPILE_MIN_NUMEL
        return size >= COMPILE_MIN_NUMEL_REDUCING
