"""The torch.optim surface of every generated class: signatures, errors, groups, closures,
schedulers, dtypes, None grads, direction, complex params, repr/deepcopy, create_optimizer."""

from __future__ import annotations

import copy
import inspect
import math
import pydoc
import subprocess
import sys
from typing import Any, NamedTuple

import pytest
import torch
from cases import INVALID, Case, Invalid, fits, torch_kwargs
from torch_cases import (
    ELEMENTWISE,
    NAMES,
    TORCH_NAMES,
    default_dtype,
    one_thread,
    ours_kwargs,
    random_grads,
    random_params,
    torch_reference_class,
)

import optimlab
from optimlab.optim import CLASSES, create_optimizer, optimizer_class
from optimlab.optim.classes import make_class
from optimlab.rules.base import Hyper, Rule, n_slots
from optimlab.rules.registry import REGISTRY, OptimizerSpec, get_spec

pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread

SAME_NAME = [s.name for s in REGISTRY if s.torch_class in dir(torch.optim)]
LRS = {"lion": 1e-2, "adafactor": 1e-2}  # a step size that moves in 20 steps


def _p(*shape: int, dtype=torch.float64) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.randn(*shape, dtype=dtype))


def _fitting(name: str, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The shapes the rule takes (Muon: matrices only)."""
    return [s for s in shapes if fits(name, s)]


# -- signatures and defaults -----------------------------------------------------------


@pytest.mark.parametrize("name", SAME_NAME)
def test_signature_and_defaults_match_torch(name: str) -> None:
    ours = inspect.signature(CLASSES[name]).parameters
    theirs = inspect.signature(getattr(torch.optim, get_spec(name).torch_class)).parameters
    for pname, param in theirs.items():
        assert pname in ours, pname
        assert ours[pname].kind == param.kind, pname
        assert ours[pname].default == param.default, pname
    extra = [n for n in ours if n not in theirs]
    assert all(ours[n].kind == inspect.Parameter.KEYWORD_ONLY for n in extra)
    # default group values equal torch's for every shared key (a matrix: Muon takes no other)
    params = [_p(2, 2)]
    ours_group = CLASSES[name](params).param_groups[0]
    theirs_group = getattr(torch.optim, get_spec(name).torch_class)([_p(2, 2)]).param_groups[0]
    for key, value in theirs_group.items():
        if key != "params" and key in ours_group:
            assert ours_group[key] == value, key


@pytest.mark.parametrize("name", NAMES)
def test_classes_are_exported_and_named(name: str) -> None:
    cls = optimizer_class(name)
    assert getattr(optimlab.optim, get_spec(name).torch_class) is cls
    assert issubclass(cls, torch.optim.Optimizer)
    assert cls.__name__ == get_spec(name).torch_class
    assert get_spec(name).rule.summary in cls.__doc__


def test_public_names() -> None:
    from optimlab.optim import SGD, Adafactor, Adagrad, Adam, AdamW, Lion, NAdam, RAdam, RMSprop

    assert {
        c.__name__ for c in (SGD, Adagrad, RMSprop, Adam, AdamW, NAdam, RAdam, Adafactor, Lion)
    } <= set(optimlab.optim.__all__)
    assert optimlab.create_optimizer is create_optimizer


def test_import_optimlab_does_not_import_torch() -> None:
    code = "import sys, optimlab; optimlab.list_optimizers(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- bad input ---------------------------------------------------------------------------


def _torch_style(inv: Invalid) -> dict | None:
    """An invalid rule-name setting as constructor arguments (None: not expressible)."""
    arguments = CLASSES[inv.name]._arguments
    out: dict = {}
    for key, value in inv.hp.items():
        arg = next((a for a in arguments.args if key in a.targets), None)
        if arg is None or getattr(value, "ndim", 0) > 0:
            return None  # torch takes one value per group: arrays, test_misuse.py
        if arg.is_group:
            pair = list(out.get(arg.name, arg.default))
            pair[arg.targets.index(key)] = value
            out[arg.name] = tuple(pair)
        else:
            out[arg.name] = value
    return out


CTOR_INVALID = [inv for inv in INVALID if _torch_style(inv) is not None]


@pytest.mark.parametrize("inv", CTOR_INVALID, ids=lambda i: i.id)
def test_invalid_hyperparameters_raise_before_anything(inv: Invalid) -> None:
    kwargs = _torch_style(inv)
    with pytest.raises(ValueError) as err:
        CLASSES[inv.name]([_p(2)], **kwargs)
    assert inv.match in str(err.value)
    # the same through a second param group, then through an edited group at step time
    opt = CLASSES[inv.name]([_p(2)])
    with pytest.raises(ValueError) as err:
        opt.add_param_group({"params": [_p(3)], **kwargs})
    assert inv.match in str(err.value) and len(opt.param_groups) == 1
    param = opt.param_groups[0]["params"][0]
    param.grad = torch.ones(2, dtype=torch.float64)
    before = param.detach().clone()
    opt.param_groups[0].update(kwargs)
    with pytest.raises(ValueError) as err:
        opt.step()
    assert inv.match in str(err.value)
    assert torch.equal(param.detach(), before) and not opt.state


@pytest.mark.parametrize("name", NAMES)
def test_torch_api_errors(name: str) -> None:
    cls = CLASSES[name]
    p = _p(3)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        cls(p)
    with pytest.raises(ValueError, match="empty parameter list"):
        cls([])
    with pytest.raises(TypeError, match="not a set"):
        cls({p})
    with pytest.raises(ValueError, match="appears twice"):
        cls([p, p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        cls([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="non-leaf"):
        cls([p * 2])
    with pytest.raises(TypeError, match="unexpected keyword argument 'momentun'"):
        cls([p], momentun=0.9)
    if "differentiable" in cls._arguments.flags:
        with pytest.raises(ValueError, match="differentiable=True is not supported"):
            cls([p], differentiable=True)
    with pytest.raises(ValueError, match="foreach must be None, True or False"):
        cls([p], foreach="yes")


def test_flag_errors() -> None:
    with pytest.raises(ValueError, match="foreach and fused cannot both be True"):
        CLASSES["adam"]([_p(2)], foreach=True, fused=True)
    with pytest.raises(ValueError, match="betas must be a pair"):
        CLASSES["adam"]([_p(2)], betas=0.9)
    with pytest.raises(ValueError, match="maximize must be True or False"):
        CLASSES["adam"]([_p(2)], maximize=1)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_grad_is_a_clear_error_before_any_change(name: str) -> None:
    dense, sparse = _p(3), _p(4)
    opt = CLASSES[name]([dense, sparse])
    dense.grad = torch.ones(3, dtype=torch.float64)
    sparse.grad = torch.eye(4, dtype=torch.float64)[0].to_sparse()
    before = dense.detach().clone()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()
    assert torch.equal(dense.detach(), before) and not opt.state


def test_complex_params_need_an_elementwise_rule() -> None:
    with pytest.raises(ValueError, match="does not support complex parameters"):
        CLASSES["adafactor"]([_p(2, dtype=torch.complex64)])


# -- the torch.optim surface -------------------------------------------------------------


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_step_lr_scheduler_edits_lr(name: str) -> None:
    """torch's StepLR changes group['lr'] between steps; same numbers as torch's class."""
    case = Case(name, {"lr": 0.05})
    results = []
    for make in (
        lambda ps: CLASSES[name](ps, **ours_kwargs(case)),
        lambda ps: torch_reference_class(name)(ps, **torch_kwargs(name, case.full())),
    ):
        params = random_params(torch.float64, shapes=_fitting(name, [(4, 3), (5,)]))
        with default_dtype(torch.float64):
            opt = make(params)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.3)
            lrs = []
            for grads in random_grads(params, 12):
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
                opt.step()
                sched.step()
                lrs.append(opt.param_groups[0]["lr"])
        results.append((params, lrs))
    (ours, lrs_ours), (theirs, lrs_theirs) = results
    assert lrs_ours == lrs_theirs and lrs_ours[-1] < 0.05
    for x, y in zip(ours, theirs, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_zero_grad_closure_and_add_param_group(name: str) -> None:
    a, b = _p(3, 2), _p(2, 2)
    opt = CLASSES[name]([a], lr=0.01)
    seen = []

    def closure():
        seen.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = (a**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert seen == [True] and isinstance(loss, torch.Tensor) and loss.item() > 0
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and torch.all(a.grad == 0)
    opt.zero_grad(set_to_none=True)
    assert a.grad is None
    opt.add_param_group({"params": [b], "lr": 0.02})
    assert opt.param_groups[1]["lr"] == 0.02
    before = b.detach().clone()
    b.grad = torch.ones_like(b)
    opt.step()
    assert not torch.equal(b.detach(), before)
    assert opt.state[b]["count"] == 1 and opt.state[a]["count"] == 1  # a had no grad


@pytest.mark.parametrize("name", NAMES)
def test_none_grads_skip_and_zero_grads_step(name: str) -> None:
    a, b = _p(3, 2), _p(4, 1)
    decays = "weight_decay" in inspect.signature(CLASSES[name]).parameters  # Rprop: none
    opt = CLASSES[name]([a, b], **({"weight_decay": 0.1} if decays else {}))
    a.grad = torch.zeros_like(a)  # zero gradient: weight decay still acts
    before_a, before_b = a.detach().clone(), b.detach().clone()
    opt.step()
    assert b not in opt.state and torch.equal(b.detach(), before_b)
    assert torch.equal(a.detach(), before_a) != decays
    assert opt.state[a]["count"] == 1


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["f32", "f64", "bf16"]
)
@pytest.mark.parametrize("name", NAMES)
def test_dtypes_kept(name: str, dtype: torch.dtype) -> None:
    params = [_p(*s, dtype=dtype) for s in _fitting(name, [(4, 3), (5,)])]
    opt = CLASSES[name](params, lr=0.01)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn(p.shape).to(dtype)
        opt.step()
    for p in params:
        assert p.dtype == dtype and torch.isfinite(p.float()).all()
        for v in opt.state[p].values():
            if isinstance(v, torch.Tensor):
                assert v.dtype == dtype


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("name", NAMES)
def test_goes_the_right_direction(name: str, contiguous: bool) -> None:
    """20 steps on a quadratic lower the loss; with maximize=True they raise it."""
    target = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4)
    for maximize in (False, True):
        start = torch.zeros(4, 3, dtype=torch.float64).t()
        p = torch.nn.Parameter(start.contiguous() if contiguous else start)
        assert p.is_contiguous() == contiguous
        opt = CLASSES[name]([p], lr=LRS.get(name, 0.05), maximize=maximize)

        def loss(p=p):
            return ((p - target) ** 2).sum()

        first = loss().item()
        for _ in range(20):
            opt.zero_grad()
            loss().backward()
            opt.step()
        assert (loss().item() > first) if maximize else (loss().item() < first)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_complex_param_equals_its_real_view(name: str) -> None:
    z = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.complex128))
    r = torch.nn.Parameter(torch.view_as_real(z.detach()).clone())
    opt_z, opt_r = CLASSES[name]([z], lr=0.01), CLASSES[name]([r], lr=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        g = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64)
        z.grad, r.grad = torch.view_as_complex(g.clone()), g
        opt_z.step()
        opt_r.step()
        assert torch.equal(torch.view_as_real(z.detach()), r.detach())


@pytest.mark.parametrize("name", NAMES)
def test_repr_and_deepcopy(name: str) -> None:
    params = [_p(*s) for s in _fitting(name, [(3,), (2, 2)])]
    opt = CLASSES[name](params, lr=0.01)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    text = repr(opt)
    assert text.startswith(get_spec(name).torch_class) and "lr: 0.01" in text
    twin = copy.deepcopy(opt)
    twin_params = twin.param_groups[0]["params"]
    for p in twin_params:
        p.grad = torch.ones_like(p)
    opt.step()
    twin.step()
    for x, y in zip(params, twin_params, strict=True):
        assert torch.equal(x, y) and x is not y
    assert twin.state[twin_params[0]]["count"] == 2


def test_state_dict_param_names_from_named_parameters() -> None:
    model = torch.nn.Linear(3, 2)
    opt = CLASSES["adam"](model.named_parameters())
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]


# -- create_optimizer ----------------------------------------------------------------


def test_create_optimizer_accepts_torch_and_rule_names() -> None:
    p = _p(3)
    a = create_optimizer("adam", [p], lr=0.1, beta2=0.9)
    assert a.param_groups[0]["betas"] == (0.9, 0.9) and isinstance(a, CLASSES["adam"])
    b = optimlab.create_optimizer("AdamW", [p], betas=(0.8, 0.99), weight_decay=0.0)
    assert b.param_groups[0]["betas"] == (0.8, 0.99)
    with pytest.raises(ValueError, match="did you mean 'momentum'"):
        create_optimizer("sgd", [p], momentun=0.9)
    with pytest.raises(ValueError, match="either betas or beta1, beta2"):
        create_optimizer("adam", [p], betas=(0.9, 0.9), beta1=0.8)
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; did you mean 'adam'"):
        create_optimizer("adamm", [p])
    with pytest.raises(ValueError, match="beta1 must be a finite number in"):
        create_optimizer("lion", [p], beta1=math.nan)


@pytest.mark.parametrize("name", NAMES)
def test_state_dtype_option_is_honoured(name: str) -> None:
    """state_dtype=float32 on bf16 params: every slot fp32 from the first step on (also the
    slots a rule creates later, like SGD's momentum buffer), params stay bf16, and the
    fast path equals the plain one."""
    results = []
    for foreach in (False, None):
        gen = torch.Generator().manual_seed(0)
        params = [
            torch.nn.Parameter(torch.randn(s, generator=gen).bfloat16())
            for s in _fitting(name, [(4, 3), (5,)])
        ]
        kwargs = (
            {"momentum": 0.9} if "momentum" in inspect.signature(CLASSES[name]).parameters else {}
        )
        opt = CLASSES[name](params, lr=0.01, state_dtype=torch.float32, foreach=foreach, **kwargs)
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).bfloat16()
            opt.step()
            for p in params:
                assert p.dtype == torch.bfloat16
                slots = [v for v in opt.state[p].values() if isinstance(v, torch.Tensor)]
                assert slots and all(v.dtype == torch.float32 for v in slots)
        results.append(params)
    for x, y in zip(*results, strict=True):
        assert torch.equal(x, y)
    with pytest.raises(ValueError, match="state_dtype must be None or a floating dtype"):
        CLASSES[name]([_p(2)], state_dtype=torch.int32)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_one_cycle_cycles_betas_and_momentum_like_torch(name: str) -> None:
    """OneCycleLR edits group['lr'] and group['betas'] (Adam) or group['momentum'] (SGD)."""
    case = Case(name, {"lr": 0.05, "momentum": 0.9} if name == "sgd" else {"lr": 0.05})
    results = []
    for make in (
        lambda ps: CLASSES[name](ps, **ours_kwargs(case)),
        lambda ps: torch_reference_class(name)(ps, **torch_kwargs(name, case.full())),
    ):
        params = random_params(torch.float64, shapes=[(4, 3), (5,)])
        opt = make(params)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20)
        seen = []
        for grads in random_grads(params, 20):
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
            sched.step()
            group = opt.param_groups[0]
            seen.append(group["betas"] if name == "adam" else group["momentum"])
        results.append((params, seen))
    (ours, seen_ours), (theirs, seen_theirs) = results
    assert seen_ours == seen_theirs and len(set(seen_ours)) > 5
    for x, y in zip(ours, theirs, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)


def test_missing_torch_reference_falls_back_to_the_rule_order() -> None:
    """Older torch lacks some classes (Adafactor is 2.5+): the class still builds."""
    import dataclasses

    from optimlab.optim.arguments import build_arguments

    spec = dataclasses.replace(get_spec("adafactor"), torch_reference="torch.optim.NoSuch")
    params = list(build_arguments(spec).signature.parameters)
    assert params == [
        "params",
        "lr",
        "beta2_decay",
        "eps",
        "d",
        "weight_decay",
        "maximize",
        "foreach",
        "fused",
        "state_dtype",
        "flat",
    ]


# -- classes from registry rows ------------------------------------------------------------


class _CountState(NamedTuple):
    count: Any


def _rprop_like_row(reference: str | None) -> OptimizerSpec:
    """A row whose grouped torch arguments are not ``<stem>1, <stem>2`` (Rprop's)."""

    def init(param: Any) -> _CountState:
        return _CountState(0)

    def update(grad, state, param, *, lr, eta_minus, eta_plus, step_size_min, step_size_max):
        """Plain gradient descent that records its hyperparameters."""
        SEEN.update(lr=lr, etas=(eta_minus, eta_plus), step_sizes=(step_size_min, step_size_max))
        return -lr * grad, _CountState(state.count + 1)

    rule = Rule(
        name="rprop_like",
        init=init,
        update=update,
        hyperparams=(
            Hyper("lr", 0.01, low=0.0, doc="learning rate"),
            Hyper("eta_minus", 0.5, 0.0, 1.0, doc="decrease factor"),
            Hyper("eta_plus", 1.2, 1.0, doc="increase factor"),
            Hyper("step_size_min", 1e-6, 0.0, doc="smallest step"),
            Hyper("step_size_max", 50.0, 0.0, doc="largest step"),
        ),
        state_numel=n_slots(lambda hp: 0),
        summary="A test row.",
    )
    return OptimizerSpec(
        rule,
        "RpropLike",
        reference,
        torch_args={
            "etas": ("eta_minus", "eta_plus"),
            "step_sizes": ("step_size_min", "step_size_max"),
        },
    )


SEEN: dict[str, Any] = {}


@pytest.mark.parametrize("reference", [None, "torch.optim.Rprop"])
def test_any_grouped_torch_args_make_a_class(reference: str | None) -> None:
    """The class comes from the row's data alone, whatever the grouped arguments are called."""
    spec = _rprop_like_row(reference)
    cls = make_class(spec)
    names = list(inspect.signature(cls).parameters)
    if reference is None:
        assert names == [
            *("params", "lr", "etas", "step_sizes", "maximize", "foreach", "fused"),
            *("state_dtype", "flat"),
        ]
    else:  # torch's own signature, then our options (Rprop has no fused)
        assert names == [
            *inspect.signature(torch.optim.Rprop).parameters,
            "fused",
            "state_dtype",
            "flat",
        ]
    assert inspect.signature(cls).parameters["etas"].default == (0.5, 1.2)
    p = _p(3)
    opt = cls([p], etas=(0.4, 1.3))
    p.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    assert SEEN == {"lr": 0.01, "etas": (0.4, 1.3), "step_sizes": (1e-6, 50.0)}
    assert spec.from_torch(opt.param_groups[0])["eta_plus"] == 1.3
    with pytest.raises(ValueError, match=r"etas must be a pair \(eta_minus, eta_plus\)"):
        cls([p], etas=0.5)
    with pytest.raises(ValueError, match="eta_minus must be in"):
        cls([p], etas=(2.0, 1.3))


def test_help_shows_the_math_and_torchs_signature() -> None:
    from optimlab.optim import AdamW

    text = pydoc.render_doc(AdamW)
    assert r"m_t &= \beta_1 m_{t-1}" in text  # the rule's math, from its docstring
    assert "betas=(0.9, 0.999)" in text and "weight_decay=0.01" in text
    assert "partial(func" not in text
    assert inspect.signature(AdamW).parameters["betas"].default == (0.9, 0.999)


def test_classes_pickle_by_name_and_are_listed() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(CLASSES["adamw"])) is CLASSES["adamw"]
    assert {spec.torch_class for spec in REGISTRY} <= set(dir(optimlab.optim))
    with pytest.raises(AttributeError, match="has no attribute 'Adamm'"):
        optimlab.optim.Adamm  # noqa: B018
