"""Lookahead: any rule's steps (the fast weights), pulled towards slow weights every k steps."""

from __future__ import annotations

import collections
import dataclasses
import inspect
import math
from collections.abc import Mapping
from typing import Any, cast

import numpy as np

from ..core.arrays import namespace
from .base import Hyper, Rule

HYPERPARAMS = (
    Hyper("k", 5, 1, 10**6, kind="int", doc="fast steps between two synchronisations"),
    Hyper("alpha", 0.5, 0.0, 1.0, doc="fraction the slow weights move towards the fast"),
)


def _own(inner: Rule) -> tuple[Hyper, ...]:
    """``k`` and ``alpha``, or ``lookahead_k`` and ``lookahead_alpha`` around a rule that
    has a hyperparameter of either name (RMSprop's ``alpha``)."""
    clash = any(h.name in inner.names for h in HYPERPARAMS)
    return tuple(
        dataclasses.replace(h, name=f"lookahead_{h.name}") if clash else h for h in HYPERPARAMS
    )


def lookahead(inner: Rule, name: str | None = None, summary: str | None = None) -> Rule:
    r"""``inner`` wrapped in Lookahead (Zhang et al. 2019, Algorithm 1).

    The wrapped rule steps the parameter (the fast weights ``theta``) with ``inner`` and
    keeps slow weights ``phi`` (the starting parameter at first); after every ``k``-th
    step the slow weights move towards the fast ones and the fast weights restart there
    (``k`` and ``alpha`` are named ``lookahead_k`` and ``lookahead_alpha`` around a rule
    with a hyperparameter of either name, such as RMSprop's ``alpha``):

    .. math::
        \theta_t &= \theta_{t-1} + \Delta^{inner}_t \\
        \text{if } k \mid t:\quad \phi &\leftarrow \phi + \alpha(\theta_t - \phi),
            \qquad \theta_t \leftarrow \phi

    The inner state carries on across synchronisations (no momentum reset: as
    ``pullback_momentum="none"`` in pytorch_optimizer's Lookahead). Hyperparameters: the
    inner rule's, then ``k`` and ``alpha``. State: ``count`` (shared with the inner rule:
    both count steps), ``slow``, then the inner state's other fields. The wrapped rule is
    elementwise, reducing, group-wide or matrix-only exactly when ``inner`` is. Its point
    to evaluate is the slow weights (``eval_point``: the paper's output ``phi``, equal to
    the parameter right after a synchronisation); an inner ``eval_point`` is not used.
    ``per_step`` gives the inner rule's scalars and whether this step synchronises.
    """
    own = _own(inner)
    k_name, alpha_name = (h.name for h in own)
    inner_type = type(_probe_state(inner))
    fields = ["count", "slow", *inner_type._fields[1:]]
    state_type: Any = cast(Any, collections.namedtuple)(f"Lookahead{inner_type.__name__}", fields)

    def init(param: Any, **kw: Any) -> Any:
        state = inner.init(param, **kw)
        return state_type(state.count, namespace(param).copy(param), *state[1:])

    init.__signature__ = inspect.signature(inner.init)  # type: ignore[attr-defined]

    def per_step(state: Any, **hp: Any) -> dict[str, Any]:
        k = hp.pop(k_name, 5)
        hp.pop(alpha_name, None)
        own = {SYNC: (state.count + 1) % k == 0}
        if inner.per_step is None:
            return own
        return {**inner.per_step(inner_type(state.count, *state[2:]), **hp), **own}

    def update(grad: Any, state: Any, param: Any, **hp: Any) -> tuple[Any, Any]:
        k, alpha = hp.pop(k_name, 5), hp.pop(alpha_name, 0.5)
        scalars = hp.pop("scalars", None)
        sync = (state.count + 1) % k == 0 if scalars is None else scalars[SYNC]
        if scalars is not None and inner.per_step is not None:
            hp["scalars"] = {key: v for key, v in scalars.items() if key != SYNC}
        delta, new = inner.update(grad, inner_type(state.count, *state[2:]), param, **hp)
        slow = state.slow
        if sync:
            slow = slow + alpha * ((param + delta) - slow)
            delta = slow - param
        return delta, state_type(state.count + 1, slow, *new[1:])

    hyperparams = (*inner.hyperparams, *own)
    _document(update, inner, hyperparams)

    def state_numel(shape: tuple[int, ...], hp: Mapping[str, Any]) -> int:
        return inner.state_numel(shape, _inner_hp(hp, inner)) + math.prod(shape)

    def check_inner(hp: Mapping[str, Any]) -> None:
        for check in inner.checks:
            check(_inner_hp(hp, inner))

    return dataclasses.replace(
        inner,
        name=name or f"lookahead_{inner.name}",
        init=init,
        update=update,
        hyperparams=hyperparams,
        state_numel=state_numel,
        summary=summary or f"Lookahead (k, alpha) around {inner.name}.",
        paper="Zhang et al., Lookahead Optimizer: k steps forward, 1 step back, NeurIPS 2019",
        checks=(check_inner,) if inner.checks else (),
        eval_point=eval_point,
        per_step=per_step,
    )


