"""Drop-in ``torch.optim`` optimizers, one per registered rule, generated from the registry.

>>> import torch
>>> from optimlab.optim import AdamW
>>> w = torch.nn.Parameter(torch.ones(3))
>>> opt = AdamW([w], lr=0.1)            # torch.optim.AdamW's signature and defaults
>>> w.sum().backward(); opt.step()
>>> [round(x, 4) for x in w.tolist()]    # first Adam step: lr, plus decay lr * wd * w
[0.899, 0.899, 0.899]

Each class (``SGD, Momentum, Nesterov, Adam, AdamW, Adagrad, RMSprop, NAdam, RAdam,
Adafactor, Lion``, and any row added later) is ``RuleOptimizer`` plus the row's argument
mapping; ``create_optimizer(name, params, **hp)`` builds one by registry name and also
accepts the rule's own names (``beta1`` for ``betas[0]``).

The modules, in the order data flows:

- ``arguments``: torch's constructor arguments of a row and their mapping to the rule's
- ``plain``: the per-tensor rule step (the reference) and per-parameter state
- ``multi_tensor``: the multi-tensor path, which owns its layout of flat state
- ``compiled``: the compiled path (the rule compiled over the multi-tensor path's buckets)
- ``flat``: flat storage of parameters and gradients (``flat=True``)
- ``state_dict``: checks and copies for ``load_state_dict``
- ``sharded``: ``DTensor`` (FSDP2) parameters stepped on their local shards
- ``base``: ``RuleOptimizer``, the one ``step`` that validates and picks a path
- ``classes``: one class per registry row, ``create_optimizer``
- ``bench``: step-speed benchmark against ``torch.optim``
"""

from __future__ import annotations

from .base import RuleOptimizer
from .classes import BY_CLASS_NAME, CLASSES, create_optimizer, optimizer_class

__all__ = [
    "CLASSES",
    "RuleOptimizer",
    "create_optimizer",
    "optimizer_class",
    *BY_CLASS_NAME,
]


def __getattr__(name: str) -> type[RuleOptimizer]:
    """The generated classes (``optimlab.optim.AdamW``), one per registry row.

    They are looked up here rather than assigned as module globals, so a type checker
    sees every class name as a ``type[RuleOptimizer]``.
    """
    try:
        return BY_CLASS_NAME[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *BY_CLASS_NAME})
