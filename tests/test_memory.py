"""Optimizer state memory: theory from the rules, measured from live optimizers."""

from __future__ import annotations

import sys

import pytest
import torch

import optimlab
from optimlab.train import memory as mem

# State slots per element under default hyperparameters (elementwise rules).
SLOTS = {
    "sgd": 0,
    "momentum": 1,
    "nesterov": 1,
    "adagrad": 1,
    "rmsprop": 1,
    "lion": 1,
    "adam": 2,
    "adamw": 2,
    "nadam": 2,
    "radam": 2,
    # issue 13 (Muon, MARS and LAMB reduce over axes but keep parameter-shaped state)
    "adamax": 2,
    "adadelta": 2,
    "rprop": 2,
    "asgd": 1,
    "muon": 1,
    "sgd_schedulefree": 2,
    "adamw_schedulefree": 3,
    "ademamix": 3,
    "mars": 3,
    "lamb": 2,
    "prodigy": 4,  # s, x0, and the two moments (d and its sums are one number per group)
    "lookahead": 3,  # AdamW's two moments and the slow weights
}


def model(bias: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(30, 20, bias=bias), torch.nn.ReLU(), torch.nn.Linear(20, 5, bias=bias)
    )


def model_for(name: str) -> torch.nn.Module:
    """The test model, without biases for rules that take matrices only (Muon)."""
    return model(bias=optimlab.get_rule(name).param_ndim is None)


def test_public_entry_point_and_doc_example() -> None:
    assert optimlab.memory is mem.memory
    r = optimlab.memory("adam", 1000)
    assert (r.state_bytes, r.ratio, r.bytes_per_param) == (8000, 2.0, 8.0)


def test_name_with_int_does_not_need_torch() -> None:
    code = (
        "import sys, optimlab; optimlab.memory('adam', 10); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("name", optimlab.list_optimizers())
def test_table_row_for_every_registered_optimizer(name: str) -> None:
    m = model()
    (row,) = mem.table(m, [name])
    n = sum(p.numel() for p in m.parameters())
    assert row.param_bytes == 4 * n
    if name in SLOTS:
        assert row.state_bytes == SLOTS[name] * 4 * n
        assert row.ratio == SLOTS[name]
    elif name == "adafactor":  # rows + columns for matrices, the whole vector for biases
        assert row.state_bytes == 4 * ((30 + 20) + 20 + (20 + 5) + 5)
        assert row.ratio == pytest.approx(100 / 725)  # sub-linear: 725 params, 100 slots
    else:  # a row added later: theory equals the state its live optimizer keeps
        (measured,) = mem.table(m, [name], measure=True)
        assert row.state_bytes == measured.measured_bytes


def test_table_covers_every_optimizer_and_formats() -> None:
    rows = mem.table(model())
    assert [r.optimizer for r in rows] == optimlab.list_optimizers()
    text = mem.format_table(rows)
    assert text.splitlines()[0].split() == [
        "optimizer",
        "state",
        "bytes",
        "bytes/param",
        "x",
        "params",
        "measured",
    ]
    assert len(text.splitlines()) == len(rows) + 1


def test_measured_equals_theory_for_our_optimizers() -> None:
    for name in optimlab.list_optimizers():
        (row,) = mem.table(model_for(name), [name], measure=True)
        assert row.measured_bytes == row.state_bytes, row.optimizer


@pytest.mark.parametrize("name", optimlab.list_optimizers())
def test_live_theory_honours_state_dtype(name: str) -> None:
    """bf16 parameters with state_dtype=float32 hold 4-byte state: theory must say so."""
    from optimlab.optim import optimizer_class

    m = model_for(name).to(torch.bfloat16)
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    opt = optimizer_class(name)(m.parameters(), state_dtype=torch.float32, **kwargs)
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    r = optimlab.memory(opt, m)
    assert r.measured_bytes > 0
    assert r.state_bytes == r.measured_bytes
    assert r.param_bytes == 2 * sum(p.numel() for p in m.parameters())


def test_hyperparameters_and_dtype_change_the_count() -> None:
    assert optimlab.memory("sgd", 100, momentum=0.9).state_bytes == 400
    assert optimlab.memory("adam", 100, amsgrad=True).state_bytes == 1200
    assert optimlab.memory("adam", 100, dtype="float64").state_bytes == 1600
    assert optimlab.memory("adam", 100, dtype=torch.bfloat16).state_bytes == 400
    assert optimlab.memory("adafactor", {"w": (64, 32)}).state_bytes == 4 * 96


@pytest.mark.parametrize(
    ("make", "name", "slots"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.1), "sgd", 0),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "sgd", 1),
        (lambda p: torch.optim.Adam(p), "adam", 2),
        (lambda p: torch.optim.Adam(p, amsgrad=True), "adam", 3),
        (lambda p: torch.optim.AdamW(p), "adamw", 2),
        (lambda p: torch.optim.RMSprop(p), "rmsprop", 1),
        (lambda p: torch.optim.Adagrad(p), "adagrad", 1),
        (lambda p: torch.optim.NAdam(p), "nadam", 2),
        (lambda p: torch.optim.RAdam(p), "radam", 2),
        (lambda p: torch.optim.Adafactor(p), "adafactor", None),
    ],
)
def test_live_torch_optimizers(make, name: str, slots: int | None) -> None:
    m = model()
    opt = make(m.parameters())
    m(torch.randn(4, 30)).sum().backward()
    opt.step()
    r = optimlab.memory(opt, m)
    n = sum(p.numel() for p in m.parameters())
    assert r.optimizer == name
    expected = 4 * ((30 + 20) + 20 + (20 + 5) + 5) if slots is None else slots * 4 * n
    assert r.state_bytes == expected
    # torch also keeps 0-d tensors per parameter (step, NAdam's mu_product): measured only
    scalars = sum(
        t.nbytes
        for s in opt.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor) and t.ndim == 0
    )
    assert r.measured_bytes == expected + scalars
    assert {p.name for p in r.params} == {n for n, _ in m.named_parameters()}


def test_live_optimizer_before_its_first_step_measures_zero() -> None:
    m = model()
    r = optimlab.memory(torch.optim.Adam(m.parameters()), m)
    assert r.measured_bytes == 0 and r.state_bytes == 8 * sum(p.numel() for p in m.parameters())
    assert r.measured_ratio == 0.0 and r.ratio == 2.0


def test_unknown_optimizer_class_has_measured_only() -> None:
    m = model()
    opt = torch.optim.LBFGS(m.parameters())  # no registry row runs torch's LBFGS
    r = optimlab.memory(opt)
    assert r.state_bytes is None and r.measured_bytes == 0 and r.ratio is None


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("adamm", 10), {}, "unknown optimizer 'adamm'; did you mean 'adam'"),
        (("adam", -1), {}, "model_or_n_params must be an integer >= 0, got -1"),
        (("adam", True), {}, "model_or_n_params must be a model, an int or shapes, got True"),
        (("adam", None), {}, "model_or_n_params is required"),
        (("adam", 10), {"beta1": 2.0}, "beta1 must be in"),
        (("adam", 10), {"dtype": "float7"}, "dtype must be a floating dtype name"),
        ((object(), 10), {}, "optimizer_or_name must be a registered name or a torch optimizer"),
    ],
)
def test_invalid_input(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        optimlab.memory(*args, **kwargs)


def test_table_with_an_empty_name_list_is_empty() -> None:
    """names=[] selects no optimizer (it used to mean every one, like names=None)."""
    assert mem.table(model(), []) == []
    assert [r.optimizer for r in mem.table(model(), ["lion"])] == ["lion"]
