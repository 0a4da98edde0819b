"""Parameter routing (issue 13, item 4): the plan, param groups, one torch optimizer that
steps each group with its own rule (and saves, loads and resumes it), and the lab using
the same plan, so Muon runs on any model.

One optimizer with a routed group against two optimizers over the same groups: the same
operations on the same values, so bitwise. The lab's per-setting loop against the torch
class on the same batches: two computations (functional vs in-place), so the numerics
tolerance."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from numerics import assert_close

import optimlab
from optimlab import problems
from optimlab.lab.engine import Setting, run
from optimlab.optim import AdamW, Muon, optimizer_class, routing

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _toy() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Embedding(10, 8),
        torch.nn.Linear(8, 8),
        torch.nn.LayerNorm(8),
        torch.nn.Linear(8, 8, bias=False),
        torch.nn.Linear(8, 10),
    ).double()


def test_plan_of_the_transformer() -> None:
    model = problems.get("transformer").torch_task(0).model
    routes = {r.name: r for r in routing.plan(model, "muon")}
    assert set(routes) == {n for n, _ in model.named_parameters()}
    roles = {name: r.role for name, r in routes.items()}
    assert roles["embed.weight"] == roles["position.weight"] == "embedding"
    assert roles["head.weight"] == "head"
    assert roles["blocks.0.qkv.weight"] == roles["blocks.1.down.weight"] == "matrix"
    assert roles["blocks.0.qkv.bias"] == "bias" and roles["norm.weight"] == "norm"
    assert roles["blocks.1.ln2.bias"] == "norm"  # a norm's bias is the norm's
    for r in routes.values():
        assert r.optimizer == ("muon" if r.role == "matrix" else "adamw")
        assert r.decay == (r.role in ("matrix", "head"))
    # a rule that takes any shape gets every parameter; decay is still off where it should be
    for r in routing.plan(model, "adamw"):
        assert r.optimizer == "adamw" and r.decay == (r.role in ("matrix", "head"))


def test_table_is_a_dry_run() -> None:
    text = routing.table(routing.plan(_toy(), "muon"))
    lines = text.splitlines()
    assert lines[0].split() == ["parameter", "shape", "role", "optimizer", "weight", "decay"]
    assert lines[1].split() == ["0.weight", "(10,", "8)", "embedding", "adamw", "off"]
    assert lines[3].split() == ["1.bias", "(8,)", "bias", "adamw", "off"]
    assert lines[-2].split() == ["4.weight", "(10,", "8)", "head", "adamw", "on"]
    assert sum("muon" in line for line in lines) == 2  # 1.weight and 3.weight


def test_head_choice_and_errors() -> None:
    model = _toy()
    no_head = {r.name: r for r in routing.plan(model, "muon", head=None)}
    assert no_head["4.weight"].role == "matrix" and no_head["4.weight"].optimizer == "muon"
    named = {r.name: r for r in routing.plan(model, "muon", head=["3.weight", "4.weight"])}
    assert named["3.weight"].role == named["4.weight"].role == "head"
    with pytest.raises(ValueError, match="head must name parameters of the model, got 'nope'"):
        routing.plan(model, "muon", head="nope")
    with pytest.raises(ValueError, match="fallback must be an optimizer that takes"):
        routing.plan(model, "adamw", fallback="muon")
    with pytest.raises(ValueError, match="did you mean 'muon'"):
        routing.plan(model, "muom")


def test_tied_weights_are_routed_once() -> None:
    model = _toy()
    model[4].weight = model[0].weight  # an output head tied to the embedding
    routes = routing.plan(model, "muon")
    assert [r.name for r in routes].count("0.weight") == 1
    assert all(r.name != "4.weight" for r in routes)


def test_param_groups() -> None:
    groups = routing.param_groups(_toy(), "muon", lr=0.02, weight_decay=0.1)
    summary = [
        (g.get("optimizer", "muon"), [n for n, _ in g["params"]], g["weight_decay"], g["lr"])
        for g in groups
    ]
    assert summary == [
        ("muon", ["1.weight", "3.weight"], 0.1, 0.02),
        ("adamw", ["4.weight"], 0.1, 0.02),
        ("adamw", ["0.weight", "1.bias", "2.weight", "2.bias", "4.bias"], 0.0, 0.02),
    ]
    adamw = routing.param_groups(_toy(), "adamw", fallback_hyperparams={"betas": (0.9, 0.95)})
    assert [("optimizer" in g, g.get("weight_decay")) for g in adamw] == [
        (False, None),
        (False, 0.0),
    ]
    # plain torch.optim takes the groups of a rule that needs no routing
    torch.optim.AdamW(adamw)


def _steps(opt, model, grads) -> None:
    for step in grads:
        for p, g in zip(model.parameters(), step, strict=True):
            p.grad = g.clone()
        opt.step()


def _grads(model, n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in model.parameters()]
        for _ in range(n)
    ]


def test_one_optimizer_steps_each_group_with_its_rule() -> None:
    """Muon(param_groups) == Muon over the matrices + AdamW over the rest, bitwise."""
    model, twin = _toy(), _toy()
    grads = _grads(model, 12)
    opt = Muon(routing.param_groups(model, "muon", lr=0.02))
    assert [g.get("optimizer") for g in opt.param_groups] == [None, "adamw", "adamw"]
    assert "momentum" not in opt.param_groups[1] and opt.param_groups[1]["betas"] == (0.9, 0.999)
    groups = routing.param_groups(twin, "muon", lr=0.02)
    muon = Muon(groups[:1])
    adamw = AdamW([{k: v for k, v in g.items() if k != "optimizer"} for g in groups[1:]])
    _steps(opt, model, grads)
    for step in grads:
        for p, g in zip(twin.parameters(), step, strict=True):
            p.grad = g.clone()
        muon.step()
        adamw.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    assert "Muon" in repr(opt) and copy.deepcopy(opt).param_groups[1]["optimizer"] == "adamw"


def test_routed_state_dict_round_trip_and_resume() -> None:
    model, twin = _toy(), _toy()
    grads = _grads(model, 10)
    opt = Muon(routing.param_groups(model, "muon", lr=0.02, weight_decay=0.05))
    _steps(opt, model, grads[:5])
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    twin.load_state_dict(model.state_dict())
    resumed = Muon(routing.param_groups(twin, "muon"))  # groups' values come from the dict
    resumed.load_state_dict(saved)
    assert resumed.param_groups[1]["optimizer"] == "adamw"
    assert resumed.param_groups[0]["lr"] == resumed.param_groups[1]["lr"] == 0.02
    _steps(opt, model, grads[5:])
    _steps(resumed, twin, grads[5:])
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    # a state dict whose group is optimized by another rule does not load
    other = Muon(routing.param_groups(_toy(), "muon"))
    bad = copy.deepcopy(saved)
    bad["param_groups"][1]["optimizer"] = "lion"
    with pytest.raises(
        ValueError, match="param group 1 is optimized by lion, this optimizer's by adamw"
    ):
        other.load_state_dict(bad)


def test_group_names_are_checked_and_canonical() -> None:
    p, q = (torch.nn.Parameter(torch.ones(2, 2)) for _ in range(2))
    with pytest.raises(ValueError, match="unknown optimizer 'adamv'; did you mean 'adam'"):
        Muon([{"params": [p], "optimizer": "adamv"}])
    opt = Muon([{"params": [p], "optimizer": "MUON"}, {"params": [q], "optimizer": "AdamW"}])
    assert "optimizer" not in opt.param_groups[0]
    assert opt.param_groups[1]["optimizer"] == "adamw"
    with pytest.raises(ValueError, match="betas must be a pair"):
        opt.add_param_group(
            {"params": [torch.nn.Parameter(torch.ones(2))], "optimizer": "adamw", "betas": 0.9}
        )
    # flags are the optimizer's: maximize reaches the routed group
    maxi = Muon([{"params": [q], "optimizer": "adamw"}], maximize=True)
    assert maxi.param_groups[0]["maximize"] is True


def test_memory_of_a_routed_optimizer() -> None:
    model = _toy()
    opt = Muon(routing.param_groups(model, "muon"))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    report = optimlab.memory(opt, model)
    by_name = {p.name: p for p in report.params}
    assert by_name["1.weight"].state_numel == 64  # Muon: one momentum buffer
    assert by_name["1.bias"].state_numel == 16  # AdamW: two moments
    assert report.state_bytes == report.measured_bytes


# --------------------------------------------------------------------------- the lab


def test_lab_runs_muon_on_the_mlp_and_the_transformer() -> None:
    mlp = problems.get("mlp", hidden=16, n_train=256, n_val=64, batch_size=32, dtype="float64")
    lm = problems.get(
        "transformer", width=16, heads=2, context=16, batch_size=4, n_val=8, dtype="float64"
    )
    for p in (mlp, lm):
        settings = [Setting("muon", {"lr": lr}, seed=s) for lr, s in ((0.01, 0), (0.03, 1))]
        batched = run(p, settings, 6, eval_every=3)
        alone = run(p, settings, 6, eval_every=3, batched=False)
        for a, b in zip(batched, alone, strict=True):
            assert a.status == "finished"
            assert_close(a.loss, b.loss)
            assert_close(a.evals[-1][1]["loss"], b.evals[-1][1]["loss"])


def test_lab_routing_equals_the_torch_class_on_param_groups() -> None:
    """The lab's Muon run == Muon(routing.param_groups(model, lr, weight_decay)) stepping
    the same model on the same batches (AdamW's defaults for the rest)."""
    p = problems.get("mlp", hidden=16, n_train=256, n_val=64, batch_size=32, dtype="float64")
    lr, wd, steps = 0.02, 0.05, 8
    (trace,) = run(
        p, [Setting("muon", {"lr": lr, "weight_decay": wd}, seed=3)], steps, batched=False
    )
    from optimlab.lab.engine.models import rng_seed

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng_seed(3))
        task = p.torch_task(3)
    opt = Muon(routing.param_groups(task.model, "muon", lr=lr, weight_decay=wd))
    losses = []
    for _ in range(steps):
        loss = task.loss(task.model, next(task.batches))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert_close(np.array(losses), trace.loss)
    with torch.no_grad():
        want = float(task.metrics(task.model, task.val_batch)["loss"])
    assert_close(want, trace.evals[-1][1]["loss"])


