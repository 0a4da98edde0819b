"""Our optimizers under DDP, ZeroRedundancyOptimizer and FSDP2 in two real processes (slow).

``distributed_worker.py`` runs as two ranks (gloo, CPU, 127.0.0.1) and trains a small
float64 model in each scenario of its table (AdamW, and reducing rules: Adafactor
everywhere, Muon and LAMB under FSDP2), each rank on half of the batch, with a
checkpoint mid-run (``torch.save`` of the state dicts for DDP and ZeRO,
``torch.distributed.checkpoint`` for FSDP2) restored into a fresh model and optimizer.
Here: the ranks agree, the result equals one process training on the whole batch
(within the numerics tolerance: the gradient is averaged in another order), and the
resumed run equals the uninterrupted one bitwise.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import distributed_worker as worker
import pytest
import torch
from numerics import assert_close

pytestmark = pytest.mark.slow

WORLD = 2
NAMES = [worker.scenario_name(*s[:3]) for s in worker.SCENARIOS]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every scenario's results on each rank (one launch of two processes for all)."""
    if not torch.distributed.is_available():  # pragma: no cover
        pytest.skip("torch.distributed is not available")
    out = tmp_path_factory.mktemp("ranks")
    port = free_port()
    script = Path(worker.__file__)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(WORLD), str(port), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(WORLD)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=600)[0])
    finally:
        for p in procs:  # a rank that failed leaves the other one waiting for it
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"rank {rank} exited {p.returncode}:\n{log[-4000:]}"
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("name", NAMES)
def test_ranks_agree(ranks: list[dict[str, Any]], name: str) -> None:
    first = ranks[0][name]["uninterrupted"]
    for other in ranks[1:]:
        for a, b in zip(first, other[name]["uninterrupted"], strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("scenario", worker.SCENARIOS, ids=NAMES)
def test_equals_one_process_on_the_whole_batch(
    ranks: list[dict[str, Any]], scenario: tuple[str, str, dict[str, Any], bool]
) -> None:
    wrapper, optimizer, kwargs, bias = scenario
    reference = worker.train_single(optimizer, kwargs, bias)
    result = ranks[0][worker.scenario_name(wrapper, optimizer, kwargs)]["uninterrupted"]
    initial = [p.detach() for p in worker.make_model(bias).parameters()]
    assert len(result) == len(reference) == len(initial)
    for a, b, start in zip(result, reference, initial, strict=True):
        assert not torch.equal(b, start)  # the optimizer moved every parameter
        assert_close(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_resumes_exactly(ranks: list[dict[str, Any]], name: str) -> None:
    for rank in ranks:
        for a, b in zip(rank[name]["uninterrupted"], rank[name]["resumed"], strict=True):
            assert torch.equal(a, b)


DOCS = Path(__file__).parent.parent / "docs" / "distributed.md"


def recipes() -> dict[str, str]:
    """docs/distributed.md's torchrun scripts: python blocks that start ``# NAME.py:``."""
    import re

    blocks = re.findall(r"```python\n(# (\w+\.py): torchrun .*?)```", DOCS.read_text(), re.S)
    return {name: code for code, name in blocks}


def test_docs_have_the_ddp_and_fsdp2_recipes() -> None:
    assert set(recipes()) == {"ddp_train.py", "fsdp_train.py"}


@pytest.mark.parametrize("name", sorted(recipes()))
def test_docs_recipe_runs_and_resumes(tmp_path: Path, name: str) -> None:
    """The recipe as written, twice with torchrun: the second run resumes at step 100."""
    (tmp_path / name).write_text(recipes()[name])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(WORLD), name]
    for expected in ("step 100: loss", "step 200: loss"):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        assert expected in done.stdout, done.stdout
