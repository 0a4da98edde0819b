"""Step-speed benchmark: optimlab's torch optimizers against torch.optim, in one run.

Times one ``step()`` (gradients fixed; the fastest of ``repeats`` rounds in which the paths
take turns, after warm-up) for each path that applies to the optimizer:

- torch's for-loop (``foreach=False``), ``foreach`` and ``fused`` implementations (for
  Lion, which torch lacks, a reference written with torch's in-place ``_foreach`` ops);
- optimlab's plain per-tensor rule (``foreach=False``), the eager multi-tensor path
  (``foreach=True``), the compiled rule (``fused=True``), the compiled rule over flat
  storage (``fused=True, flat=True``) and the default (no flag).

Reports ms per step, the first step's latency (the compile, for a compiled path the
first time this process compiles that rule), the ratios to torch's foreach and fused
paths (or the best torch path the optimizer has), the achieved bandwidth (bytes an ideal
step moves / time) and the time over the floor: that ideal traffic at the bandwidth of a
large in-place pass measured in the same run (``a.add_(b)``: two streams read, one
written back where it was read, as an optimizer step writes its parameter and state). A
copy into another tensor is not a floor: the CPU reads each destination line before
writing it, so ``dst.copy_(src)`` ran at 27 GB/s (counting bytes read and written) where
``a.add_(b)`` ran at 42-50 GB/s and torch's fused AdamW at 48-62.
:func:`compile_times` measures the compile of a fresh process with a cold and then a
warm inductor cache. Numbers are printed, never asserted.

Used by ``benchmarks/step_speed.py`` (full sizes) and ``optimlab bench`` (quick sizes).
"""

from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core import checks
from .classes import optimizer_class


@dataclass(frozen=True)
class Bench:
    """One benchmarked optimizer: our registry row, torch's class, hyperparameters, and the
    bytes an ideal fp32 step reads and writes per parameter element."""

    ours: str
    torch_class: str | None  # torch.optim class name (None: the foreach reference below)
    hp: dict[str, Any]
    bytes_per_element: int  # p, g read and p written, plus each state slot read and written
    matrices: bool = False  # tensors are square-ish matrices (Adafactor factors, Muon needs)
    ours_hp: dict[str, Any] = field(default_factory=dict)  # ours only, to compute what torch does


BENCHES: dict[str, Bench] = {
    "adamw": Bench("adamw", "AdamW", {"lr": 1e-3, "weight_decay": 1e-2}, 28),
    "sgd_momentum": Bench("sgd", "SGD", {"lr": 1e-3, "momentum": 0.9}, 20),
    "lion": Bench("lion", None, {"lr": 1e-4, "weight_decay": 1e-2}, 20),
    "adafactor": Bench("adafactor", "Adafactor", {"lr": 1e-2}, 12, matrices=True),
    # torch.optim.Muon runs Newton-Schulz in bfloat16: ours does the same here
    "muon": Bench(
        "muon", "Muon", {"lr": 1e-3}, 20, matrices=True, ours_hp={"ns_dtype": "bfloat16"}
    ),
}
TORCH_PATHS = ("torch for-loop", "torch foreach", "torch fused")
OURS: dict[str, dict[str, Any]] = {
    "optimlab plain": {"foreach": False},
    "optimlab multi-tensor": {"foreach": True},
    "optimlab compiled": {"fused": True},
    "optimlab compiled+flat": {"fused": True, "flat": True},
    "optimlab": {},  # the default path
}
PATHS = (*TORCH_PATHS, *OURS)


class ForeachLion(torch.optim.Optimizer):
    """Lion written the way torch writes its ``foreach`` optimizers (in-place
    ``_foreach`` ops over the whole group): the reference for an optimizer torch lacks."""

    def __init__(self, params: Any, lr: float, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self) -> None:  # type: ignore[override]
        beta1, beta2 = 0.9, 0.99
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            ms = [self.state[p].setdefault("m", torch.zeros_like(p)) for p in params]
            torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            c = torch._foreach_lerp(ms, grads, 1 - beta1)
            torch._foreach_sign_(c)
            torch._foreach_add_(params, c, alpha=-group["lr"])
            torch._foreach_lerp_(ms, grads, 1 - beta2)