def test_muon_class_still_refuses_a_vector_alone() -> None:
    opt = optimizer_class("muon")([torch.nn.Parameter(torch.ones(3))])
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    with pytest.raises(ValueError, match="2-D parameters"):
        opt.step()


def test_llm_doc_code_runs_and_shows_the_real_table(capsys) -> None:
    """The python blocks of docs/llm.md run in order; the table it shows is the plan's."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "llm.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 3
    ns: dict = {}
    exec(compile(blocks[0], "docs/llm.md", "exec"), ns)
    printed = capsys.readouterr().out.splitlines()
    shown = re.search(r"```python\n.*?```\n```\n(.*?)```", text, re.S)[1].splitlines()
    assert shown[:8] == printed[:8] and shown[-3:] == printed[-3:] and shown[8] == "..."
    exec(compile(blocks[1], "docs/llm.md", "exec"), ns)
    assert [g.get("optimizer", "muon") for g in ns["opt"].param_groups] == [
        "muon",
        "adamw",
        "adamw",
    ]
    exec(compile(blocks[2], "docs/llm.md", "exec"), ns)
    assert ns["opt"].param_groups[0]["train_mode"] is False  # it ends in eval mode


def test_lab_passes_the_config_axis_to_a_reducing_option() -> None:
    """Adam with ``cautious`` reduces per tensor: batched settings need ``batch_ndim``
    (torch models and test functions), and equal the settings run alone."""
    p = problems.get("mlp", hidden=16, n_train=256, n_val=64, batch_size=32, dtype="float64")
    settings = [
        Setting("adam", {"lr": 1e-2, "cautious": True}),
        Setting("adamw", {"lr": 3e-2, "cautious": True}, seed=1),
    ]
    for problem in (p, "rosenbrock"):
        batched = run(problem, settings, 5)
        alone = run(problem, settings, 5, batched=False)
        for a, b in zip(batched, alone, strict=True):
            assert a.status == "finished"
            assert_close(a.loss, b.loss)
