"""Adam's L2 penalty vs AdamW's decoupled weight decay, on the transformer.

Adam with ``weight_decay=lam`` adds ``lam * theta`` to the gradient, and that sum is then
divided by Adam's ``sqrt(v)``: a weight whose gradients are small (the embedding of a rare
character) is pulled to zero at almost the full step size ``lr``, one with large
gradients hardly at all. AdamW (Loshchilov & Hutter, 2019) takes the decay out of the
adaptive step: ``theta <- theta (1 - lr lam)`` for every weight alike. The same
``lam`` therefore means very different things for the two.

Both train the transformer LM with optimlab's torch classes (``create_optimizer`` and a
cosine schedule through ``schedules.to_torch``) for 300 steps at lr 3e-3 over a grid of
``lam``, two seeds each; the table gives the median held-out loss and the norm of the
token-embedding matrix after training (the rows of rare characters hold most of it at
the start). Every parameter is decayed here, as
``torch.optim.Adam(model.parameters(), weight_decay=lam)`` does.

    python examples/weight_decay.py            # the measured run (docs/llm.md)
    python examples/weight_decay.py --quick    # a tiny model, for the tests
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import optimlab
from optimlab import problems

FULL = {"problem": {}, "steps": 300, "seeds": 2, "decays": (0.0, 0.01, 0.1, 1.0)}
QUICK = {
    "problem": {"width": 16, "heads": 2, "context": 16, "n_val": 8},
    "steps": 30,
    "seeds": 2,
    "decays": (0.0, 0.1, 1.0),
}
LR = 3e-3


def train(problem, name: str, weight_decay: float, steps: int, seed: int) -> tuple[float, float]:
    """One run of optimlab's torch class under a cosine schedule: the held-out loss after
    the last step and the norm of the token-embedding matrix."""
    task = problem.torch_task(seed)
    opt = optimlab.create_optimizer(name, task.model.parameters(), lr=LR, weight_decay=weight_decay)
    cosine = optimlab.schedules.get("cosine", lr=LR, total_steps=steps)
    scheduler = optimlab.schedules.to_torch(cosine, opt)
    for _ in range(steps):
        opt.zero_grad()
        task.loss(task.model, next(task.batches)).backward()
        opt.step()
        scheduler.step()
    with torch.no_grad():
        loss = float(task.metrics(task.model, task.val_batch)["loss"])
        return loss, float(task.model.embed.weight.norm())


def main(quick: bool) -> None:
    cfg = QUICK if quick else FULL
    steps, seeds = cfg["steps"], range(cfg["seeds"])
    problem = problems.get("transformer", **cfg["problem"])
    torch.set_num_threads(1)
    start = time.perf_counter()
    runs = {
        (opt, lam, s): train(problem, opt, lam, steps, s)
        for opt in ("adam", "adamw")
        for lam in cfg["decays"]
        for s in seeds
    }
    elapsed = time.perf_counter() - start
    embed0 = float(problem.torch_task(0).model.embed.weight.detach().norm())
    print(f"transformer, lr={LR:g} with cosine decay, {steps} steps, seeds {list(seeds)}")
    print(f"token-embedding norm at the start (seed 0): {embed0:.3f}")
    print(
        f"{'weight decay':>12}  {'Adam (L2) loss':>14} {'embed norm':>10}   "
        f"{'AdamW loss':>10} {'embed norm':>10}"
    )
    rows = {
        (opt, lam): tuple(float(np.median([runs[(opt, lam, s)][i] for s in seeds])) for i in (0, 1))
        for opt in ("adam", "adamw")
        for lam in cfg["decays"]
    }
    for lam in cfg["decays"]:
        (la, na), (lw, nw) = rows[("adam", lam)], rows[("adamw", lam)]
        print(f"{lam:>12g}  {la:>14.4f} {na:>10.3f}   {lw:>10.4f} {nw:>10.3f}")
    print("(medians over seeds; loss: held-out nats per character after the last step)")
    print(f"wall time {elapsed:.1f} s for {len(runs)} runs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model, for the tests")
    main(parser.parse_args().quick)
