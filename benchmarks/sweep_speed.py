"""How much faster a batched sweep is than one run per setting. Prints; never asserts.

1. 64 learning rates of Adam on Rosenbrock (from (-1, 1)), 1000 steps:
   the engine batched in NumPy, the same loop on torch tensors, the engine one setting at
   a time, and a per-LR ``torch.optim.Adam`` loop (the baseline a user would write).
2. 32 settings of Adam on the MLP problem (20-64-5, batch 128), 300 steps:
   the engine with ``vmap`` over stacked parameters vs 32 sequential ``torch.optim.Adam``
   runs on the same task.
3. 8 settings of AdamW on the transformer problem (2 layers, width 64, 8 windows of 64
   characters), 30 steps: the same rows, and since this model is compute-bound, the
   rate each row reaches in GFLOP/s (the training FLOPs of a step, counted by torch's
   ``FlopCounterMode``) against the bound of its matrix products: the largest one, the
   blocks' feed-forward ``(K, 512, 64) x (K, 64, 256)``, as one ``bmm`` timed in the
   same run.

    python benchmarks/sweep_speed.py            # full size
    python benchmarks/sweep_speed.py --quick    # a tenth of the steps
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from optimlab import problems
from optimlab.lab.engine import Setting, run
from optimlab.lab.engine.functions import run_functions
from optimlab.lab.engine.grouping import plan
from optimlab.lab.engine.loop import LoopOptions
from optimlab.lab.engine.models import StackedModels


def best_of(repeats: int, fns: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Fastest time of each row over ``repeats`` rounds in which the rows take turns (a
    shared machine's load moves between rounds, and must move every row alike). Each
    function returns its time in ms."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], fn())
    return best


def timed(fn: Callable[[], object], scale: float = 1.0) -> Callable[[], float]:
    """``fn`` as a row of :func:`best_of`: its wall time in ms, times ``scale``."""

    def row() -> float:
        start = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - start) * scale

    return row


def lr_settings(rule: str, lrs: np.ndarray) -> list[Setting]:
    """One setting of ``rule`` per learning rate."""
    return [Setting(rule, {"lr": float(lr)}) for lr in lrs]


def torch_optim_loop(
    problem: problems.Problem,
    lrs: np.ndarray,
    steps: int,
    seed: int = 0,
    optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
) -> None:
    """One ``optimizer`` run per learning rate on the problem's torch task."""
    for lr in lrs:
        task = problem.torch_task(seed)
        opt = optimizer(task.model.parameters(), lr=float(lr))
        for _ in range(steps):
            opt.zero_grad()
            task.loss(task.model, next(task.batches)).backward()
            opt.step()


def per_setting(subset: int, total: int, fn: Callable[[int], object]) -> Callable[[], float]:
    """A one-run-per-setting loop as a row: ``subset`` settings timed, scaled to ``total``
    (the loop is linear in the number of settings; a small subset repeated resists the
    noise of a shared machine better than one long run)."""
    return timed(lambda: fn(subset), total / subset)


def report(title: str, rows: dict[str, float], baseline: str, mflop: float | None = None) -> None:
    """Each row's ms and its speed-up over ``baseline``; with ``mflop`` (the row's work,
    the same for every row) also the GFLOP/s it reached."""
    print(f"\n{title}")
    base = rows[baseline]
    for name, ms in rows.items():
        rate = "" if mflop is None else f" {mflop / ms:7.1f} GFLOP/s"
        print(f"  {name:<44} {ms:10.1f} ms   {base / ms:7.1f}x vs {baseline}{rate}")


def rosenbrock(steps: int, k: int, repeats: int, subset: int) -> None:
    p = problems.get("rosenbrock")
    lrs = np.logspace(-4, 0, k)
    settings = lr_settings("adam", lrs)
    (group,) = plan(settings, steps)
    sub = min(subset, k)
    rows = best_of(
        repeats,
        {
            f"torch.optim.Adam, one run per lr ({k} runs)": per_setting(
                sub, k, lambda n: torch_optim_loop(p, lrs[:n], steps)
            ),
            "engine, one setting at a time (NumPy)": per_setting(
                sub, k, lambda n: run(p, settings[:n], steps, batched=False)
            ),
            "engine batched, NumPy": timed(lambda: run(p, settings, steps)),
            "engine batched loop on torch tensors": timed(
                lambda: run_functions(p, group, steps, LoopOptions(), array="torch")
            ),
        },
    )
    report(
        f"Adam x {k} learning rates on Rosenbrock, {steps} steps",
        rows,
        f"torch.optim.Adam, one run per lr ({k} runs)",
    )


