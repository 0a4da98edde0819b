"""Checkpoint and resume in-process: exact resume, verification, fallback, refusal, ENOSPC."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from optimlab.train import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointManager,
    CheckpointMismatchError,
    CheckpointWarning,
    TrainStep,
    get_rng_state,
    set_rng_state,
)
from optimlab.train import checkpoint as ckpt_module


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def same(a: object, b: object) -> bool:
    """Exact (bitwise) equality of nested state: tensors, numbers, lists, dicts."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same, a, b))  # type: ignore[arg-type]
    return a == b


class Run:
    """A small run with dropout, AdamW, a scheduler and a TrainStep; data from the global RNGs."""

    def __init__(
        self,
        directory: Path,
        seed: int = 0,
        *,
        hidden: int = 6,
        precision: str = "fp32",
        optimizer: str = "adamw",
        config: dict | None = None,
        keep: int = 3,
        scheduler: bool = True,
    ) -> None:
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(3, hidden),
            torch.nn.Tanh(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, 1),
        )
        params = self.model.parameters()
        self.opt = (
            torch.optim.AdamW(params, lr=0.01)
            if optimizer == "adamw"
            else torch.optim.SGD(params, lr=0.01, momentum=0.9)
        )
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, 3, 0.5) if scheduler else None
        loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])  # noqa: E731
        self.trainer = TrainStep(
            self.model,
            self.opt,
            loss,
            scheduler=self.sched,
            precision=precision,
            accumulation_steps=2,
        )
        self.manager = CheckpointManager(
            directory,
            model=self.model,
            optimizer=self.opt,
            scheduler=self.sched,
            trainer=self.trainer,
            keep=keep,
            config=config or {"lr": 0.01},
        )

    def train(self, steps: int) -> None:
        for _ in range(steps):
            x = torch.from_numpy(np.random.standard_normal((8, 3))).float()
            x = x * random.random()
            self.trainer.step((x, x.sum(1, keepdim=True)))

    def params(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.model.state_dict().items()}


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_equals_uninterrupted_bitwise(tmp_path: Path, precision: str) -> None:
    seed_all(1)
    full = Run(tmp_path / "a", precision=precision)
    full.train(4)
    full.manager.save()
    at = full.trainer.step_count  # fp16 may have skipped an overflowing step
    assert at == (4 if precision == "fp32" else 4 - full.trainer.skipped_count)
    full.train(5)
    expected, expected_opt = full.params(), full.opt.state_dict()

    seed_all(99)  # everything different until restored
    resumed = Run(tmp_path / "a", seed=7, precision=precision)
    info = resumed.manager.restore()
    assert info is not None and info.step == at and resumed.trainer.step_count == at
    assert resumed.sched.last_epoch == at
    resumed.train(5)
    assert same(resumed.params(), expected)
    assert same(resumed.opt.state_dict(), expected_opt)
    if precision == "fp16":
        assert resumed.trainer.scaler.state_dict() == full.trainer.scaler.state_dict()


def test_files_are_plain_data_with_a_verified_manifest(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.train(2)
    path = run.manager.save(extra={"epoch": 1, "note": "hi"})
    assert path.name == "step-00000002"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["step"] == 2
    assert manifest["config"] == {"lr": 0.01}
    assert set(manifest["files"]) == {
        "model.pt",
        "optimizer.pt",
        "scheduler.pt",
        "trainer.pt",
        "rng.pt",
        "extra.pt",
    }
    import hashlib

    for name, info in manifest["files"].items():
        data = (path / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]
        torch.load(path / name, weights_only=True)  # nothing needs unpickling
    assert run.manager.restore().extra == {"epoch": 1, "note": "hi"}


def test_rotation_keeps_the_last_n(tmp_path: Path) -> None:
    run = Run(tmp_path, keep=2)
    assert run.manager.restore() is None
    for _ in range(4):
        run.train(1)
        run.manager.save()
    assert [p.name for p in run.manager.checkpoints()] == ["step-00000003", "step-00000004"]


def corrupt(path: Path, how: str) -> Path:
    file = path / ("manifest.json" if how.startswith("manifest") else "optimizer.pt")
    data = file.read_bytes()
    if how.endswith("truncate"):
        file.write_bytes(data[: len(data) // 2])
    elif how.endswith("flip"):
        i = len(data) // 2
        file.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    elif how.endswith("empty"):
        file.write_bytes(b"")
    elif how == "missing":
        file.unlink()
    return file


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncate", "bytes, the manifest says"),
        ("flip", "sha256 mismatch"),
        ("empty", "empty file"),
        ("missing", "cannot be read"),
        ("manifest-truncate", "not valid JSON"),
        ("manifest-flip", "manifest"),
        ("manifest-empty", "empty file"),
    ],
)
def test_corrupt_checkpoint_is_named_and_restore_falls_back(
    tmp_path: Path, how: str, message: str
) -> None:
    seed_all(0)
    run = Run(tmp_path)
    run.train(2)
    run.manager.save()
    saved = run.params()
    run.train(2)
    newest = run.manager.save()
    bad = corrupt(newest, how)
    with pytest.raises(CheckpointCorruptError, match=message) as err:
        run.manager.load(newest)
    assert str(bad) in str(err.value)
    fresh = Run(tmp_path, seed=5)
    with pytest.warns(CheckpointWarning, match="falling back to the previous checkpoint"):
        info = fresh.manager.restore()
    assert info.step == 2 and fresh.trainer.step_count == 2
    assert same(fresh.params(), saved)


def test_no_valid_checkpoint(tmp_path: Path) -> None:
    run = Run(tmp_path)
    corrupt(run.manager.save(), "flip")
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointCorruptError, match="no valid"):
        Run(tmp_path).manager.restore()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": 7}, r"parameter '0.weight' shape/dtype is \[\[6, 3\], 'torch.float32'\]"),
        (
            {"optimizer": "sgd"},
            "optimizer is torch.optim.adamw.AdamW in the checkpoint but torch.optim.sgd.SGD here",
        ),
        ({"config": {"lr": 0.02}}, "config 'lr' value is 0.01 in the checkpoint but 0.02 here"),
        (
            {"scheduler": False},
            "scheduler is torch.optim.lr_scheduler.StepLR in the checkpoint but absent here",
        ),
        ({"precision": "fp16"}, "precision is 'fp32' in the checkpoint but 'fp16' here"),
    ],
)
def test_other_configuration_is_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    Run(tmp_path).manager.save(0)
    other = Run(tmp_path, seed=3, **kwargs)
    before = other.params()
    with pytest.raises(CheckpointMismatchError, match=message):
        other.manager.restore()
    assert same(other.params(), before)


