"""A small decoder-only transformer language model on text that ships with Python.

The text is the English documentation of Python's syntax and built-ins that the standard
library carries for ``help()`` (``pydoc_data.topics``: 79 topics, about 465,000
characters under Python 3.11; nothing is downloaded). Topics are joined in sorted order
and the last ``held_out`` fraction of the characters is the held-out split, so no
held-out window overlaps the training text. Tokens are characters over a fixed
97-symbol vocabulary (newline, the 95 printable ASCII characters, and one symbol for any
other character: about 0.1% of this text), so one token is one character and the loss in
nats per token gives bits per character directly.

The model is a GPT-style causal LM written with plain tensor operations (``matmul``, a
masked ``softmax``, ``layer_norm``) so that ``torch.func.vmap`` runs K settings at once
without per-setting fallbacks (vmap has no batching rule for CPU
``scaled_dot_product_attention``). Torch is imported lazily.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core import checks
from ..train.task import TorchTask
from .model_base import TorchProblem, cross_entropy, torch_module

# newline, the printable ASCII characters, then one symbol for everything else
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
OTHER = len(VOCAB)  # the token of any character outside VOCAB
VOCAB_SIZE = OTHER + 1


def load_text() -> str:
    """The documentation topics of ``pydoc_data``, joined in sorted order of their names."""
    from pydoc_data import topics

    return "".join(topics.topics[name] for name in sorted(topics.topics))


def encode(text: str) -> np.ndarray:
    """Character tokens: index into ``VOCAB``, ``OTHER`` for any other character."""
    table = np.full(0x110000, OTHER, dtype=np.int64)  # every code point -> OTHER
    table[[ord(c) for c in VOCAB]] = np.arange(len(VOCAB))
    return table[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]


def decode(tokens: Any) -> str:
    """Text from tokens (``OTHER`` shows as ``?``)."""
    return "".join(VOCAB[int(t)] if int(t) < OTHER else "?" for t in tokens)


@functools.cache
def _block_class() -> type:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        """Pre-norm block: ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``."""

        def __init__(self, width: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.ln1 = nn.LayerNorm(width)
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)
            self.ln2 = nn.LayerNorm(width)
            self.up = nn.Linear(width, 4 * width)
            self.down = nn.Linear(4 * width, width)

        def attention(self, x: Any) -> Any:
            r"""Causal multi-head attention with plain matmuls:
            :math:`\mathrm{softmax}(QK^\top/\sqrt{d} + M)\,V`, ``M = -inf`` above the diagonal."""
            batch, time, width = x.shape
            head = width // self.heads
            q, k, v = self.qkv(x).split(width, dim=-1)
            q, k, v = (t.reshape(batch, time, self.heads, head).transpose(1, 2) for t in (q, k, v))
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head))
            future = torch.ones(time, time, dtype=torch.bool, device=x.device).triu(1)
            weights = F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
            out = (weights @ v).transpose(1, 2).reshape(batch, time, width)
            return self.proj(out)

        def forward(self, x: Any) -> Any:
            x = x + self.attention(self.ln1(x))
            return x + self.down(F.gelu(self.up(self.ln2(x))))

    return Block


@functools.cache
def _gpt_class() -> type:
    from torch import nn

    block = _block_class()

    class TinyGPT(nn.Module):
        """Token and position embeddings, ``layers`` blocks, a final norm, a linear head."""

        def __init__(self, vocab: int, context: int, width: int, heads: int, layers: int):
            super().__init__()
            self.embed = nn.Embedding(vocab, width)
            self.position = nn.Embedding(context, width)
            self.blocks = nn.ModuleList(block(width, heads) for _ in range(layers))
            self.norm = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab, bias=False)
            # GPT-2's initialisation: N(0, 0.02), residual outputs scaled by 1/sqrt(2 layers)
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif p.ndim == 2:
                    std = (
                        0.02 / math.sqrt(2 * layers)
                        if name.endswith(("proj.weight", "down.weight"))
                        else 0.02
                    )
                    nn.init.normal_(p, std=std)

        def forward(self, tokens: Any) -> Any:  # (batch, time) -> logits (batch, time, vocab)
            time = tokens.shape[-1]
            x = self.embed(tokens) + self.position.weight[:time]
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    return TinyGPT


class Transformer(TorchProblem):
    r"""A character-level transformer LM (2 layers, width 64) on Python's own documentation.

    A decoder-only causal LM (token + position embeddings, ``layers`` pre-norm blocks of
    ``heads``-head attention and a 4x GELU MLP, final LayerNorm, linear head; GPT-2
    initialisation) predicting the next character of the ``pydoc_data`` topics text. Loss:
    mean cross-entropy in nats per character. Metrics on ``n_val`` fixed held-out windows:
    ``loss``, ``perplexity`` :math:`e^{loss}` and ``bits_per_char`` :math:`loss/\ln 2`.
    A run's ``seed`` sets the initial weights and which training windows the batches hold
    (``batch_size`` windows of ``context + 1`` characters at offsets drawn from the seed);
    the text, the split and the held-out windows are the same for every seed.
    """

    name = "transformer"

    def __init__(
        self,
        layers: int = 2,
        width: int = 64,
        heads: int = 4,
        context: int = 64,
        batch_size: int = 8,
        n_val: int = 64,
        held_out: float = 0.1,
        dtype: str = "float32",
    ) -> None:
        self.layers = checks.integer("layers", layers, 1)
        self.width = checks.integer("width", width, 1)
        self.heads = checks.integer("heads", heads, 1)
        checks.require(
            self.width % self.heads == 0,
            f"width must be a multiple of heads ({self.heads}), got {self.width}",
        )
        self.context = checks.integer("context", context, 1)
        self.held_out = float(checks.real("held_out", held_out, 0.0, 0.5, low_open=True))
        self.tokens = encode(load_text())
        n_held = int(len(self.tokens) * self.held_out)
        checks.require(
            n_held > self.context,
            f"held_out leaves {n_held} held-out characters, fewer than context + 1",
        )
        n_train = len(self.tokens) - n_held
        super().__init__(checks.integer("batch_size", batch_size, 1), n_train, n_val, 0, dtype)

    def make_data(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Training tokens, and ``n_val`` held-out windows evenly spaced over the split
        (inputs and next-character targets, ``(n_val, context)`` each)."""
        train, held = self.tokens[: self.n_train], self.tokens[self.n_train :]
        starts = np.linspace(0, len(held) - self.context - 1, self.n_val).astype(np.int64)
        windows = held[starts[:, None] + np.arange(self.context + 1)]
        return train[:-1], train[1:], windows[:, :-1], windows[:, 1:]

    def _batches(self, seed: int) -> Iterator[tuple[Any, Any]]:
        torch = torch_module()
        x, y = (torch.as_tensor(a) for a in self.data[:2])
        rng = np.random.default_rng([seed, 104729])
        positions = torch.arange(self.context)
        while True:
            starts = rng.integers(0, len(x) - self.context + 1, self.batch_size)
            idx = torch.as_tensor(starts)[:, None] + positions
            yield x[idx], y[idx]

    def make_model(self) -> Any:
        return _gpt_class()(VOCAB_SIZE, self.context, self.width, self.heads, self.layers)

    def loss_fn(self, model: Any, batch: Any) -> Any:
        tokens, targets = batch
        logits = model(tokens)
        return cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def metrics_fn(self, model: Any, batch: Any) -> dict[str, Any]:
        loss = self.loss_fn(model, batch)
        return {"loss": loss, "perplexity": loss.exp(), "bits_per_char": loss / math.log(2)}

    def torch_task(self, seed: int = 0) -> TorchTask:
        torch = torch_module()
        val = tuple(torch.as_tensor(a) for a in self.data[2:])
        seed = checks.integer("seed", seed, 0)
        return TorchTask(self.model(seed), self.loss_fn, self._batches(seed), val, self.metrics_fn)
