"""Step-speed benchmark: optimlab's torch optimizers against torch.optim, in one run.

Times one ``step()`` (gradients fixed; the fastest of ``repeats`` rounds in which the paths
take turns, after warm-up) for each path:
torch's for-loop (``foreach=False``), ``foreach`` and ``fused``, and optimlab's multi-tensor
path and plain per-tensor path. Reports ms per step, the ratio to torch's foreach path, and
the achieved bandwidth (bytes an ideal step must move / time) next to the bandwidth of a
large tensor copy measured in the same run. Numbers are printed, never asserted.

Used by ``benchmarks/step_speed.py`` (full sizes) and ``optimlab bench`` (quick sizes).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..core import checks
from .classes import optimizer_class

# Bytes an ideal fp32 step reads and writes per parameter element.
# AdamW: read p, g, m, v; write p, m, v.  SGD with momentum: read p, g, b; write p, b.
BYTES_PER_ELEMENT = {"adamw": 28, "sgd_momentum": 20}
HYPERPARAMS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": 1e-3, "weight_decay": 1e-2},
    "sgd_momentum": {"lr": 1e-3, "momentum": 0.9},
}


@dataclass(frozen=True)
class Layout:
    """``numel`` parameter elements split evenly over ``tensors`` tensors."""

    numel: int
    tensors: int

    @property
    def label(self) -> str:
        return f"{self.numel:.0e} in {self.tensors} tensor{'s' if self.tensors > 1 else ''}"


@dataclass(frozen=True)
class Row:
    optimizer: str
    layout: str
    path: str
    ms: float
    vs_foreach: float  # ms / torch foreach ms (< 1 is faster)
    gb_s: float


def _make(optimizer: str, path: str) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    hp = HYPERPARAMS[optimizer]
    torch_cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD
    ours = optimizer_class("adamw" if optimizer == "adamw" else "sgd")
    kwargs: dict[str, tuple[Any, dict[str, Any]]] = {
        "torch for-loop": (torch_cls, {"foreach": False}),
        "torch foreach": (torch_cls, {"foreach": True}),
        "torch fused": (torch_cls, {"fused": True}),
        "optimlab": (ours, {}),
        "optimlab plain": (ours, {"foreach": False}),
    }
    cls, extra = kwargs[path]
    return lambda params: cls(params, **hp, **extra)


PATHS = ("torch for-loop", "torch foreach", "torch fused", "optimlab", "optimlab plain")


def _params(layout: Layout, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    each = layout.numel // layout.tensors
    params: list[torch.Tensor] = []
    for _ in range(layout.tensors):
        p = torch.nn.Parameter(torch.randn(each, generator=gen))
        p.grad = torch.randn(each, generator=gen)
        params.append(p)
    return params


def time_steps(
    optimizers: dict[str, torch.optim.Optimizer], repeats: int, warmup: int = 2
) -> dict[str, float]:
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


def copy_bandwidth(numel: int = 25_000_000, repeats: int = 5) -> float:
    """GB/s of ``dst.copy_(src)`` on fp32 tensors (bytes read + written / fastest time)."""
    src, dst = torch.randn(numel), torch.empty(numel)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return 2 * 4 * numel / min(times) / 1e9


def run(
    layouts: Sequence[Layout],
    optimizers: Sequence[str] = ("adamw", "sgd_momentum"),
    paths: Sequence[str] = PATHS,
    repeats: int = 10,
    report: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Time every (optimizer, layout, path); rows in that order, ratios to torch foreach."""
    rows = []
    for optimizer in optimizers:
        for layout in layouts:
            opts = {path: _make(optimizer, path)(_params(layout)) for path in paths}
            found = time_steps(opts, repeats)
            del opts
            if layout.numel >= 1_000_000:  # free the big tensors before the next layout
                gc.collect()
            base = found.get("torch foreach", float("nan"))
            for path, secs in found.items():
                gb_s = BYTES_PER_ELEMENT[optimizer] * layout.numel / secs / 1e9
                row = Row(optimizer, layout.label, path, secs * 1e3, secs / base, gb_s)
                rows.append(row)
                if report is not None:
                    report(row)
    return rows


def format_table(rows: Sequence[Row], bandwidth: float) -> str:
    """The rows as a fixed-width text table, with the copy bandwidth in the header."""
    lines = [
        f"copy bandwidth (fp32 tensor copy, read+write): {bandwidth:.1f} GB/s; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        f"{'optimizer':<13} {'params':<20} {'path':<15} {'ms/step':>9} {'x foreach':>9} "
        f"{'GB/s':>7} {'% copy':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.optimizer:<13} {r.layout:<20} {r.path:<15} {r.ms:9.3f} {r.vs_foreach:9.2f} "
            f"{r.gb_s:7.1f} {100 * r.gb_s / bandwidth:6.0f}%"
        )
    return "\n".join(lines)


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


def main(
    sizes: str,
    repeats: int,
    optimizers: Sequence[str],
    paths: Sequence[str],
    threads: int | None,
    copy_numel: int,
    echo: Callable[[str], None] = print,
) -> list[Row]:
    """Measure, printing the table as rows arrive; used by the script and the CLI."""
    layouts = parse_layouts(sizes)
    unknown = [o for o in optimizers if o not in HYPERPARAMS] + [p for p in paths if p not in PATHS]
    if unknown:
        raise ValueError(
            f"unknown {unknown[0]!r}; optimizers: {', '.join(HYPERPARAMS)}; "
            f"paths: {', '.join(PATHS)}"
        )
    repeats = checks.integer("repeats", repeats, 1)
    if threads is not None:
        torch.set_num_threads(threads)
    bandwidth = copy_bandwidth(copy_numel)
    header = format_table([], bandwidth)
    echo(header)
    rows = run(
        layouts,
        optimizers,
        paths,
        repeats,
        report=lambda r: echo(format_table([r], bandwidth).splitlines()[-1]),
    )
    return rows
