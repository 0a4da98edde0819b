"""Fault tests in real subprocesses (slow): SIGKILL mid-run (F1), mid-checkpoint (F2),
SIGTERM (F11)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """
    import os, random, signal, sys, time
    import numpy as np
    import torch
    from optimlab.train import CheckpointManager, StopOnSignal, TrainStep

    torch.set_num_threads(1)
    directory, out, total, kill_after, precision, mode = sys.argv[1:7]
    total, kill_after = int(total), int(kill_after)
    torch.manual_seed(0); np.random.seed(0); random.seed(0)
    g = torch.Generator().manual_seed(123)
    X = torch.randn(64, 4, generator=g)
    Y = torch.sin(X.sum(1, keepdim=True))
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]).float(), b[1])
    trainer = TrainStep(model, opt, loss, scheduler=sched, accumulation_steps=3, clip_norm=1.0,
                        precision=precision)
    manager = CheckpointManager(directory, model=model, optimizer=opt, scheduler=sched,
                                trainer=trainer, keep=2, config={"total": total})
    info = manager.restore()
    print("resumed at", info.step if info else 0, flush=True)
    if mode == "kill-in-save":
        trainer.step((X[:12], Y[:12]))
        manager.save(5)
        torch.save(model.state_dict(), out)
        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        os.rename = die  # the second save dies between its temporary write and the rename
        manager.save(6)
        raise SystemExit("not reached")
    with StopOnSignal() as stop:
        while trainer.step_count < total:
            idx = torch.from_numpy(np.random.randint(0, 64, size=12))
            x = X[idx] + 0.01 * random.random()
            trainer.step((x, Y[idx]))
            print("step", trainer.step_count, flush=True)
            if trainer.step_count % 10 == 0:
                manager.save()
            if trainer.step_count == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if stop.requested:
                manager.save()
                print(f"stopped by {stop.signal_name} at step {trainer.step_count}; "
                      "run again to resume", file=sys.stderr, flush=True)
                raise SystemExit(stop.exit_code)
            if mode == "slow":
                time.sleep(0.05)  # leaves the parent time to send its signal mid-run
    torch.save(model.state_dict(), out)
    print("done", trainer.step_count, trainer.skipped_count, flush=True)
    """
)


def run_worker(
    tmp: Path,
    directory: str,
    out: str,
    kill_after: int,
    precision: str = "fp32",
    mode: str = "train",
) -> subprocess.CompletedProcess[str]:
    script = tmp / "worker.py"
    script.write_text(WORKER)
    args = [
        sys.executable,
        str(script),
        str(tmp / directory),
        str(tmp / out),
        "100",
        str(kill_after),
        precision,
        mode,
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_sigkill_after_step_60_then_resume_is_bitwise_identical(
    tmp_path: Path, precision: str
) -> None:
    straight = run_worker(tmp_path, "a", "a.pt", -1, precision)
    assert straight.returncode == 0, straight.stderr
    assert "resumed at 0" in straight.stdout
    killed = run_worker(tmp_path, "b", "b.pt", 63, precision)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "b.pt").exists()
    resumed = run_worker(tmp_path, "b", "b.pt", -1, precision)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at 60" in resumed.stdout
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.stdout.splitlines()[-1] == resumed.stdout.splitlines()[-1]


def test_sigkill_during_a_checkpoint_write_keeps_the_previous(tmp_path: Path) -> None:
    killed = run_worker(tmp_path, "c", "c.pt", -1, mode="kill-in-save")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    directory = tmp_path / "c"
    stale = [p for p in directory.iterdir() if p.name.startswith(".tmp-")]
    assert len(stale) == 1 and (stale[0] / "manifest.json").exists()
    assert [p.name for p in directory.iterdir() if not p.name.startswith(".")] == ["step-00000005"]
    # A restart cleans the stale directory and resumes from the intact previous checkpoint.
    resumed = run_worker(tmp_path, "c", "c2.pt", 6, mode="train")
    assert "resumed at 5" in resumed.stdout
    assert not [p for p in directory.iterdir() if p.name.startswith(".tmp-")]
    from optimlab.train.checkpoint import read_checkpoint

    _, states = read_checkpoint(directory / "step-00000005")
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    for k, v in saved.items():
        assert torch.equal(states["model"][k], v)


def test_sigterm_finishes_the_step_saves_and_resumes(tmp_path: Path) -> None:
    straight = run_worker(tmp_path, "s", "s.pt", -1)
    assert straight.returncode == 0, straight.stderr
    script = tmp_path / "worker.py"
    args = [
        sys.executable,
        str(script),
        str(tmp_path / "t"),
        str(tmp_path / "t.pt"),
        "100",
        "-1",
        "fp32",
        "slow",
    ]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            if line.strip() == "step 5":
                p.send_signal(signal.SIGTERM)
                break
        out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    stopped_at = int(err.split("at step ")[1].split(";")[0])
    assert "stopped by SIGTERM" in err and "run again to resume" in err
    assert 5 <= stopped_at < 100
    resumed = run_worker(tmp_path, "t", "t.pt", -1)
    assert f"resumed at {stopped_at}" in resumed.stdout
    a = torch.load(tmp_path / "s.pt", weights_only=True)
    b = torch.load(tmp_path / "t.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
