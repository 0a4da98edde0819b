"""Issue 10's inputs, each as a new user tried it: a clear error naming the argument before
anything changes, or a result that works (never NaN weights from an accepted value, never
a traceback from the command line)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import optimlab
from optimlab.cli import main
from optimlab.optim import CLASSES
from optimlab.rules.registry import REGISTRY

NAMES = [spec.name for spec in REGISTRY]


def _matrix_params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(3, 2, generator=g, dtype=torch.float64))
    p.grad = torch.randn(3, 2, generator=g, dtype=torch.float64)
    return [p]


def _snapshot(opt: torch.optim.Optimizer) -> tuple[list[torch.Tensor], str]:
    params = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    return params, repr(opt.state_dict()["state"])


# -- torch optimizers: one learning rate per group, as torch.optim ---------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            torch.tensor([0.1, 0.2]),
            r"^lr must be a number \(a 1-element tensor\), got a tensor of shape \(2,\)$",
        ),
        (np.full(2, 0.1), r"^lr must be a number, got an array of shape \(2,\)$"),
        (np.full((3, 2), 0.1), r"^lr must be a number, got an array of shape \(3, 2\)$"),
    ],
    ids=["tensor", "array", "array-like-the-param"],
)
def test_torch_optimizers_take_one_lr_per_group(name: str, value, message: str) -> None:
    cls = CLASSES[name]
    with pytest.raises(ValueError, match=message):
        cls(_matrix_params(), lr=value)
    opt = cls(_matrix_params())
    opt.step()
    before = _snapshot(opt)
    opt.param_groups[0]["lr"] = value  # a group edit, checked at the next step
    with pytest.raises(ValueError, match=message):
        opt.step()
    after = _snapshot(opt)
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0], strict=True))
    assert before[1] == after[1]


def test_a_one_element_tensor_lr_works_as_in_torch() -> None:
    ours, theirs = _matrix_params(), _matrix_params()
    CLASSES["sgd"](ours, lr=torch.tensor(0.1)).step()
    torch.optim.SGD(theirs, lr=torch.tensor(0.1)).step()
    assert torch.equal(ours[0], theirs[0])


def _as_tensors(value):
    """Every float of a group value (a number or a tuple such as betas) as a 1-element
    float64 tensor."""
    if isinstance(value, tuple):
        return tuple(_as_tensors(v) for v in value)
    if isinstance(value, float):
        return torch.tensor([value], dtype=torch.float64)
    return value


@pytest.mark.parametrize("name", NAMES)
def test_every_hyperparameter_may_be_a_one_element_tensor(name: str) -> None:
    """Each float of a group given as a 1-element tensor steps exactly as the float (the
    fuzz test found schedule-free's weight_lr_power=tensor([0.]) failing mid-step)."""
    runs = []
    for tensors in (False, True):
        params = _matrix_params()
        opt = CLASSES[name](params)
        if tensors:
            group = opt.param_groups[0]
            group.update({k: _as_tensors(v) for k, v in group.items() if k != "params"})
        for _ in range(3):
            opt.step()
        runs.append(params[0].detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_torch_betas_of_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^beta1 must be a number, got an array of shape"):
        CLASSES["adam"](_matrix_params(), betas=(np.full(3, 0.9), 0.999))


# -- state dicts of torch.optim ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "theirs"),
    [
        ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
        ("muon", lambda ps: torch.optim.Muon(ps, lr=0.1)),
    ],
)
def test_torch_optim_state_dicts_are_refused_at_load(name: str, theirs) -> None:
    params = _matrix_params()
    other = theirs(params)
    other.step()
    ours = CLASSES[name](params, lr=0.1)
    with pytest.raises(ValueError, match=r"lacks 'count'.*saved by another optimizer"):
        ours.load_state_dict(other.state_dict())
    assert ours.state_dict()["state"] == {}
    ours.step()  # still usable


# -- accepted values that gave NaN or inf weights ---------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("eps1", [1e-30, 1e-170, 1e-320])
@pytest.mark.parametrize("grad", [0.0, 1e-170], ids=["zero", "tiny"])
@pytest.mark.parametrize("shape", [(3, 2), (4,)], ids=["factored", "vector"])
def test_adafactor_tiny_eps1_never_gives_nan(dtype, eps1, grad, shape) -> None:
    p = torch.nn.Parameter(torch.ones(shape, dtype=dtype))
    opt = CLASSES["adafactor"]([p], lr=0.1, eps=(eps1, 1e-3))
    for _ in range(3):
        p.grad = torch.full(shape, grad, dtype=dtype)
        opt.step()
    assert torch.isfinite(p).all()
    w = np.ones(shape)
    numpy_opt = optimlab.numpy_optimizer("adafactor", lr=0.1, eps1=eps1)
    for _ in range(3):
        w = numpy_opt.update(w, np.full(shape, grad))
    assert np.isfinite(w).all()


def test_adafactor_eps1_floor_changes_nothing_where_eps1_squared_is_representable() -> None:
    """The floor only replaces an eps1**2 that would round to 0 in the parameter's dtype."""
    for eps1 in (1e-3, 1e-30, 1e-150):
        p = torch.nn.Parameter(torch.ones(3, 2, dtype=torch.float64))
        q = torch.nn.Parameter(torch.ones(3, 2, dtype=torch.float64))
        ours, theirs = (
            CLASSES["adafactor"]([p], eps=(eps1, 1e-3)),
            torch.optim.Adafactor([q], eps=(eps1, 1e-3), foreach=False),
        )
        for step in range(3):
            g = torch.full((3, 2), 0.5 * step, dtype=torch.float64)  # zero at first
            p.grad, q.grad = g.clone(), g.clone()
            ours.step()
            theirs.step()
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hp", ["lr", "weight_decay"])
def test_lr_and_weight_decay_that_overflow_are_refused(name: str, hp: str) -> None:
    rule = REGISTRY[NAMES.index(name)].rule
    if hp not in rule.names:
        pytest.skip(f"{name} has no {hp}")
    message = rf"^{hp} must be <= 1e\+06, got 1e\+308$"
    with pytest.raises(ValueError, match=message):
        rule.validate(**{hp: 1e308})
    with pytest.raises(ValueError, match=message):
        optimlab.numpy_optimizer(name, **{hp: 1e308})
    assert rule.validate(**{hp: 1e6})[hp] == 1e6


# -- the command line -------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--eval-every", "0"], "--eval-every must be an integer >= 1, got 0"),
        (["compare", "--max-batch", "0"], "--max-batch must be an integer >= 1, got 0"),
        (["compare", "--threads", "0"], "--threads must be an integer >= 1, got 0"),
        (["compare", "--steps", "0"], "--steps must be an integer >= 1, got 0"),
        (["sweep", "--eval-every", "-3"], "--eval-every must be an integer >= 1, got -3"),
        (["compare", "--lrs", "1e-3,,0.1"], "--lrs must be a number, got ''"),
        (["compare", "--seeds", "1,,2"], "--seeds must be an integer >= 0, got ''"),
    ],
)
def test_messages_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = _cli(capsys, *argv, "--out", str(tmp_path / "res"))
    assert code == 2 and err == f"optimlab: error: {message}\n"
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-iter", "0"], "--num-iter must be an integer >= 2, got 0"),
        (["--start-lr", "-1"], "--start-lr must be > 0, got -1.0"),
        (["--start-lr", "1", "--end-lr", "0.1"], "--end-lr must be > --start-lr (1), got 0.1"),
        (["--accumulation-steps", "0"], "--accumulation-steps must be an integer >= 1, got 0"),
    ],
)
def test_lr_find_messages_name_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = _cli(capsys, "lr-find", "--problem", "least_squares", *argv)
    assert code == 2 and err == f"optimlab: error: {message}\n"


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".cfg"])
def test_a_config_in_another_format_names_the_accepted_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    config = tmp_path / f"c{suffix}"
    config.write_text("problem: rosenbrock\nsteps: 10\n")
    code, _, err = _cli(capsys, "sweep", str(config))
    assert code == 2
    assert err.startswith(
        f"optimlab: error: cannot read config {str(config)!r}: a sweep config is JSON or TOML"
    )
    assert "Expecting value" not in err and err.count("\n") == 1


