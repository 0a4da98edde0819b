"""state_dict / load_state_dict: exact resume, no aliasing, names, shapes and dtypes."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from cases import CASES, Case
from torch_cases import NAMES, has_bias, mlp, mlp_data, one_thread, ours_kwargs

from optimlab.optim import CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")
assert one_thread

# per optimizer: its defaults and the case exercising the most state (amsgrad, momentum...)
ROUNDTRIP = [c for c in CASES if c.label in ("defaults", "amsgrad", "all", "nesterov", "wd")]


def _roundtrip(obj: object) -> object:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _train(model, opt, steps, record=None):
    x, y = mlp_data(torch.float64)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        if record is not None:
            record.append([p.detach().clone() for p in model.parameters()])


def _snapshot(sd: dict) -> dict:
    return copy.deepcopy(sd)


def _assert_equal_trees(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_equal_trees(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal_trees(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("foreach", [None, False], ids=["fast", "plain"])
@pytest.mark.parametrize("case", ROUNDTRIP, ids=lambda c: c.id)
def test_resume_equals_uninterrupted(case: Case, foreach: bool | None) -> None:
    cls, kwargs = CLASSES[case.name], {**ours_kwargs(case), "foreach": foreach}
    bias = has_bias(case.name)
    model = mlp(torch.float64, bias=bias)
    opt = cls(model.named_parameters(), **kwargs)
    straight: list = []
    _train(model, opt, 100, straight)

    model_a = mlp(torch.float64, bias=bias)
    opt_a = cls(model_a.named_parameters(), **kwargs)
    _train(model_a, opt_a, 50)
    saved = _roundtrip({"model": model_a.state_dict(), "opt": opt_a.state_dict()})
    reference = _snapshot(saved)

    model_b = mlp(torch.float64, seed=99, bias=bias)  # fresh model and optimizer
    model_b.load_state_dict(saved["model"])
    opt_b = cls(model_b.named_parameters(), **kwargs)
    opt_b.load_state_dict(saved["opt"])
    _assert_equal_trees(saved, reference)  # loading did not modify the given dict
    resumed: list = []
    _train(model_b, opt_b, 50, resumed)
    for got, want in zip(resumed, straight[50:], strict=True):
        for x, y in zip(got, want, strict=True):
            assert torch.equal(x, y)
    _assert_equal_trees(saved, reference)  # stepping after load did not mutate the source
    _assert_equal_trees(opt_b.state_dict(), opt.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_holds_plain_data(name: str) -> None:
    model = mlp(torch.float64, bias=has_bias(name))
    opt = CLASSES[name](model.named_parameters())
    _train(model, opt, 2)
    sd = opt.state_dict()
    allowed = (torch.Tensor, int, float, bool, str, type(None), tuple, list, dict)

    def walk(x):
        assert isinstance(x, allowed), type(x)
        if isinstance(x, dict):
            for k, v in x.items():
                walk(k)
                walk(v)
        elif isinstance(x, list | tuple):
            for v in x:
                walk(v)

    walk(sd)
    group = sd["param_groups"][0]
    assert group["param_names"] == [n for n, _ in model.named_parameters()]
    assert group["param_shapes"] == [list(p.shape) for p in model.parameters()]
    _assert_equal_trees(_roundtrip(sd), sd)


def test_mismatched_names_raise_naming_both() -> None:
    model = mlp(torch.float64)
    opt = CLASSES["adam"](model.named_parameters())
    _train(model, opt, 1)
    sd = opt.state_dict()
    renamed = {f"encoder.{n}": p for n, p in model.named_parameters()}
    other = CLASSES["adam"](list(renamed.items()))
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(ValueError, match=r"'0\.weight'.*'encoder\.0\.weight'"):
        other.load_state_dict(sd)
    _assert_equal_trees(other.state_dict(), before)  # nothing changed


def test_mismatched_shapes_raise_naming_both() -> None:
    a = [torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(5))]
    b = [torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(5))]
    opt_a, opt_b = CLASSES["sgd"](a, momentum=0.9), CLASSES["sgd"](b, momentum=0.9)
    with pytest.raises(ValueError, match=r"shape \[3, 4\].*shape \[4, 3\]"):
        opt_b.load_state_dict(opt_a.state_dict())


def test_group_count_and_size_mismatch() -> None:
    ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    one = CLASSES["adam"](ps)
    two = CLASSES["adam"]([{"params": ps[:1]}, {"params": ps[1:]}])
    with pytest.raises(ValueError, match="1 parameter groups.*has 2"):
        two.load_state_dict(one.state_dict())
    with pytest.raises(ValueError, match="3 parameters"):
        CLASSES["adam"](ps[:2]).load_state_dict(one.state_dict())


def test_fp32_state_on_bf16_params_survives_bitwise() -> None:
    params = [torch.nn.Parameter(torch.randn(4, 3).bfloat16())]
    opt = CLASSES["adamw"](params)
    params[0].grad = torch.randn(4, 3).bfloat16()
    opt.step()
    for k in ("m", "v"):
        opt.state[params[0]][k] = opt.state[params[0]][k].float() / 3  # not bf16-representable
    saved = _roundtrip(opt.state_dict())
    fresh = [torch.nn.Parameter(params[0].detach().clone())]
    opt2 = CLASSES["adamw"](fresh)
    opt2.load_state_dict(saved)
    for k in ("m", "v"):
        got, want = opt2.state[fresh[0]][k], opt.state[params[0]][k]
        assert got.dtype == torch.float32 and torch.equal(got, want)
    fresh[0].grad = params[0].grad.clone()
    opt2.step()
    assert opt2.state[fresh[0]]["m"].dtype == torch.float32
    assert fresh[0].dtype == torch.bfloat16


def test_older_state_dict_missing_keys_still_loads() -> None:
    params = [torch.nn.Parameter(torch.randn(3))]
    opt = CLASSES["adam"](params)
    params[0].grad = torch.ones(3)
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    for key in ("bias_correction", "decoupled_weight_decay", "maximize"):
        del sd["param_groups"][0][key]
    del sd["param_groups"][0]["param_shapes"]
    del sd["state"][0]["v_max"]  # a slot added later, default None
    fresh = CLASSES["adam"]([torch.nn.Parameter(params[0].detach().clone())])
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["bias_correction"] is True
    fresh.param_groups[0]["params"][0].grad = torch.ones(3)
    fresh.step()
    assert fresh.state[fresh.param_groups[0]["params"][0]]["count"] == 2


def test_loading_torch_optim_state_is_a_clear_error() -> None:
    params = [torch.nn.Parameter(torch.randn(3))]
    theirs = torch.optim.Adam(params)
    params[0].grad = torch.ones(3)
    theirs.step()
    with pytest.raises(ValueError, match="'exp_avg'.*another optimizer"):
        CLASSES["adam"](params).load_state_dict(theirs.state_dict())


def test_invalid_saved_hyperparameters_rejected_before_loading() -> None:
    params = [torch.nn.Parameter(torch.randn(3))]
    opt = CLASSES["adam"](params)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr must be >= 0, got -1.0"):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 1e-3
