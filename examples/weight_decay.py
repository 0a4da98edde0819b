"""Adam's L2 penalty vs AdamW's decoupled weight decay, on the transformer.

Adam with ``weight_decay=lam`` adds ``lam * theta`` to the gradient, and that sum is then
divided by Adam's ``sqrt(v)``: a weight whose gradients are small (the embedding of a rare
character) is pulled to zero at almost the full step size ``lr``, one with large
gradients hardly at all. AdamW (Loshchilov & Hutter, 2019) takes the decay out of the
adaptive step: ``theta <- theta (1 - lr lam)`` for every weight alike. The same
``lam`` therefore means very different things for the two.

Both train the transformer LM for 300 steps at lr 3e-3 (cosine decay) over a grid of
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

from optimlab import problems
from optimlab.lab.engine import Setting
from optimlab.lab.engine.grouping import plan
from optimlab.lab.engine.loop import LoopOptions, run_loop
from optimlab.lab.engine.models import StackedModels

FULL = {"problem": {}, "steps": 300, "seeds": 2, "decays": (0.0, 0.01, 0.1, 1.0)}
QUICK = {
    "problem": {"width": 16, "heads": 2, "context": 16, "n_val": 8},
    "steps": 30,
    "seeds": 2,
    "decays": (0.0, 0.1, 1.0),
}
LR = 3e-3


def run_with_weights(problem, settings, steps):
    """Traces, and each setting's final token-embedding norm, from one batched run."""
    norms, traces = {}, []
    for group in plan(settings, steps):
        backend = StackedModels(problem, group)
        traces += zip(group.positions, run_loop(backend, group, steps, LoopOptions()))
        embed = backend.params["embed.weight"].flatten(1).norm(dim=1)
        norms.update(zip(group.positions, embed.tolist()))
    traces.sort(key=lambda pair: pair[0])
    return [t for _, t in traces], [norms[i] for i in range(len(settings))]


def main(quick: bool) -> None:
    cfg = QUICK if quick else FULL
    steps, seeds = cfg["steps"], range(cfg["seeds"])
    problem = problems.get("transformer", **cfg["problem"])
    settings = [
        Setting(opt, {"lr": LR, "weight_decay": lam}, "cosine", seed=s)
        for opt in ("adam", "adamw")
        for lam in cfg["decays"]
        for s in seeds
    ]
    torch.set_num_threads(1)
    start = time.perf_counter()
    traces, norms = run_with_weights(problem, settings, steps)
    elapsed = time.perf_counter() - start
    embed0 = float(problem.torch_task(0).model.embed.weight.detach().norm())
    print(f"transformer, lr={LR:g} with cosine decay, {steps} steps, seeds {list(seeds)}")
    print(f"token-embedding norm at the start (seed 0): {embed0:.3f}")
    print(f"{'weight decay':>12}  {'Adam (L2) loss':>14} {'embed norm':>10}   "
          f"{'AdamW loss':>10} {'embed norm':>10}")
    rows: dict[tuple[str, float], tuple[float, float]] = {}
    for opt in ("adam", "adamw"):
        for lam in cfg["decays"]:
            idx = [
                i
                for i, s in enumerate(settings)
                if s.optimizer == opt and s.hyperparams["weight_decay"] == lam
            ]
            loss = np.median([traces[i].evals[-1][1]["loss"] for i in idx])
            rows[(opt, lam)] = (float(loss), float(np.median([norms[i] for i in idx])))
    for lam in cfg["decays"]:
        (la, na), (lw, nw) = rows[("adam", lam)], rows[("adamw", lam)]
        print(f"{lam:>12g}  {la:>14.4f} {na:>10.3f}   {lw:>10.4f} {nw:>10.3f}")
    print("(medians over seeds; loss: held-out nats per character after the last step)")
    print(f"wall time {elapsed:.1f} s for {len(settings)} runs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model, for the tests")
    main(parser.parse_args().quick)
