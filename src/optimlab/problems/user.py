"""The user's own problem: a function returning ``(model, loss_fn, data[, val_batch])``.

The contract (also in docs/problems.md):

- ``fn()`` or ``fn(seed)`` is called with torch's global RNG seeded by ``seed`` (inside
  ``torch.random.fork_rng``, so the caller's RNG is untouched); it must build a fresh
  model each call.
- It returns ``(model, loss_fn, data)`` or ``(model, loss_fn, data, val_batch)``, or a
  ready ``TorchTask``:
  ``model`` a ``torch.nn.Module``; ``loss_fn(model, batch) -> scalar tensor``; ``data``
  the training batches: a re-iterable (a list of batches, a ``DataLoader``: iterated again
  each epoch), an endless iterator/generator, or one batch given as a tuple of tensors
  (full-batch training). ``val_batch`` defaults to the first training batch.
- Evaluation reports ``{"loss": loss_fn(model, val_batch)}``: held-out when a
  ``val_batch`` is given (``evaluation == "held-out"``), else on the first training batch
  (``evaluation == "training"``).
- A seed changes what the function draws from torch's RNG (the initial weights, and data
  if it draws them there) and the order a shuffling ``DataLoader`` gives. A ready
  ``TorchTask`` *object* (not a function) has fixed weights and batches: its copies are
  identical, so the lab runs it with one seed.
- Batched runs ``vmap`` ``loss_fn`` over stacked parameters; models that update buffers
  or draw random numbers in ``forward`` (batch norm, dropout) fall back to one run per
  setting automatically.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import inspect
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core import checks
from ..core.checks import is_tensor
from ..train.task import TorchTask
from .base import Problem


def _endless(data: Any) -> Iterator[Any]:
    if isinstance(data, tuple) and data and all(is_tensor(t) for t in data):
        return itertools.repeat(data)
    try:
        it = iter(data)
    except TypeError:
        raise ValueError(
            f"data must be an iterable of batches, got {type(data).__name__}"
        ) from None
    if it is data:  # a one-shot iterator: use it as it comes

        def once() -> Iterator[Any]:
            count = 0
            for batch in it:
                count += 1
                yield batch
            raise ValueError(
                f"data ran out after {count} batches; return a list, a "
                "DataLoader or an endless generator"
            )

        return once()

    def epochs() -> Iterator[Any]:
        while True:
            empty = True
            for batch in data:
                empty = False
                yield batch
            if empty:
                raise ValueError("data yielded no batches")

    return epochs()


def _first(data: Any) -> Any:
    if isinstance(data, tuple) and data and all(is_tensor(t) for t in data):
        return data
    if iter(data) is data:
        return None
    return next(iter(data), None)


class UserProblem(Problem):
    """A problem built from a user's function (see the module docstring for the contract)."""

    kind = "torch"

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {fn!r}")
        self.fn = fn
        self.name = name or f"{fn.__module__}:{getattr(fn, '__qualname__', repr(fn))}"
        self._held_out: bool | None = None  # known once a task was built
        try:
            params = inspect.signature(fn).parameters.values()
            self._takes_seed = any(
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                for p in params
            )
        except (TypeError, ValueError):
            self._takes_seed = False

    def torch_task(self, seed: int = 0) -> TorchTask:
        import torch

        seed = checks.integer("seed", seed, 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.fn(seed) if self._takes_seed else self.fn()
        if isinstance(out, TorchTask):
            return self._complete(out)
        if not (isinstance(out, tuple | list) and len(out) in (3, 4)):
            raise ValueError(
                f"{self.name} must return (model, loss_fn, data) or "
                f"(model, loss_fn, data, val_batch), got {type(out).__name__}"
            )
        model, loss_fn, data, *rest = out
        if not isinstance(model, torch.nn.Module):
            raise ValueError(
                f"{self.name}: model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if not callable(loss_fn):
            raise ValueError(f"{self.name}: loss_fn must be callable, got {loss_fn!r}")
        self._held_out = bool(rest)
        val = rest[0] if rest else _first(data)
        return TorchTask(model, loss_fn, _endless(data), val, metrics=_loss_metric(loss_fn))

    def _complete(self, task: TorchTask) -> TorchTask:
        """A task the function returned, with an evaluation: its loss on ``val_batch`` (held
        out), or on the first training batch when it has none."""
        self._held_out = task.val_batch is not None
        if task.val_batch is None:
            first = next(task.batches)
            task.batches = itertools.chain([first], task.batches)
            task.val_batch = first
        if task.metrics is None:
            task.metrics = _loss_metric(task.loss)
        return task

    @property
    def evaluation(self) -> str:
        """``"held-out"`` when the function gives a ``val_batch``, else ``"training"``."""
        if self._held_out is None:
            self.torch_task(0)
        return "held-out" if self._held_out else "training"

    @property
    def seed_changes(self) -> tuple[str, ...]:
        if isinstance(self.fn, _TaskCopies):
            return ()
        return ("init and whatever else the function draws from torch's RNG",)

    def init(self, seed: int = 0) -> dict[str, Any]:
        return {k: v.detach() for k, v in self.torch_task(seed).model.named_parameters()}


def _loss_metric(loss_fn: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    def metrics(m: Any, batch: Any) -> dict[str, Any]:
        return {"loss": loss_fn(m, batch)}

    return metrics


class _TaskCopies:
    """Fresh copies of one ``TorchTask`` object: its model as it was given (the original is
    never trained) and its batches replayed from the first one, so every run starts alike.
    Batches are kept in memory as they are first drawn (for large data, give a function)."""

    def __init__(self, task: TorchTask) -> None:
        self.model = copy.deepcopy(task.model)
        self.task = task
        self.source = iter(task.batches)
        self.seen: list[Any] = []

    def _replay(self) -> Iterator[Any]:
        i = 0
        while True:
            if i == len(self.seen):
                try:
                    self.seen.append(next(self.source))
                except StopIteration:
                    raise ValueError(
                        f"the task's batches ran out after {i} batches; give an endless "
                        "iterator or a function returning the task"
                    ) from None
            yield self.seen[i]
            i += 1

    def __call__(self) -> TorchTask:
        t = self.task
        return TorchTask(copy.deepcopy(self.model), t.loss, self._replay(), t.val_batch, t.metrics)


def from_callable(fn: Callable[..., Any], name: str | None = None) -> UserProblem:
    """A problem from ``fn`` returning ``(model, loss_fn, data[, val_batch])`` (or a
    ``TorchTask``), or from a ready ``TorchTask`` object (copied for every run)."""
    if isinstance(fn, TorchTask):
        return UserProblem(_TaskCopies(fn), name or "task")
    return UserProblem(fn, name)


@contextlib.contextmanager
def _current_folder_on_path() -> Iterator[None]:
    """The current folder first on ``sys.path`` while importing a user module, as
    ``python -c`` has it, so ``my_models:mlp`` finds ``./my_models.py`` without
    ``PYTHONPATH=.`` (the ``optimlab`` script's own folder is what Python puts there)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def load(spec: str) -> UserProblem:
    """Resolve ``"module:function"`` or ``"path/to/file.py:function"`` to a problem.

    A missing ``.py`` file raises ``FileNotFoundError``; a module that cannot be imported
    (a syntax error or an exception in its code included) or a missing function raises
    ``ValueError`` saying which, in one line.
    """
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"a user problem is 'module:function', got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"problem file not found: {module_name}")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        registered = sys.modules.setdefault(path.stem, module) is module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: a syntax error, a failed import, ...
            if registered:
                del sys.modules[path.stem]
            raise ValueError(
                f"cannot load problem file {module_name!r}: {type(exc).__name__}: {exc}"
            ) from None
    else:
        try:
            with _current_folder_on_path():
                module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import problem module {module_name!r}: {exc}") from None
        except Exception as exc:  # importing ran the user's code, and it failed
            raise ValueError(
                f"cannot import problem module {module_name!r}: {type(exc).__name__}: {exc}"
            ) from None
    fn = getattr(module, attr, None)
    if fn is None:
        names = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
        )
        raise ValueError(
            f"module {module_name!r} has no function {attr!r}"
            + (f" (it has: {', '.join(names)})" if names else "")
        )
    return UserProblem(fn, spec)
