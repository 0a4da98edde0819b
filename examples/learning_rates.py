"""A learning-rate experiment on least squares: too small, good, and divergent rates.

    L(w) = 1/(2n) |X w - y|^2,   grad L = X^T (X w - y) / n,   Hessian H = X^T X / n

Gradient descent on a quadratic converges exactly when lr < 2 / lambda_max(H): each
eigen-direction is multiplied by (1 - lr lambda) per step. Far below that bound progress
is slow (the smallest eigenvalue's direction shrinks by only 1 - lr lambda_min), at
2 / (lambda_min + lambda_max) it is fastest, and above 2 / lambda_max the error grows
geometrically.
``experiment_learning_rates`` trains once per rate from the same start and returns the
final loss of each (NaN/inf for a run that blew up).

Run:  python examples/learning_rates.py [--epochs 100] [--plot lrs.png]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from optimlab.functional import experiment_learning_rates

LRS = (1e-4, 1e-3, 1e-2, 0.1, 0.3, 0.8, 1.0, 3.0, 10.0)


def make_problem(n: int = 200, d: int = 5, seed: int = 0):
    """A seeded least-squares problem: (w0, loss_and_grads, noise floor, eigenvalues of H)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.5, 1.5, d)  # unequal curvatures
    y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)

    def loss_and_grads(w: np.ndarray) -> tuple[float, np.ndarray]:
        r = X @ w - y
        return 0.5 * float(r @ r) / n, X.T @ r / n

    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    return np.zeros(d), loss_and_grads, loss_and_grads(w_star)[0], np.linalg.eigvalsh(X.T @ X / n)


def verdict(loss: float, start: float, floor: float) -> str:
    if not math.isfinite(loss) or loss > start:
        return "diverged"
    if loss - floor > 0.01 * (start - floor):
        return "too small (slow)"
    return "good"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--plot", metavar="FILE", help="save final loss against lr")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")

    w0, loss_and_grads, floor, eig = make_problem()
    start = loss_and_grads(w0)[0]
    print(f"least squares, 200 x 5; loss at w=0: {start:.4f}; best possible: {floor:.6f}")
    print(
        f"Hessian eigenvalues {eig.min():.3f} .. {eig.max():.3f}: "
        f"fastest lr 2/(lambda_min+lambda_max) = {2 / (eig.min() + eig.max()):.3f}, "
        f"divergence above 2/lambda_max = {2 / eig.max():.3f}"
    )
    results = experiment_learning_rates(w0, loss_and_grads, LRS, epochs=args.epochs)
    print(f"{'lr':>8} {'final loss':>12}  verdict   ({args.epochs} epochs of gradient descent)")
    for lr, loss in results.items():
        print(f"{lr:>8g} {loss:>12.4e}  {verdict(loss, start, floor)}")
    stable = {lr: loss for lr, loss in results.items() if math.isfinite(loss) and loss <= start}
    best = min(stable, key=stable.get)
    print(f"best lr: {best:g} (final loss {stable[best]:.6f})")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lrs = list(results)
        shown = [min(v, 1e6) if math.isfinite(v) else 1e6 for v in results.values()]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.loglog(lrs, shown, "o-")
        ax.axvline(2 / eig.max(), color="red", lw=0.8, label="2 / lambda_max")
        ax.axhline(floor, color="grey", lw=0.8, label="best possible loss")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"loss after {args.epochs} epochs (capped at 1e6)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        plt.close(fig)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
