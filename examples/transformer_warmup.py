"""Does learning-rate warmup help AdamW on a transformer at a high learning rate?

The transformer LM of ``optimlab.problems`` (2 layers, width 64, characters of Python's
own documentation) is trained with AdamW for 300 steps under a cosine decay, with and
without a linear warmup over the first 10% of the steps, at the best peak learning rate
of this budget (3e-3) and at three and ten times it, for five seeds. A seed sets the
initial weights and the order of the training windows; both arms of a pair share it, so
the per-seed difference of the final held-out loss (no warmup minus warmup) isolates the
schedule. The verdict per
learning rate comes from a 95% Student-t interval of that paired difference: warmup
helps if the interval lies above 0, hurts if below, and otherwise the seeds cannot tell.

    python examples/transformer_warmup.py            # the measured run (docs/llm.md)
    python examples/transformer_warmup.py --quick    # a tiny model, for the tests
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from optimlab.lab.engine import Setting, run

# two-sided 95% quantiles of Student's t by degrees of freedom (n - 1 seeds)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}

FULL = {"problem": {}, "steps": 300, "seeds": 5, "lrs": (3e-3, 1e-2, 3e-2)}
QUICK = {
    "problem": {"width": 16, "heads": 2, "context": 16, "n_val": 8},
    "steps": 40,
    "seeds": 2,
    "lrs": (3e-3, 3e-2),
}
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.1


def paired_interval(diffs: np.ndarray) -> tuple[float, float, float]:
    """Mean of the paired differences and its 95% t interval."""
    n = len(diffs)
    mean = float(diffs.mean())
    half = T975[n - 1] * float(diffs.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def final_held_out(trace) -> float:
    """The held-out loss after the last update (inf for a diverged run)."""
    return trace.evals[-1][1]["loss"] if trace.status == "finished" else math.inf


def main(quick: bool) -> None:
    cfg = QUICK if quick else FULL
    steps, seeds = cfg["steps"], range(cfg["seeds"])
    warmup = {"warmup_steps": int(WARMUP_FRACTION * steps)}
    arms = {"no warmup": ("cosine", {}), "warmup": ("warmup_cosine", warmup)}
    settings = [
        Setting("adamw", {"lr": lr, "weight_decay": WEIGHT_DECAY}, sched, kw, seed=s)
        for lr in cfg["lrs"]
        for sched, kw in arms.values()
        for s in seeds
    ]
    torch.set_num_threads(1)
    start = time.perf_counter()
    traces = run(("transformer", cfg["problem"]), settings, steps)
    elapsed = time.perf_counter() - start
    loss = {
        (s.hyperparams["lr"], s.schedule, s.seed): final_held_out(t)
        for s, t in zip(settings, traces, strict=True)
    }
    print(
        f"AdamW (weight decay {WEIGHT_DECAY}) on the transformer, {steps} steps, cosine decay; "
        f"warmup = linear over the first {warmup['warmup_steps']} steps; seeds {list(seeds)}"
    )
    print("held-out loss (nats/char) after the last step, per seed:")
    for lr in cfg["lrs"]:
        for name, (sched, _) in arms.items():
            values = [loss[(lr, sched, s)] for s in seeds]
            shown = " ".join(f"{v:.4f}" for v in values)
            print(f"  lr={lr:g} {name:>10}: {shown}   median {np.median(values):.4f}")
    print("paired difference, no warmup - warmup (> 0: warmup helps), 95% t interval:")
    for lr in cfg["lrs"]:
        diffs = np.array([loss[(lr, "cosine", s)] - loss[(lr, "warmup_cosine", s)] for s in seeds])
        if not np.isfinite(diffs).all():
            print(f"  lr={lr:g}: a run diverged without warmup: warmup helps (it trained)")
            continue
        mean, lo, hi = paired_interval(diffs)
        verdict = "warmup helps" if lo > 0 else "warmup hurts" if hi < 0 else "no clear difference"
        print(f"  lr={lr:g}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]  -> {verdict}")
    print(f"wall time {elapsed:.1f} s for {len(settings)} runs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model, for the tests")
    main(parser.parse_args().quick)
