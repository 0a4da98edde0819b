"""Several optimizers on the Rosenbrock function from (-1, 1); distance to the minimum (1, 1).

    f(x, y) = (1 - x)^2 + 100 (y - x^2)^2

The minimum sits at the end of a long, curved, flat-bottomed valley: gradient descent
crawls along it (its learning rate is capped by the steep walls, 2 / lambda_max ~ 0.002),
momentum accumulates speed along the valley, and adaptive methods (RMSProp, Adam) rescale
each coordinate so the flat direction gets larger steps. Every optimizer below is
``optimlab.numpy_optimizer(name, lr=...)`` with the learning rate in the table (picked by
a small sweep, not tuned hard); other hyperparameters are the defaults.

Run:  python examples/rosenbrock.py [--steps 3000] [--plot rosenbrock.png]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

import optimlab

START = (-1.0, 1.0)
MINIMUM = (1.0, 1.0)

# Learning rates that work from (-1, 1); an optimizer not listed uses its default lr.
LEARNING_RATES = {
    "sgd": 1.5e-3,
    "momentum": 5e-4,
    "nesterov": 5e-4,
    "adagrad": 0.3,
    "rmsprop": 3e-3,
    "adam": 3e-2,
    "adamw": 1e-2,
    "nadam": 1e-2,
    "radam": 1e-2,
    "adafactor": 0.1,
    "lion": 1e-3,
}


def rosenbrock(p: np.ndarray) -> tuple[float, np.ndarray]:
    """Loss and gradient at p = (x, y)."""
    x, y = p
    loss = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    grad = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    return float(loss), grad


def run(name: str, lr: float, steps: int) -> np.ndarray:
    """The path (steps + 1, 2) of one optimizer; stops early if it diverges."""
    opt = optimlab.numpy_optimizer(name, lr=lr)
    p = np.array(START)
    path = [p]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            loss, grad = rosenbrock(p)
            if not math.isfinite(loss):
                break
            p = opt.update(p, grad)
            path.append(p)
    return np.array(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument(
        "--optimizers",
        default=",".join(n for n in LEARNING_RATES if n in optimlab.list_optimizers()),
        help="comma-separated registered names (default: %(default)s)",
    )
    parser.add_argument("--plot", metavar="FILE", help="save the paths over a contour plot")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]

    start_dist = math.dist(START, MINIMUM)
    print(
        f"Rosenbrock from {START}, {args.steps} steps; "
        f"distance to the minimum {MINIMUM} at the start: {start_dist:.4f}"
    )
    print(f"{'optimizer':<10} {'lr':>8} {'x':>9} {'y':>9} {'loss':>11} {'distance':>10}")
    paths = {}
    for name in names:
        lr = LEARNING_RATES.get(name, optimlab.get_rule(name).defaults["lr"])
        path = paths[name] = run(name, lr, args.steps)
        end = path[-1]
        dist = math.dist(end, MINIMUM)
        print(
            f"{name:<10} {lr:>8.1e} {end[0]:>9.5f} {end[1]:>9.5f} "
            f"{rosenbrock(end)[0]:>11.3e} {dist:>10.3e}"
        )
    best = min(paths, key=lambda n: math.dist(paths[n][-1], MINIMUM))
    print(f"closest: {best} ({math.dist(paths[best][-1], MINIMUM):.2e} from the minimum)")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        xs, ys = np.meshgrid(np.linspace(-1.6, 1.6, 200), np.linspace(-0.6, 1.8, 200))
        zs = (1 - xs) ** 2 + 100 * (ys - xs**2) ** 2
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.contour(xs, ys, np.log10(zs + 1e-3), levels=25, cmap="Greys", linewidths=0.5)
        for name, path in paths.items():
            ax.plot(path[:, 0], path[:, 1], lw=1, label=name)
        ax.plot(*MINIMUM, "k*", ms=10)
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-0.6, 1.8)
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title(f"Rosenbrock, {args.steps} steps from {START}")
        fig.tight_layout()
        fig.savefig(args.plot)
        plt.close(fig)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
