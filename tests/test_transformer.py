"""The transformer LM problem: its text and split, its metrics, its seeds, and that the
engine runs K settings of it under vmap with no per-setting fallback (issue 13, item 1).

The vmapped batch and the per-setting loop are two computations: compared in float64
within the numerics tolerance, as for the other torch problems."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from numerics import assert_close

from optimlab import problems
from optimlab.lab.engine import Setting, run
from optimlab.lab.engine.grouping import plan
from optimlab.lab.engine.models import StackedModels
from optimlab.problems import transformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small(**kw) -> problems.Problem:
    return problems.get("transformer", width=16, heads=2, context=16, batch_size=4, n_val=8, **kw)


def test_listed_and_described() -> None:
    assert "transformer" in problems.list("torch")
    assert "transformer" in problems.describe("transformer").lower()
    p = problems.get("transformer")
    assert (p.layers, p.width, p.heads, p.context, p.batch_size) == (2, 64, 4, 64, 8)


def test_text_tokens_and_split() -> None:
    p = problems.get("transformer")
    text = transformer.load_text()
    assert len(text) > 100_000 and "lambda" in text  # Python's own documentation
    tokens = transformer.encode(text)
    assert len(tokens) == len(text) and tokens.max() < transformer.VOCAB_SIZE == 97
    assert transformer.decode(transformer.encode("def f(x):\n")) == "def f(x):\n"
    assert transformer.decode(transformer.encode("é")) == "?"  # outside the vocabulary
    x_train, y_train, x_val, y_val = p.data
    np.testing.assert_array_equal(x_train[1:], y_train[:-1])  # next-character targets
    np.testing.assert_array_equal(x_val[:, 1:], y_val[:, :-1])
    assert x_val.shape == (p.n_val, p.context)
    # the held-out windows lie in the last 10% of the text, after every training window
    assert len(x_train) + 1 == p.n_train == len(tokens) - int(len(tokens) * 0.1)
    held = tokens[p.n_train :]
    for row in (0, p.n_val - 1):
        window = x_val[row]
        assert any(
            np.array_equal(held[i : i + p.context], window) for i in range(len(held) - p.context)
        )


def test_metrics_relate_as_stated() -> None:
    p = _small(dtype="float64")
    task = p.torch_task(0)
    with torch.no_grad():
        m = task.metrics(task.model, task.val_batch)
    loss = float(m["loss"])
    assert math.log(transformer.VOCAB_SIZE) * 0.9 < loss < math.log(transformer.VOCAB_SIZE) * 1.1
    assert float(m["perplexity"]) == pytest.approx(math.exp(loss), rel=1e-12)
    assert float(m["bits_per_char"]) == pytest.approx(loss / math.log(2), rel=1e-12)


def test_seed_sets_init_and_batches_not_the_held_out_data() -> None:
    p = _small()
    a, b, a2 = p.torch_task(0), p.torch_task(1), p.torch_task(0)
    assert not torch.equal(a.model.embed.weight, b.model.embed.weight)
    assert torch.equal(a.model.embed.weight, a2.model.embed.weight)
    xa, xb, xa2 = next(a.batches)[0], next(b.batches)[0], next(a2.batches)[0]
    assert not torch.equal(xa, xb) and torch.equal(xa, xa2)
    assert all(torch.equal(u, v) for u, v in zip(a.val_batch, b.val_batch, strict=True))


def test_causal_attention_sees_no_future() -> None:
    p = _small(dtype="float64")
    model = p.torch_task(0).model
    x = torch.as_tensor(p.data[2][:2])
    changed = x.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % transformer.VOCAB_SIZE
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :10], model(changed)[:, :10], rtol=0, atol=0)
        assert not torch.allclose(model(x)[:, 10:], model(changed)[:, 10:])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"width must be a multiple of heads \(4\), got 30"):
        problems.get("transformer", width=30)
    with pytest.raises(ValueError, match="context must be an integer >= 1, got 0"):
        problems.get("transformer", context=0)
    with pytest.raises(ValueError, match=r"held_out must be in \(0, 0.5\], got 0.9"):
        problems.get("transformer", held_out=0.9)
    with pytest.raises(ValueError, match="did you mean 'width'"):
        problems.get("transformer", widht=32)


def test_vmap_runs_every_setting_together_without_fallbacks() -> None:
    """No "vmap does not apply" fallback and no per-op fallback warning from vmap (an
    op without a batching rule warns of a "performance drop")."""
    p = _small()
    settings = [Setting("adamw", {"lr": lr}, seed=s) for lr in (1e-3, 1e-2) for s in (0, 1)]
    (group,) = plan(settings, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StackedModels(p, group)  # raises VmapUnsupported if vmap cannot run the model
        traces = run(p, settings, 3, eval_every=1)
    assert all(t.status == "finished" and len(t.evals) == 4 for t in traces)
    # the check can fail: torch's own attention kernel has no batching rule on the CPU
    q = torch.randn(2, 1, 2, 4, 8)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    with warnings.catch_warnings(), pytest.raises(UserWarning, match="performance drop"):
        warnings.simplefilter("error")
        torch.func.vmap(lambda q: sdpa(q, q, q, is_causal=True))(q)


def test_batched_equals_one_setting_at_a_time() -> None:
    p = _small(dtype="float64")
    settings = [
        Setting("adamw", {"lr": 3e-3}, seed=0),
        Setting("adamw", {"lr": 1e-2, "weight_decay": 0.1}, seed=1),
        Setting("adamw", {"lr": 1e-2}, "warmup_cosine", {"warmup_steps": 2}, seed=0),
    ]
    batched = run(p, settings, 6, eval_every=3)
    alone = run(p, settings, 6, eval_every=3, batched=False)
    for a, b in zip(batched, alone, strict=True):
        assert_close(a.loss, b.loss)
        for (_, ma), (_, mb) in zip(a.evals, b.evals, strict=True):
            for k in ("loss", "perplexity", "bits_per_char"):
                assert_close(ma[k], mb[k], what=k)
    assert batched[0].loss[-1] < batched[0].loss[0]  # it learns
