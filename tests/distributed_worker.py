"""One rank of the distributed tests (tests/test_distributed_slow.py): run as a script.

    python distributed_worker.py RANK WORLD PORT OUT_DIR

Every scenario (a wrapper: DDP, ZeroRedundancyOptimizer or FSDP2 ``fully_shard``, and an
optimizer) trains a small float64 model for ``STEPS`` steps, each rank on its half of
the batch; a checkpoint is taken after ``CHECKPOINT_AT`` steps, and a fresh model and
optimizer restored from it train the remaining steps. Each rank writes, per scenario,
the whole parameters after the uninterrupted and the resumed runs, and the seconds
the scenario took (``OUT_DIR/rank{RANK}.pt``). The single-process reference
(``train_single``) is imported by the test from this module.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import torch
import torch.distributed as dist

STEPS, CHECKPOINT_AT, BATCH = 6, 3, 16
# (wrapper, optimizer class, constructor arguments, bias in the model)
SCENARIOS: list[tuple[str, str, dict[str, Any], bool]] = [
    ("ddp", "AdamW", {"lr": 0.01, "weight_decay": 0.1}, True),
    ("ddp", "Adafactor", {"lr": 0.01}, True),
    ("zero", "AdamW", {"lr": 0.01, "weight_decay": 0.1}, True),
    ("zero", "Adafactor", {"lr": 0.01}, True),
    ("fsdp2", "AdamW", {"lr": 0.01, "weight_decay": 0.1}, True),
    ("fsdp2", "AdamW", {"lr": 0.01, "foreach": False}, True),
    ("fsdp2", "Adafactor", {"lr": 0.01}, True),
    ("fsdp2", "Muon", {"lr": 0.02}, False),
    ("fsdp2", "LAMB", {"lr": 0.01}, True),
]


def scenario_name(wrapper: str, optimizer: str, kwargs: dict[str, Any]) -> str:
    flags = "".join(f"-{k}={v}" for k, v in kwargs.items() if k == "foreach")
    return f"{wrapper}-{optimizer}{flags}"


def make_model(bias: bool) -> torch.nn.Module:
    """A small MLP (uneven shards on two ranks: 9 and 3 rows), float64, seeded."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 9, bias=bias),
        torch.nn.Tanh(),
        torch.nn.Linear(9, 3, bias=bias),
    ).double()


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(BATCH, 6, generator=g, dtype=torch.float64)
    y = torch.randn(BATCH, 3, generator=g, dtype=torch.float64)
    return x, y


def loss_of(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(x), y)


def optimizer_class(name: str) -> type:
    import optimlab.optim

    return getattr(optimlab.optim, name)


def train_single(optimizer: str, kwargs: dict[str, Any], bias: bool) -> list[torch.Tensor]:
    """The reference: one process, the whole batch at every step."""
    model = make_model(bias)
    opt = optimizer_class(optimizer)(model.parameters(), **kwargs)
    for step in range(STEPS):
        loss_of(model, *batch(step)).backward()
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


# -- one wrapper each: build, save, load ------------------------------------------------


class Run:
    """A wrapped model and its optimizer on this rank."""

    def __init__(self, wrapper: str, optimizer: str, kwargs: dict[str, Any], bias: bool):
        self.wrapper = wrapper
        model = make_model(bias)
        cls = optimizer_class(optimizer)
        if wrapper == "ddp":
            self.model: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(model)
            self.opt: Any = cls(model.parameters(), **kwargs)
        elif wrapper == "zero":
            from torch.distributed.optim import ZeroRedundancyOptimizer

            self.model = torch.nn.parallel.DistributedDataParallel(model)
            self.opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls, **kwargs)
        else:
            from torch.distributed.fsdp import fully_shard

            for layer in model:
                if isinstance(layer, torch.nn.Linear):
                    fully_shard(layer)
            fully_shard(model)
            self.model = model
            self.opt = cls(model.named_parameters(), **kwargs)

    def train(self, start: int, stop: int) -> None:
        rank = dist.get_rank()
        half = BATCH // dist.get_world_size()
        for step in range(start, stop):
            x, y = batch(step)
            rows = slice(rank * half, (rank + 1) * half)
            loss_of(self.model, x[rows], y[rows]).backward()
            self.opt.step()
            self.opt.zero_grad()

    def params(self) -> list[torch.Tensor]:
        out = []
        for p in self.model.parameters():
            whole = p.full_tensor() if self.wrapper == "fsdp2" else p
            out.append(whole.detach().clone())
        return out

    def save(self, folder: str) -> None:
        if self.wrapper == "fsdp2":
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.state_dict import (
                get_model_state_dict,
                get_optimizer_state_dict,
            )

            state = {
                "model": get_model_state_dict(self.model),
                "optim": get_optimizer_state_dict(self.model, self.opt),
            }
            dcp.save(state, checkpoint_id=folder)
            return
        if self.wrapper == "zero":
            self.opt.consolidate_state_dict(to=0)
        if dist.get_rank() == 0:
            state = {"model": self.model.state_dict(), "optim": self.opt.state_dict()}
            torch.save(state, os.path.join(folder, "checkpoint.pt"))
        dist.barrier()

    def load(self, folder: str) -> None:
        if self.wrapper == "fsdp2":
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.state_dict import (
                get_model_state_dict,
                get_optimizer_state_dict,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            state = {
                "model": get_model_state_dict(self.model),
                "optim": get_optimizer_state_dict(self.model, self.opt),
            }
            dcp.load(state, checkpoint_id=folder)
            set_model_state_dict(self.model, state["model"])
            set_optimizer_state_dict(self.model, self.opt, state["optim"])
            return
        state = torch.load(os.path.join(folder, "checkpoint.pt"), weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optim"])


def run_scenario(scenario: tuple[str, str, dict[str, Any], bool]) -> dict[str, Any]:
    wrapper, optimizer, kwargs, bias = scenario
    start = time.perf_counter()
    folder = _shared_folder()
    first = Run(wrapper, optimizer, kwargs, bias)
    first.train(0, CHECKPOINT_AT)
    first.save(folder)
    first.train(CHECKPOINT_AT, STEPS)
    second = Run(wrapper, optimizer, kwargs, bias)
    second.load(folder)
    second.train(CHECKPOINT_AT, STEPS)
    return {
        "uninterrupted": first.params(),
        "resumed": second.params(),
        "seconds": time.perf_counter() - start,
    }


def _shared_folder() -> str:
    """A fresh folder, the same on every rank (rank 0 makes it)."""
    name = [tempfile.mkdtemp(prefix="optimlab-dist-") if dist.get_rank() == 0 else ""]
    dist.broadcast_object_list(name, src=0)
    return name[0]


def main(argv: list[str]) -> None:
    rank, world, port, out = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    results: dict[str, Any] = {}
    try:
        for scenario in SCENARIOS:
            results[scenario_name(*scenario[:3])] = run_scenario(scenario)
            dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1:])