def test_renamed_parameter_is_refused(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.manager.save(0)
    model = torch.nn.Sequential()
    model.add_module("first", run.model[0])
    model.add_module("act", run.model[1])
    model.add_module("last", run.model[3])
    manager = CheckpointManager(
        tmp_path,
        model=model,
        optimizer=run.opt,
        scheduler=run.sched,
        trainer=run.trainer,
        config={"lr": 0.01},
    )
    with pytest.raises(CheckpointMismatchError, match="parameter '0.weight' is in the checkpoint"):
        manager.restore()


def enospc(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["write", "fsync", "partial-write"])
def test_disk_full_leaves_the_previous_checkpoint_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    seed_all(0)
    run = Run(tmp_path)
    run.train(1)
    run.manager.save()
    saved = run.params()
    run.train(1)
    real_write = os.write
    calls = {"n": 0}

    def partial(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            return real_write(fd, bytes(data[: max(1, len(data) // 2)]))
        enospc()
        return 0

    target = {
        "write": ("write", enospc),
        "fsync": ("fsync", enospc),
        "partial-write": ("write", partial),
    }[where]
    with monkeypatch.context() as m:
        m.setattr(os, *target)
        with pytest.raises(CheckpointError, match="No space left on device") as err:
            run.manager.save()
    assert "step-00000002" in str(err.value)
    assert [p.name for p in run.manager.checkpoints()] == ["step-00000001"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    fresh = Run(tmp_path, seed=4)
    assert fresh.manager.restore().step == 1 and same(fresh.params(), saved)


def test_stale_temporary_directories_are_ignored_and_cleaned(tmp_path: Path) -> None:
    run = Run(tmp_path)
    good = run.manager.save(0)
    stale = tmp_path / ".tmp-step-00000005-123-abcd"
    shutil.copytree(good, stale)
    (stale / "manifest.json").unlink()  # killed before the manifest was written
    assert [p.name for p in run.manager.checkpoints()] == ["step-00000000"]
    fresh = Run(tmp_path)
    assert not stale.exists()
    assert fresh.manager.restore().step == 0


def test_kill_between_temp_write_and_rename_keeps_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run(tmp_path)
    run.manager.save(1)

    class Killed(BaseException):
        pass

    def die(*args: object) -> None:
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(os, "rename", die)
        m.setattr(ckpt_module.shutil, "rmtree", lambda *a, **k: None)  # a kill cleans nothing
        with pytest.raises(Killed):
            run.manager.save(2)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    fresh = Run(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert fresh.manager.restore().step == 1


def test_same_step_again_replaces_and_lower_step_drops_the_abandoned_future(
    tmp_path: Path,
) -> None:
    run = Run(tmp_path, keep=5)
    for step in (1, 2, 3):
        run.manager.save(step)
    run.train(1)
    run.manager.save(3)
    assert run.manager.restore().step == 3
    run.manager.save(2)
    assert [p.name for p in run.manager.checkpoints()] == ["step-00000001", "step-00000002"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"obj": object()}, r"extra state\['obj'\] is a builtins.object"),
        ({"x": [1, np.float64(2.0)]}, r"extra state\['x'\]\[1\] is a numpy.float64"),
        ({"a": np.zeros(2)}, r"extra state\['a'\] is a numpy.ndarray"),
        ({"d": {np.int64(1): 2}}, r"extra state\['d'\] has a key of type int64"),
    ],
)
def test_unpicklable_state_is_refused_before_writing(
    tmp_path: Path, extra: dict, message: str
) -> None:
    run = Run(tmp_path)
    with pytest.raises(ValueError, match=message):
        run.manager.save(0, extra=extra)
    assert run.manager.checkpoints() == [] and list(tmp_path.iterdir()) == []


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = Run(tmp_path).manager.save(0)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 2
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    manifest["checksum"] = ckpt_module._checksum(body)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="format version 2 is newer"):
        Run(tmp_path).manager.restore()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep": 0}, "keep must be an integer >= 1, got 0"),
        ({"config": {"f": object()}}, "config must be JSON data"),
        ({"config": {"x": float("nan")}}, "config must be JSON data"),
        ({"scheduler": 3}, "scheduler needs state_dict"),
    ],
)
def test_invalid_manager_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=message):
        CheckpointManager(
            tmp_path, model=model, optimizer=torch.optim.SGD(model.parameters()), **kwargs
        )


def test_invalid_step(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    manager = CheckpointManager(
        tmp_path, model=model, optimizer=torch.optim.SGD(model.parameters())
    )
    with pytest.raises(ValueError, match="step is required"):
        manager.save()
    with pytest.raises(ValueError, match="step must be an integer >= 0, got -1"):
        manager.save(-1)


def test_rng_states_round_trip_as_plain_data(tmp_path: Path) -> None:
    seed_all(3)
    state = get_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    first = (torch.rand(3), np.random.standard_normal(3), random.random(), random.gauss(0, 1))
    seed_all(4)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.standard_normal(3), random.random(), random.gauss(0, 1))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


def test_optimlab_optimizer_and_schedule(tmp_path: Path) -> None:
    from optimlab import optim, schedules

    def build(seed: int) -> tuple:
        torch.manual_seed(seed)
        model = torch.nn.Linear(4, 2)
        opt = optim.create_optimizer("adamw", model.parameters(), lr=0.1)
        sched = schedules.to_torch(
            schedules.get("warmup_cosine", lr=0.1, warmup_steps=2, total_steps=10), opt
        )
        trainer = TrainStep(model, opt, lambda m, b: m(b).pow(2).mean(), scheduler=sched)
        manager = CheckpointManager(
            tmp_path, model=model, optimizer=opt, scheduler=sched, trainer=trainer
        )
        return model, opt, trainer, manager

    x = torch.randn(5, 4)
    model, opt, trainer, manager = build(0)
    for _ in range(3):
        trainer.step(x)
    manager.save()
    for _ in range(3):
        trainer.step(x)
    model2, opt2, trainer2, manager2 = build(1)
    assert manager2.restore().step == 3
    for _ in range(3):
        trainer2.step(x)
    assert same(model2.state_dict(), model.state_dict())
    assert same(opt2.state_dict(), opt.state_dict())


def test_a_component_refusing_its_state_rolls_back_the_others(tmp_path: Path) -> None:
    from optimlab import schedules

    def build(total: int, seed: int) -> tuple:
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = schedules.to_torch(schedules.get("cosine", lr=0.1, total_steps=total), opt)
        trainer = TrainStep(model, opt, lambda m, b: m(b).pow(2).mean(), scheduler=sched)
        manager = CheckpointManager(
            tmp_path, model=model, optimizer=opt, scheduler=sched, trainer=trainer
        )
        return model, trainer, manager

    model, trainer, manager = build(10, 0)
    trainer.step(torch.randn(4, 3))
    manager.save()
    model2, trainer2, manager2 = build(20, 1)  # another schedule: ScheduleLR refuses it
    before = {k: v.clone() for k, v in model2.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="the scheduler refused its saved state"):
        manager2.restore()
    assert trainer2.step_count == 0 and same(model2.state_dict(), before)


def test_kill_between_the_two_renames_of_a_same_step_save_keeps_that_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keep=1, step 1 saved again: a kill after the old step-1 was moved aside but before the
    new one took its name must not lose step 1 (it is the only checkpoint)."""
    run = Run(tmp_path, keep=1)
    run.manager.save(1)
    saved = run.params()
    real_rename = os.rename
    calls: list[object] = []

    class Killed(BaseException):
        pass

    def rename_then_die(src: object, dst: object) -> None:
        calls.append(src)
        if len(calls) >= 2:  # only the first rename (old step-1 aside) goes through
            raise Killed
        real_rename(src, dst)

    run.train(1)
    with monkeypatch.context() as m:
        m.setattr(os, "rename", rename_then_die)
        m.setattr(ckpt_module.shutil, "rmtree", lambda *a, **k: None)  # a kill cleans nothing
        with pytest.raises(Killed):
            run.manager.save(1)
    fresh = Run(tmp_path, seed=4, keep=1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    restored = fresh.manager.restore()
    assert restored is not None and restored.step == 1
    assert same(fresh.params(), saved)
