"""Adam with and without bias correction on f(theta) = theta^2, from theta = 10, lr = 0.1.

Both moment estimates start at zero, so early on they are biased toward zero:

    m_t = (1 - beta1^t) * E[g]      v_t = (1 - beta2^t) * E[g^2]   (constant gradients)

Bias correction divides each by its factor, so the first step has size exactly lr.
Without it, the step is lr * (1 - beta1^t) / sqrt(1 - beta2^t) times the corrected one:
with beta1 = 0.9 and beta2 = 0.999 that is 0.1 / sqrt(0.001) = 3.16 at t = 1 and, for a
constant gradient, 6.5 at t = 10, because v's bias (1 - beta2^t, tiny) is much stronger
than m's. The uncorrected run therefore moves *faster* in the first steps, and then
overshoots the minimum.

Run:  python examples/adam_bias_correction.py [--steps 50] [--plot adam.png]
"""

from __future__ import annotations

import argparse
import math
import sys

from optimlab.functional import adam_step

LR, BETA1, BETA2 = 0.1, 0.9, 0.999


def run(steps: int, bias_correction: bool, theta: float = 10.0) -> list[float]:
    """theta after each step of Adam on f = theta^2 (gradient 2 theta); index 0 is the start."""
    m = v = 0.0
    trajectory = [theta]
    for t in range(1, steps + 1):
        theta, m, v = adam_step(
            theta, 2 * theta, m, v, LR, BETA1, BETA2, t, bias_correction=bias_correction
        )
        trajectory.append(theta)
    return trajectory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--plot", metavar="FILE", help="save a plot of both trajectories")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")

    corrected = run(args.steps, bias_correction=True)
    raw = run(args.steps, bias_correction=False)

    print(f"Adam on f(theta) = theta^2 from theta = 10, lr = {LR}, betas = ({BETA1}, {BETA2})")
    print(f"{'step':>5} {'corrected':>12} {'uncorrected':>12}   uncorrected/corrected step")
    marks = sorted({1, 2, 3, 5, 10, 20, 30, args.steps} & set(range(1, args.steps + 1)))
    for t in marks:
        step_c = corrected[t - 1] - corrected[t]
        step_r = raw[t - 1] - raw[t]
        print(f"{t:>5} {corrected[t]:>12.4f} {raw[t]:>12.4f}   {step_r / step_c:>8.2f}")

    first_c, first_r = corrected[0] - corrected[1], raw[0] - raw[1]
    factor = (1 - BETA1) / math.sqrt(1 - BETA2)
    print(
        f"first step: corrected {first_c:.4f}, uncorrected {first_r:.4f} "
        f"(ratio {first_r / first_c:.3f}; (1-beta1)/sqrt(1-beta2) = {factor:.3f})"
    )
    print(f"final |theta|: corrected {abs(corrected[-1]):.4f}, uncorrected {abs(raw[-1]):.4f}")
    crossed = next((t for t, x in enumerate(raw) if x < 0), None)
    print(
        "Without correction the second moment is under-estimated far more than the first,"
        " so the early steps are too large"
        + (f"; it overshoots theta = 0 at step {crossed}." if crossed else ".")
    )
    print("With correction every early step has size ~lr: slower here, but predictable.")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(corrected, label="bias-corrected")
        ax.plot(raw, label="no bias correction")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_xlabel("step")
        ax.set_ylabel("theta")
        ax.set_title("Adam on theta^2, lr 0.1")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        plt.close(fig)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