def test_a_json_config_with_any_suffix_still_works(tmp_path: Path) -> None:
    config = tmp_path / "c.cfg"
    config.write_text(json.dumps({"problem": "rosenbrock", "steps": 5, "seeds": 1}))
    out = tmp_path / "res"
    assert main(["sweep", str(config), "--lrs", "0.1", "-q", "--no-report", "--out", str(out)]) == 0


@pytest.mark.parametrize("flag", ["--csv", "--json", "--out"])
def test_report_outputs_in_missing_folders_are_refused_and_never_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    res = tmp_path / "res"
    argv = ["compare", "--problem", "rosenbrock", "--optimizer", "adam", "--lrs", "0.1"]
    assert main([*argv, "--seeds", "1", "--steps", "5", "-q", "--out", str(res)]) == 0
    capsys.readouterr()
    target = tmp_path / "nonexistent" / "deeper" / "x.out"
    code, out, err = _cli(capsys, "report", str(res), flag, str(target))
    assert code == 2
    assert err == (
        f"optimlab: error: cannot write {str(target)!r}: folder "
        f"{str(target.parent)!r} does not exist\n"
    )
    assert not (tmp_path / "nonexistent").exists() and out == ""


USER_PROBLEMS = """
import torch

def raises_when_built(seed):
    raise RuntimeError("boom while building")

def raises_in_loss(seed):
    model = torch.nn.Linear(2, 1)
    def loss_fn(m, batch):
        raise RuntimeError("boom in the loss")
    return model, loss_fn, (torch.ones(4, 2), torch.ones(4, 1))
"""


