"""Prodigy and Lookahead against their published references, float64: the parity table.

Prodigy (optimlab.optim.Prodigy) is run next to the authors' ``prodigyopt.Prodigy`` and
Lookahead (optimlab.optim.Lookahead, around AdamW) next to ``pytorch_optimizer``'s
Lookahead wrapped around ``torch.optim.AdamW``, on the same parameters (four tensors in
one param group) and the same gradients (a quadratic pull towards 3 plus noise), for 300
steps; the table gives the largest difference over all parameters and steps relative to
the largest parameter. Both packages install from the package index (the test extras).

    python examples/reference_parity.py
"""

from __future__ import annotations

import contextlib
import io

import torch

from optimlab.optim import Lookahead, Prodigy

STEPS = 300
SHAPES = [(6, 4), (9,), (3, 2, 2), ()]

PRODIGY = [
    {},
    {"weight_decay": 0.1},
    {"lr": 0.5, "betas": (0.8, 0.99), "weight_decay": 0.05, "decouple": False},
    {"use_bias_correction": True, "safeguard_warmup": True, "d_coef": 2.0},
    {"growth_rate": 1.05, "beta3": 0.95, "d0": 1e-4, "eps": 1e-6},
    {"betas": (0.0, 0.999)},
]
LOOKAHEAD = [
    {"k": 5, "alpha": 0.5, "weight_decay": 0.01},
    {"k": 3, "alpha": 0.8, "weight_decay": 0.1},
    {"k": 1, "alpha": 0.3, "weight_decay": 0.0},
    {"k": 10, "alpha": 0.5, "weight_decay": 0.01, "amsgrad": True},
]


def params() -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in SHAPES]


def max_rel_difference(make_ours, make_theirs) -> tuple[float, float]:
    """The largest |ours - theirs| / max|theirs| over every step, and how far they moved."""
    ours_p, theirs_p = params(), params()
    with contextlib.redirect_stdout(io.StringIO()):  # prodigyopt prints its settings
        ours, theirs = make_ours(ours_p), make_theirs(theirs_p)
    start = [p.detach().clone() for p in ours_p]
    gen, worst = torch.Generator().manual_seed(1), 0.0
    for _ in range(STEPS):
        for p, q in zip(ours_p, theirs_p, strict=True):
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.grad = 0.5 * (p.detach() - 3.0) + noise
            q.grad = 0.5 * (q.detach() - 3.0) + noise
        ours.step()
        theirs.step()
        scale = max(float(q.detach().abs().max()) for q in theirs_p)
        diff = max(
            float((p - q).detach().abs().max()) for p, q in zip(ours_p, theirs_p, strict=True)
        )
        worst = max(worst, diff / scale)
    moved = max(float((p.detach() - s).abs().max()) for p, s in zip(ours_p, start, strict=True))
    return worst, moved


def row(name: str, reference: str, setting: dict, worst: float, moved: float) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"
    print(f"{name:<10} {reference:<34} {shown:<62} {worst:12.1e}  {moved:.2f}")


def main() -> None:
    import prodigyopt
    import pytorch_optimizer

    print(f"float64, {STEPS} steps, parameters of shapes {SHAPES} in one group")
    print(f"{'optimizer':<10} {'reference':<34} {'setting':<62} {'max rel diff':>12}  moved")
    for setting in PRODIGY:
        theirs_kw = {"growth_rate": float("inf"), **setting}  # our None is their inf
        worst, moved = max_rel_difference(
            lambda p, s=setting: Prodigy(p, **s),
            lambda p, s=theirs_kw: prodigyopt.Prodigy(p, **s),
        )
        row("prodigy", "prodigyopt.Prodigy", setting, worst, moved)
    for setting in LOOKAHEAD:
        la = {k: setting[k] for k in ("k", "alpha")}
        inner = {k: v for k, v in setting.items() if k not in la}
        worst, moved = max_rel_difference(
            lambda p, s=setting: Lookahead(p, lr=0.01, **s),
            lambda p, la=la, inner=inner: pytorch_optimizer.Lookahead(
                torch.optim.AdamW(p, lr=0.01, **inner), **la
            ),
        )
        ref = "pytorch_optimizer.Lookahead(AdamW)"
        row("lookahead", ref, {"lr": 0.01, **setting}, worst, moved)


if __name__ == "__main__":
    main()
