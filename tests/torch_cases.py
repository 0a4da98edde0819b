"""Torch-specific rows and helpers for the ``optimlab.optim`` tests.

The optimizer cases themselves come from ``cases.py`` (one table for every layer); this
module adds what only the torch classes have: ``maximize``, several param groups, problems
to run on (random tensors and a small MLP), and the runner that drives a ``torch.optim``
class and ours through the same steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from cases import CASES, Case, fits, torch_kwargs, torch_reference

from optimlab.optim import CLASSES
from optimlab.rules.registry import REGISTRY, get_spec

NAMES = [spec.name for spec in REGISTRY]
TORCH_NAMES = [spec.name for spec in REGISTRY if spec.torch_reference is not None]
ELEMENTWISE = [spec.name for spec in REGISTRY if spec.rule.elementwise]


def ours_kwargs(case: Case) -> dict[str, Any]:
    """A case's hyperparameters (rule names) as our class's torch-style arguments."""
    full = case.full()
    return {
        a.name: tuple(full[t] for t in a.targets) if a.is_group else full[a.targets[0]]
        for a in CLASSES[case.name]._arguments.args
    }


def torch_reference_class(name: str) -> type[torch.optim.Optimizer]:
    assert get_spec(name).torch_reference is not None
    return torch_reference(name)  # Muon's in full precision: see cases.torch_reference


def torch_cases() -> list[Case]:
    """Every case torch.optim can also run, plus a ``maximize`` row per algorithm."""
    out = [c for c in CASES if torch_kwargs(c.name, c.full()) is not None]
    for name in TORCH_NAMES:
        first = next(c for c in out if c.name == name)
        out.append(Case(name, {**first.hp, "maximize": True}, first.label + "-maximize"))
    return out


def split_maximize(case: Case) -> tuple[Case, bool]:
    hp = dict(case.hp)
    maximize = bool(hp.pop("maximize", False))
    return Case(case.name, hp, case.label), maximize


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """torch keeps some scalar state (NAdam's mu_product) in the default dtype: float64
    references need it to be float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype in (torch.float32, torch.float64) else old)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


SHAPES = [(5, 3), (7,), (4, 3, 2), (1,), ()]
MATRIX_SHAPES = [(5, 3), (3, 7), (1, 4)]


def shapes_for(name: str) -> list[tuple[int, ...]]:
    """SHAPES, or matrices for a rule that takes matrices only (Muon)."""
    return SHAPES if all(fits(name, s) for s in SHAPES) else MATRIX_SHAPES


def has_bias(name: str) -> bool:
    """Whether the test MLP keeps its biases for this rule (not for matrix-only ones)."""
    return fits(name, (1,))


def random_params(dtype: torch.dtype, seed: int = 0, shapes=SHAPES) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]


def random_grads(params: list[torch.Tensor], steps: int, seed: int = 1) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=gen).to(p.dtype) for p in params] for _ in range(steps)]


def run_on_tensors(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    dtype: torch.dtype,
    steps: int,
    shapes=SHAPES,
) -> list[torch.Tensor]:
    """Parameters after ``steps`` steps on fixed random gradients."""
    params = random_params(dtype, shapes=shapes)
    opt = make(params)
    for grads in random_grads(params, steps):
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
    return [p.detach().clone() for p in params]


def mlp(dtype: torch.dtype, seed: int = 0, bias: bool = True) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16, bias=bias), torch.nn.Tanh(), torch.nn.Linear(16, 3, bias=bias)
    ).to(dtype)


def mlp_data(dtype: torch.dtype, n: int = 32, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen).to(dtype)
    y = torch.randn(n, 3, generator=gen).to(dtype)
    return x, y


def run_on_mlp(
    make_ours: Callable[[Any], torch.optim.Optimizer],
    make_theirs: Callable[[Any], torch.optim.Optimizer],
    dtype: torch.dtype,
    steps: int,
    bias: bool = True,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Both optimizers fed the gradients of one MLP training run (full batch, MSE).

    The gradients come from the reference model's trajectory and are given to both, so
    the comparison checks the optimizers on realistic gradients (tiny, sign-flipping and
    exactly-zero entries) without the training dynamics amplifying 1-ulp differences:
    adaptive methods near a minimum behave like sign descent, which is chaotic, and two
    free-running trajectories drift apart at 1e-3 within 200 steps however exact the
    optimizer. ``make_*`` get the model (ours gets an identical copy).
    """
    model = mlp(dtype, bias=bias)
    twin = mlp(dtype, bias=bias)
    x, y = mlp_data(dtype)
    theirs, ours = make_theirs(model), make_ours(twin)
    for _ in range(steps):
        theirs.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        for p, q in zip(model.parameters(), twin.parameters(), strict=True):
            q.grad = p.grad.clone()
        theirs.step()
        ours.step()
    return [p.detach().clone() for p in twin.parameters()], [
        p.detach().clone() for p in model.parameters()
    ]


def max_rel_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """max |a - b| over every element of every tensor, over max |b| (the run's scale)."""
    pairs = [(x.double(), y.double()) for x, y in zip(a, b, strict=True) if x.numel()]
    scale = max(y.abs().max().item() for _, y in pairs) or 1.0
    return max((x - y).abs().max().item() for x, y in pairs) / scale


@pytest.fixture(autouse=False)
def one_thread() -> Iterator[None]:
    """Small tensors: one intra-op thread is faster and immune to a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