@pytest.mark.parametrize(
    ("function", "needle"),
    [
        ("raises_when_built", "RuntimeError: boom while building"),
        ("raises_in_loss", "RuntimeError: boom in the loss"),
    ],
)
def test_lr_find_on_a_user_function_that_raises_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], function: str, needle: str
) -> None:
    path = tmp_path / "tasks.py"
    path.write_text(USER_PROBLEMS)
    spec = f"{path}:{function}"
    code, _, err = _cli(capsys, "lr-find", "--problem", spec, "--num-iter", "5")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.match(rf"^optimlab: error: problem {re.escape(repr(spec))} raised ", err)
    assert needle in err and "OPTIMLAB_DEBUG=1" in err


def test_nadam_docs_state_the_default_dtype_condition() -> None:
    """torch keeps NAdam's mu_product in the default dtype: under float32 its float64 runs
    differ from ours (the more precise) by up to a few 1e-10, which the docs must say."""
    from cases import CASES, torch_kwargs
    from torch_cases import default_dtype, max_rel_diff, ours_kwargs, run_on_tensors, shapes_for

    worst = {torch.float64: 0.0, torch.float32: 0.0}
    for case in (c for c in CASES if c.name == "nadam"):
        theirs_kw = torch_kwargs(case.name, case.full())
        for default in worst:
            with default_dtype(default):
                got = run_on_tensors(
                    lambda ps: CLASSES["nadam"](ps, **ours_kwargs(case)),  # noqa: B023
                    torch.float64,
                    200,
                    shapes_for("nadam"),
                )
                expected = run_on_tensors(
                    lambda ps: torch.optim.NAdam(ps, **theirs_kw),  # noqa: B023
                    torch.float64,
                    200,
                    shapes_for("nadam"),
                )
            worst[default] = max(worst[default], max_rel_diff(got, expected))
    assert worst[torch.float64] < 1e-10 and 1e-11 < worst[torch.float32] < 1e-8, worst
    text = (Path(__file__).resolve().parents[1] / "docs" / "torch.md").read_text()
    flat = " ".join(text.split())
    assert "NAdam's float64 bound holds under torch's default dtype float64" in flat
    assert "up to about 2e-10 over 200 steps (< 1e-8 asserted" in flat


# -- checkpoints ------------------------------------------------------------------------------
def test_a_checkpoint_whose_manifest_step_was_edited_is_refused(tmp_path: Path) -> None:
    import hashlib
    import warnings

    from optimlab.train.checkpoint import (
        CheckpointCorruptError,
        CheckpointManager,
        CheckpointWarning,
    )

    model = torch.nn.Linear(2, 1)
    opt = CLASSES["adam"](model.parameters())
    manager = CheckpointManager(tmp_path, model=model, optimizer=opt)
    manager.save(20)
    path = manager.save(30)
    manifest_file = path / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["step"] = 999
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    manifest["checksum"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    manifest_file.write_text(json.dumps(manifest))
    message = r"says step 999, but the checkpoint was written as step-00000030"
    with pytest.raises(CheckpointCorruptError, match=message):
        manager.load(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = manager.restore()
    assert restored is not None and restored.step == 20  # the previous, intact one
    assert any(issubclass(w.category, CheckpointWarning) for w in caught)


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_a_pickle_payload_in_a_checkpoint_is_never_executed(tmp_path: Path) -> None:
    """A component file replaced by a pickle whose loading runs code, with the manifest's
    hashes and checksum recomputed to match: refused as not plain data, never run."""
    import hashlib
    import io
    import warnings

    from optimlab.train.checkpoint import CheckpointCorruptError, CheckpointManager

    model = torch.nn.Linear(2, 1)
    manager = CheckpointManager(
        tmp_path / "ck", model=model, optimizer=CLASSES["sgd"](model.parameters())
    )
    path = manager.save(1)
    marker = tmp_path / "executed"
    buf = io.BytesIO()
    torch.save({"state": _Payload(marker)}, buf)
    (path / "model.pt").write_bytes(buf.getvalue())
    manifest = json.loads((path / "manifest.json").read_text())
    data = buf.getvalue()
    manifest["files"]["model.pt"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    manifest["checksum"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointCorruptError, match="cannot be loaded as plain data"):
        manager.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointCorruptError, match="no valid checkpoint"):
            manager.restore()
    assert not marker.exists()