SYNC = "lookahead_sync"  # per_step's key: whether this step synchronises


def eval_point(param: Any, state: Any) -> Any:
    """The slow weights ``phi``."""
    return state.slow


def _inner_hp(hp: Mapping[str, Any], inner: Rule) -> dict[str, Any]:
    return {key: v for key, v in hp.items() if key in inner.names}


def _probe_state(rule: Rule) -> Any:
    probe = np.zeros((2, 3))
    return rule.init(probe) if rule.elementwise else rule.init(probe, batch_ndim=0)


def _document(update: Any, inner: Rule, hyperparams: tuple[Hyper, ...]) -> None:
    """Give ``update`` the wrapper's math, then the inner rule's, and an explicit
    signature: the inner rule's keyword-only arguments, ``k`` and ``alpha`` after them."""
    P = inspect.Parameter
    params = list(inspect.signature(inner.update).parameters.values())
    positional = [p for p in params if p.kind is not P.KEYWORD_ONLY]
    keyword = [
        p.replace(default=inner.hyper(p.name).default)  # a derived row's defaults
        for p in params
        if p.kind is P.KEYWORD_ONLY and p.name in inner.names
    ]
    rest = [p for p in params if p.kind is P.KEYWORD_ONLY and p.name not in inner.names]
    own = [P(h.name, P.KEYWORD_ONLY, default=h.default) for h in hyperparams[len(keyword) :]]
    update.__signature__ = inspect.Signature([*positional, *keyword, *own, *rest])  # type: ignore[attr-defined]
    inner_doc = inspect.getdoc(inner.update) or ""
    update.__doc__ = (
        f"One Lookahead step around ``{inner.name}``; returns ``(delta, new_state)``.\n\n"
        + (inspect.getdoc(lookahead) or "").split("\n\n", 1)[1]
        + f"\n\nThe inner rule ({inner.name}):\n\n"
        + inner_doc.split(">>>")[0].rstrip()
        + "\n\n"
        + EXAMPLE
    )


EXAMPLE = """Around SGD (lr 0.1, gradient 1): three fast steps, then the slow weights move halfway.

>>> import numpy as np
>>> from optimlab.rules.sgd import SGD
>>> rule, p = lookahead(SGD), np.zeros(1)
>>> state = rule.init(p)
>>> for _ in range(3):
...     delta, state = rule.update(np.ones(1), state, p, lr=0.1, k=3, alpha=0.5)
...     p = p + delta
>>> round(float(p[0]), 6), round(float(state.slow[0]), 6)  # fast -0.3, slow 0 -> -0.15
(-0.15, -0.15)"""