def torch_rows(
    p: problems.Problem,
    lrs: np.ndarray,
    rule: str,
    optimizer: type[torch.optim.Optimizer],
    steps: int,
    repeats: int,
    subset: int,
) -> tuple[dict[str, float], str]:
    """The rows of a torch problem and the name of its baseline: ``optimizer`` run once
    per learning rate, the engine one setting at a time, and the engine batched."""
    k = len(lrs)
    settings = lr_settings(rule, lrs)
    run(p, settings[:2], 2)  # warm up vmap
    sub = min(subset, k)
    baseline = f"torch.optim.{optimizer.__name__}, {k} sequential runs"
    rows = best_of(
        repeats,
        {
            baseline: per_setting(
                sub, k, lambda n: torch_optim_loop(p, lrs[:n], steps, optimizer=optimizer)
            ),
            "engine, one setting at a time": per_setting(
                sub, k, lambda n: run(p, settings[:n], steps, batched=False)
            ),
            "engine batched (vmap over stacked params)": timed(lambda: run(p, settings, steps)),
        },
    )
    return rows, baseline


def mlp(steps: int, k: int, repeats: int, subset: int) -> None:
    p = problems.get("mlp", features=20, hidden=64, classes=5, batch_size=128)
    lrs = np.logspace(-4, -1, k)
    rows, baseline = torch_rows(p, lrs, "adam", torch.optim.Adam, steps, repeats, subset)
    report(
        f"Adam x {k} learning rates on the MLP (20-64-5, batch 128), {steps} steps", rows, baseline
    )


def training_mflop(problem: problems.Problem) -> float:
    """MFLOP of one training step of one setting: the forward and backward of a batch
    (the optimizer's elementwise update is a rounding error beside it)."""
    task = problem.torch_task(0)
    with FlopCounterMode(display=False) as counter:
        task.loss(task.model, next(task.batches)).backward()
    return counter.get_total_flops() / 1e6


def transformer(steps: int, k: int, repeats: int, subset: int) -> None:
    p = problems.get("transformer")
    lrs = np.logspace(-4, -2, k)
    rule = "adamw"  # the rows' and the forward-and-backward timing's settings alike
    rows, baseline = torch_rows(p, lrs, rule, torch.optim.AdamW, steps, repeats, subset)
    mflop = training_mflop(p)
    report(
        f"AdamW x {k} learning rates on the transformer ({p.layers} layers, width {p.width}, "
        f"batch {p.batch_size} x {p.context}), {steps} steps; "
        f"a step: {mflop:.1f} MFLOP per setting",
        rows,
        baseline,
        mflop * k * steps,
    )
    # the batched forward and backward alone (a whole run also builds the models and
    # evaluates the held-out windows), and the bound of the model's matrix products
    (group,) = plan(lr_settings(rule, lrs), steps)
    stacked = StackedModels(p, group)
    stacked.gradients()  # the first is the constructor's probe, already computed

    def gradients() -> None:
        for _ in range(steps):
            stacked.gradients()

    tokens, width = p.batch_size * p.context, p.width
    a, b = torch.randn(k, tokens, width), torch.randn(k, width, 4 * width)
    out = torch.empty(k, tokens, 4 * width)

    def products() -> None:
        for _ in range(100):
            torch.bmm(a, b, out=out)

    grads, product = timed(gradients, 1 / steps), timed(products, 1 / 100)
    best = best_of(repeats, {"gradients": grads, "bmm": product})
    bound = 2 * k * tokens * width * 4 * width / 1e6 / best["bmm"]
    print(
        f"  batched forward and backward alone: {best['gradients']:.1f} ms per step, "
        f"{mflop * k / best['gradients']:.1f} GFLOP/s; the bound, one bmm "
        f"({k}, {tokens}, {width}) x ({k}, {width}, {4 * width}): {bound:.1f} GFLOP/s"
    )


# each sweep: its function, full-size steps, number of settings
SWEEPS: dict[str, tuple[Callable[[int, int, int, int], None], int, int]] = {
    "rosenbrock": (rosenbrock, 1000, 64),
    "mlp": (mlp, 300, 32),
    "transformer": (transformer, 30, 8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--repeats", type=int, default=5, help="best of N rounds")
    parser.add_argument(
        "--subset",
        type=int,
        default=8,
        help="one-run-per-setting loops: time this many settings, scale up",
    )
    parser.add_argument(
        "--problems",
        default=",".join(SWEEPS),
        help=f"comma-separated, of {', '.join(SWEEPS)}",
    )
    args = parser.parse_args()
    chosen = args.problems.split(",")
    unknown = [name for name in chosen if name not in SWEEPS]
    if unknown:
        parser.error(f"unknown problem {unknown[0]!r} (known: {', '.join(SWEEPS)})")
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = 10 if args.quick else 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}")
    print(
        f"rows take turns, best of {args.repeats} rounds; one-run-per-setting rows: "
        f"{args.subset} settings, scaled to all of them"
    )
    for name, (sweep, steps, k) in SWEEPS.items():
        if name in chosen:
            sweep(max(steps // scale, 1), k, args.repeats, args.subset)


if __name__ == "__main__":
    main()
