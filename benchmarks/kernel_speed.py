"""Where a one-tensor step's time goes: the compiled kernel alone against torch's. Prints.

    python benchmarks/kernel_speed.py                       # AdamW and SGD, 1e7 elements
    python benchmarks/kernel_speed.py --numel 1e6 --rounds 50

For AdamW and SGD with momentum on one tensor, the rows take turns for ``--rounds``
rounds and each row's median is printed with its ratio to torch's fused row of its kind:

- ``step()`` of torch's fused optimizer and of ours (``fused=True``, the compiled path):
  what a user sees, Python included;
- the kernels alone, each on its optimizer's own tensors: ``torch._fused_adamw_`` /
  ``torch._fused_sgd_`` called directly, and ours as a step calls it (``compiled.run``
  with the arguments captured from a step);
- ours with every hyperparameter and per-step value a compile-time constant (compiled
  again with dynamo's ``specialize_float``). The real kernel takes them as 0-d tensors, so
  a schedule never recompiles; inductor reads them from memory in every vector
  iteration, since its vector stores may alias them. This row shows what that costs.

Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from optimlab.optim import bench, compiled

OPTIMIZERS = ("adamw", "sgd_momentum")


def captured_kernel_call(optimizer: torch.optim.Optimizer) -> tuple:
    """The arguments of the ``compiled.run`` call that ``optimizer.step()`` makes."""
    calls: list[tuple] = []
    real = compiled.run

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    compiled.run = spy  # type: ignore[assignment]
    try:
        optimizer.step()
    finally:
        compiled.run = real
    if len(calls) != 1:
        raise RuntimeError(f"expected one compiled kernel call per step, saw {len(calls)}")
    return calls[0]


def constant_kernel(call: tuple) -> Callable[[], Any]:
    """The captured call, compiled afresh with its floats as constants."""
    rule, state_type, blank, maximize, _flags, args = call
    fn = torch.compile(
        compiled._fresh_function(f"constant_{rule.name}"),
        dynamic=True,
        fullgraph=True,
        options=compiled.KERNEL_OPTIONS,
    )
    with torch._dynamo.config.patch(specialize_float=True):
        fn(rule, state_type, blank, maximize, *args)  # compiles here
    return lambda: fn(rule, state_type, blank, maximize, *args)


def torch_kernel(optimizer: torch.optim.Optimizer) -> Callable[[], Any]:
    """The fused CPU kernel that ``optimizer.step()`` (torch's fused AdamW or SGD) calls,
    called directly with its group's values on its own parameter, gradient and state."""
    group = optimizer.param_groups[0]
    (p,) = group["params"]
    state = optimizer.state[p]
    if isinstance(optimizer, torch.optim.AdamW):
        beta1, beta2 = group["betas"]
        return lambda: torch._fused_adamw_(
            [p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]],
            lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
            eps=group["eps"], amsgrad=False, maximize=False,
        )  # fmt: skip
    return lambda: torch._fused_sgd_(
        [p], [p.grad], [state["momentum_buffer"]], weight_decay=group["weight_decay"],
        momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
        nesterov=group["nesterov"], maximize=False, is_first_step=False,
    )  # fmt: skip


def rows_of(name: str, numel: int) -> dict[str, Callable[[], Any]]:
    """Every row for one optimizer, each warmed up (compiled) before timing."""
    spec = bench.BENCHES[name]
    layout = bench.Layout(numel, 1)
    made = {}
    for path in ("torch fused", "optimlab compiled"):  # step_speed.py's rows of these names
        make = bench.make_optimizer(spec, path)
        if make is None:
            raise RuntimeError(f"{name} has no {path!r} path")
        made[path] = make(bench.make_params(layout, spec.matrices))
    theirs, ours = made["torch fused"], made["optimlab compiled"]
    for opt in (theirs, ours):
        opt.step()
        opt.step()
    call = captured_kernel_call(ours)
    rows = {
        "torch fused step()": theirs.step,
        "optimlab step() (compiled)": ours.step,
        "torch fused kernel alone": torch_kernel(theirs),
        "optimlab kernel alone": lambda: compiled.run(*call),
        "optimlab kernel, values as constants": constant_kernel(call),
    }
    for row in rows.values():
        row()
    return rows


def medians(rows: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Each row's median ms over ``rounds`` rounds in which the rows take turns."""
    times: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(rounds):
        for name, row in rows.items():
            start = time.perf_counter()
            row()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=float, default=1e7, help="elements of the tensor")
    parser.add_argument("--rounds", type=int, default=100, help="rounds (median kept)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    args = parser.parse_args()
    names = args.optimizers.split(",")
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        parser.error(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(OPTIMIZERS)}")
    if not 1 <= args.numel <= 1e9 or args.numel != int(args.numel):
        parser.error(f"--numel must be a whole number from 1 to 1e9, got {args.numel:g}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    numel = int(args.numel)
    print(f"{numel:.0e} elements in one tensor, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds")  # fmt: skip
    for name in names:
        result = medians(rows_of(name, numel), args.rounds)
        print(f"\n{name}")
        for row, ms in result.items():
            base = result["torch fused step()" if "step()" in row else "torch fused kernel alone"]
            print(f"  {row:<40} {ms:8.3f} ms  {ms / base:6.3f}x torch's")


if __name__ == "__main__":
    main()