def make_optimizer(bench: Bench, path: str) -> Callable[[list[torch.Tensor]], Any] | None:
    """Builds the optimizer of ``path`` for ``bench``; None where the path does not apply."""
    if path in OURS:
        cls: Any = optimizer_class(bench.ours)
        if not cls._arguments.spec.rule.elementwise and path in (
            "optimlab multi-tensor",
            "optimlab compiled+flat",
        ):
            return None  # reducing rules: these rows would repeat plain's and compiled's
        return lambda params: cls(params, **bench.hp, **bench.ours_hp, **OURS[path])
    if bench.torch_class is None:  # Lion: one reference implementation
        return (lambda params: ForeachLion(params, **bench.hp)) if path == "torch foreach" else None
    torch_cls = getattr(torch.optim, bench.torch_class)
    flag = {"torch for-loop": {"foreach": False}, "torch foreach": {"foreach": True}}.get(path)
    if path == "torch fused":
        flag = {"fused": True} if bench.torch_class in ("AdamW", "SGD") else None
    if bench.torch_class == "Muon":  # Muon has one implementation (no flags)
        flag = {} if path == "torch for-loop" else None
    return None if flag is None else (lambda params: torch_cls(params, **bench.hp, **flag))


@dataclass(frozen=True)
class Layout:
    """``numel`` parameter elements split evenly over ``tensors`` tensors."""

    numel: int
    tensors: int

    @property
    def label(self) -> str:
        return f"{self.numel:.0e} in {self.tensors} tensor{'s' if self.tensors > 1 else ''}"

    def shape(self, matrices: bool) -> tuple[int, ...]:
        """Each tensor's shape: a vector, or the most nearly square matrix of its size."""
        each = self.numel // self.tensors
        if not matrices:
            return (each,)
        rows = max(r for r in range(1, math.isqrt(each) + 1) if each % r == 0)
        return (rows, each // rows)


@dataclass(frozen=True)
class Row:
    optimizer: str
    layout: str
    path: str
    ms: float
    first_ms: float  # the first step (the compile, for a compiled path's first use)
    vs_foreach: float  # ms / torch foreach ms (< 1 is faster)
    vs_fused: float  # ms / torch fused ms (where torch lacks it: its fastest path's)
    gb_s: float
    x_floor: float  # ms / (ideal bytes / in-place bandwidth)


def make_params(layout: Layout, matrices: bool, seed: int = 0) -> list[torch.Tensor]:
    """``layout``'s parameters (square-ish matrices with ``matrices``), each with a
    gradient, drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    shape = layout.shape(matrices)
    params: list[torch.Tensor] = []
    for _ in range(layout.tensors):
        p = torch.nn.Parameter(torch.randn(shape, generator=gen))
        p.grad = torch.randn(shape, generator=gen)
        params.append(p)
    return params


def time_steps(optimizers: dict[str, Any], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Fastest seconds of one ``step()`` per optimizer over ``repeats`` rounds.

    The optimizers take turns (one step each per round), so a busy machine slows every
    path alike; the minimum is the least disturbed step.
    """
    for opt in optimizers.values():
        for _ in range(warmup):
            opt.step()
    best = dict.fromkeys(optimizers, math.inf)
    for _ in range(repeats):
        for name, opt in optimizers.items():
            start = time.perf_counter()
            opt.step()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def inplace_bandwidth(numel: int = 25_000_000, repeats: int = 5) -> float:
    """GB/s of ``a.add_(b)`` on fp32 tensors (12 bytes per element: ``a`` and ``b`` read,
    ``a`` written in place; bytes / fastest time)."""
    a, b = torch.randn(numel), torch.randn(numel)
    a.add_(b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a.add_(b)
        times.append(time.perf_counter() - start)
    return 3 * 4 * numel / min(times) / 1e9


def _first_steps(
    bench: Bench, layout: Layout, paths: Sequence[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Each applicable path's optimizer after its first step, and that step's seconds."""
    opts, first = {}, {}
    for path in paths:
        make = make_optimizer(bench, path)
        if make is None:
            continue
        opt = make(make_params(layout, bench.matrices))
        start = time.perf_counter()
        opt.step()
        first[path] = time.perf_counter() - start
        opts[path] = opt
    return opts, first


def run(
    layouts: Sequence[Layout],
    optimizers: Sequence[str] = ("adamw", "sgd_momentum"),
    paths: Sequence[str] = PATHS,
    repeats: int = 10,
    report: Callable[[Row], None] | None = None,
    bandwidth: float = math.nan,
) -> list[Row]:
    """Time every (optimizer, layout, path); rows in that order."""
    rows = []
    for name in optimizers:
        bench = BENCHES[name]
        for layout in layouts:
            opts, first = _first_steps(bench, layout, paths)
            found = time_steps(opts, repeats)
            del opts
            if layout.numel >= 1_000_000:  # free the big tensors before the next layout
                gc.collect()
            torch_times = [found[p] for p in TORCH_PATHS if p in found]
            base = found.get("torch foreach", math.nan)
            # fused where torch has it, else torch's fastest path
            best_torch = found.get("torch fused", min(torch_times, default=math.nan))
            ideal = bench.bytes_per_element * layout.numel
            for path, secs in found.items():
                floor = ideal / (bandwidth * 1e9)
                row = Row(
                    *(name, layout.label, path, secs * 1e3, first[path] * 1e3),
                    *(secs / base, secs / best_torch, ideal / secs / 1e9, secs / floor),
                )
                rows.append(row)
                if report is not None:
                    report(row)
    return rows


def format_table(rows: Sequence[Row], bandwidth: float) -> str:
    """The rows as a fixed-width text table, with the in-place bandwidth in the header."""
    lines = [
        f"in-place bandwidth (fp32 a.add_(b), 12 B/element): {bandwidth:.1f} GB/s; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"load average {os.getloadavg()[0]:.1f}",
        f"{'optimizer':<12} {'params':<20} {'path':<23} {'ms/step':>9} {'first ms':>9} "
        f"{'x foreach':>9} {'x fused':>8} {'GB/s':>6} {'x floor':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.optimizer:<12} {r.layout:<20} {r.path:<23} {r.ms:9.3f} {r.first_ms:9.1f} "
            f"{r.vs_foreach:9.2f} {r.vs_fused:8.2f} {r.gb_s:6.1f} {r.x_floor:7.2f}"
        )
    return "\n".join(lines)


_COMPILE_SCRIPT = """
import time, torch
from optimlab.optim import AdamW
params = [torch.nn.Parameter(torch.randn({numel})) for _ in range(4)]
for p in params:
    p.grad = torch.randn({numel})
opt = AdamW(params, fused=True)
start = time.perf_counter(); opt.step(); first = time.perf_counter() - start
start = time.perf_counter(); opt.step(); print(first, time.perf_counter() - start)
"""


def compile_times(numel: int = 250_000) -> dict[str, float]:
    """Seconds of the first compiled AdamW step in a fresh process: with a cold inductor
    cache (a new ``TORCHINDUCTOR_CACHE_DIR``), then warm (the same directory again)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            script = _COMPILE_SCRIPT.format(numel=numel)
            done = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            )
            first, steady = map(float, done.stdout.split())
            out[label] = first - steady
    return out


def parse_layouts(text: str) -> list[Layout]:
    """``"1e6x1,1e7x2000"`` -> layouts (``NUMELxTENSORS``, numbers like ``1e7`` allowed)."""
    layouts = []
    for part in text.split(","):
        numel_text, sep, tensors_text = part.strip().partition("x")
        try:
            numel, tensors = int(float(numel_text)), int(float(tensors_text)) if sep else 1
        except ValueError:
            raise ValueError(f"bad size {part!r}: expected NUMELxTENSORS like 1e7x2000") from None
        if not (numel >= 1 and 1 <= tensors <= numel):
            raise ValueError(f"bad size {part!r}: need 1 <= tensors <= numel")
        layouts.append(Layout(numel, tensors))
    return layouts


def check_arguments(
    sizes: str, optimizers: Sequence[str], paths: Sequence[str], repeats: int
) -> tuple[list[Layout], int]:
    """The layouts and repeats of a measurement; ``ValueError`` naming a bad argument."""
    layouts = parse_layouts(sizes)
    unknown = [o for o in optimizers if o not in BENCHES] + [p for p in paths if p not in PATHS]
    if unknown:
        raise ValueError(
            f"unknown {unknown[0]!r}; optimizers: {', '.join(BENCHES)}; paths: {', '.join(PATHS)}"
        )
    return layouts, checks.integer("repeats", repeats, 1)


def main(
    sizes: str,
    repeats: int,
    optimizers: Sequence[str],
    paths: Sequence[str],
    threads: int | None,
    bandwidth_numel: int,
    echo: Callable[[str], None] = print,
) -> list[Row]:
    """Measure, printing the table as rows arrive; used by the script and the CLI."""
    layouts, repeats = check_arguments(sizes, optimizers, paths, repeats)
    if threads is not None:
        torch.set_num_threads(threads)
    bandwidth = inplace_bandwidth(bandwidth_numel)
    echo(format_table([], bandwidth))
    return run(
        layouts,
        optimizers,
        paths,
        repeats,
        report=lambda r: echo(format_table([r], bandwidth).splitlines()[-1]),
        bandwidth=bandwidth,
    )
