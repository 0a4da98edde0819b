"""Checkpoint and resume: durable, verified, plain-data checkpoints with rotation.

A checkpoint is a directory ``step-00000060/`` holding one ``torch.save`` file per
component (``model.pt``, ``optimizer.pt``, ``scheduler.pt``, ``scaler.pt``, ``trainer.pt``,
``rng.pt``, ``extra.pt``) and ``manifest.json`` (format version, step, configuration, the
sha256 and size of every file, and a checksum of the manifest itself).

Writing: every file goes into a hidden temporary directory and is fsynced; the directory
is fsynced, renamed to its final name (atomic), and the parent fsynced. Only then are old
checkpoints rotated out. A crash at any moment leaves either the complete new checkpoint or
none plus a stale ``.tmp-*`` directory, which the next manager removes.

Loading: the manifest and every file are verified (size, sha256) before anything is
deserialized, with ``torch.load(weights_only=True)`` on the verified bytes: no object is
ever unpickled. :meth:`CheckpointManager.restore` falls back to the previous checkpoint,
with a :class:`CheckpointWarning`, when the newest is corrupt; a checkpoint written for
another configuration (parameter names, shapes or dtypes, optimizer or scheduler type,
param groups, user config) is refused with an error naming what differs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import checks
from . import _files
from ._signature import differences, signature
from .rng import get_rng_state, set_rng_state

if TYPE_CHECKING:
    import torch

FORMAT = "optimlab-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_NAME = re.compile(r"^step-(\d{8,})$")
_TMP = ".tmp-"
_ASIDE = re.compile(r"^\.tmp-old-(step-\d{8,})-\d+-[0-9a-f]{8}$")


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or loaded."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint file is missing, empty, truncated or fails its hash check."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was written for another configuration."""


class CheckpointWarning(UserWarning):
    """A corrupt checkpoint was skipped in favour of an older one."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: where it was, its step, config and the ``extra`` saved with it."""

    path: Path
    step: int
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


class CheckpointManager:
    """Save and restore a training run's state in ``directory``, keeping the last ``keep``.

    Components are any objects with ``state_dict()``/``load_state_dict()`` (a
    :class:`~optimlab.train.TrainStep` brings its step counter and loss scaler). ``config``
    is JSON data describing the run; resuming under a different config is refused.
    One process writes to a directory at a time.

    >>> # manager = CheckpointManager("ckpt", model=m, optimizer=opt, trainer=train_step)
    >>> # manager.restore()            # None on a fresh start
    >>> # manager.save()               # step taken from the trainer
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        scaler: Any = None,
        trainer: Any = None,
        keep: int = 3,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        keep = checks.integer("keep", keep, 1)
        try:
            plain_config: dict[str, Any] = json.loads(
                json.dumps(dict(config or {}), sort_keys=True, allow_nan=False)
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"config must be JSON data, got {config!r} ({e})") from None
        parts = {
            "model": model,
            "optimizer": optimizer,
            "scheduler": scheduler,
            "scaler": scaler,
            "trainer": trainer,
        }
        for name, obj in parts.items():
            if obj is not None and not (
                callable(getattr(obj, "state_dict", None))
                and callable(getattr(obj, "load_state_dict", None))
            ):
                raise ValueError(f"{name} needs state_dict() and load_state_dict(), got {obj!r}")
        self.directory = Path(directory)
        self.keep = keep
        self.config = plain_config
        self.components = {k: v for k, v in parts.items() if v is not None}
        self.model = model
        self.optimizer = optimizer
        self.directory.mkdir(parents=True, exist_ok=True)
        self.clean_stale()

    # -- listing -----------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoint directories, oldest step first."""
        found = [
            (int(m.group(1)), p)
            for p in self.directory.iterdir()
            if p.is_dir() and (m := _NAME.match(p.name))
        ]
        return [p for _, p in sorted(found)]

    def clean_stale(self) -> list[Path]:
        """Remove temporary directories left by interrupted saves; return what was removed.

        A checkpoint moved aside by a save of the same step (``.tmp-old-step-N-*``) whose
        replacement never took the name ``step-N`` is renamed back instead: it is complete.
        """
        stale = [p for p in self.directory.iterdir() if p.name.startswith(_TMP)]
        removed = []
        for p in stale:
            match = _ASIDE.match(p.name)
            if match and p.is_dir() and not (self.directory / match.group(1)).exists():
                os.rename(p, self.directory / match.group(1))
                continue
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            removed.append(p)
        return removed

    # -- saving ------------------------------------------------------------------------------
    def save(self, step: int | None = None, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write a checkpoint for ``step`` (default: the trainer's ``step_count``).

        Checkpoints with a higher step (an abandoned future after a resume) and all but the
        newest ``keep`` are removed once the new one is complete.
        """
        if step is None:
            trainer = self.components.get("trainer")
            if trainer is None or not hasattr(trainer, "step_count"):
                raise ValueError("step is required when no trainer with step_count is given")
            step = trainer.step_count
        step = checks.integer("step", step, 0)
        states: dict[str, Any] = {n: c.state_dict() for n, c in self.components.items()}
        states["rng"] = get_rng_state()
        states["extra"] = dict(extra or {})
        for name, state in states.items():
            _files.check_plain(state, f"{name} state")
        blobs = {f"{name}.pt": _files.serialize(state) for name, state in states.items()}
        body = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "step": step,
            "config": self.config,
            "signature": signature(self.components),
            "files": {n: {"sha256": _files.sha256(b), "bytes": len(b)} for n, b in blobs.items()},
            "created_unix": time.time(),
            "versions": _versions(),
        }
        manifest = {**body, "checksum": _checksum(body)}
        blobs[MANIFEST] = json.dumps(manifest, indent=1, sort_keys=True).encode()
        final = self.directory / f"step-{step:08d}"
        self._commit(final, blobs)
        self._rotate(step)
        return final

    def _commit(self, final: Path, blobs: dict[str, bytes]) -> None:
        token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.directory / f"{_TMP}{final.name}-{token}"
        aside = self.directory / f"{_TMP}old-{final.name}-{token}"
        try:
            tmp.mkdir()
            for name, data in blobs.items():  # the manifest is last: it marks completeness
                _files.write_file(tmp / name, data)
            _files.fsync_dir(tmp)
            if final.exists():  # same step saved again: move the old one out of the way
                os.rename(final, aside)
            os.rename(tmp, final)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if aside.exists() and not final.exists():
                os.rename(aside, final)
            reason = e.strerror or str(e)
            raise CheckpointError(
                f"could not write checkpoint {final}: {reason} (errno {e.errno}); "
                "the previous checkpoints are unchanged"
            ) from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if aside.exists() and not final.exists():
                os.rename(aside, final)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        try:
            _files.fsync_dir(self.directory)
        except OSError as e:
            raise CheckpointError(
                f"checkpoint {final} was written but its directory could not be synced: "
                f"{e.strerror or e} (errno {e.errno}); it may not survive a power loss"
            ) from e

    def _rotate(self, newest: int) -> None:
        paths = self.checkpoints()
        future = [p for p in paths if _step_of(p) > newest]
        current = [p for p in paths if _step_of(p) <= newest]
        for p in future + current[: max(0, len(current) - self.keep)]:
            shutil.rmtree(p, ignore_errors=True)
        try:
            _files.fsync_dir(self.directory)
        except OSError as e:  # the new checkpoint is complete and synced; only removals pend
            warnings.warn(
                f"could not sync {self.directory} after rotation: {e}",
                CheckpointWarning,
                stacklevel=3,
            )

    # -- loading -----------------------------------------------------------------------------
    def restore(self, *, rng: bool = True) -> Checkpoint | None:
        """Load the newest valid checkpoint into the components; None if there is none.

        A corrupt checkpoint is skipped with a :class:`CheckpointWarning` naming the file;
        a checkpoint for another configuration raises :class:`CheckpointMismatchError`.
        """
        paths = self.checkpoints()
        if not paths:
            return None
        problems = []
        for path in reversed(paths):
            try:
                manifest, states = read_checkpoint(path)
            except CheckpointCorruptError as e:
                problems.append(str(e))
                warnings.warn(
                    f"{e}; falling back to the previous checkpoint", CheckpointWarning, stacklevel=2
                )
                continue
            return self._apply(path, manifest, states, rng)
        raise CheckpointCorruptError(
            f"no valid checkpoint in {self.directory}: " + "; ".join(problems)
        )

    def load(self, path: str | os.PathLike[str], *, rng: bool = True) -> Checkpoint:
        """Load one specific checkpoint; raises on corruption or a configuration mismatch."""
        path = Path(path)
        manifest, states = read_checkpoint(path)
        return self._apply(path, manifest, states, rng)

    def _apply(
        self, path: Path, manifest: dict[str, Any], states: dict[str, Any], rng: bool
    ) -> Checkpoint:
        found = differences(manifest, self.config, signature(self.components))
        if found:
            shown = "; ".join(found[:6])
            more = f" (and {len(found) - 6} more)" if len(found) > 6 else ""
            raise CheckpointMismatchError(
                f"checkpoint {path} was written for another configuration: {shown}{more}"
            )
        # Small components first, with a snapshot each: one that rejects its saved state
        # (a ScheduleLR built with another schedule) leaves everything as it was.
        order = [
            n
            for n in ("trainer", "scaler", "scheduler", "optimizer", "model")
            if n in self.components
        ]
        snapshots: dict[str, Any] = {}
        for name in order:
            component = self.components[name]
            if name not in ("optimizer", "model"):
                snapshots[name] = copy.deepcopy(component.state_dict())
            try:
                component.load_state_dict(states[name])
            except Exception as e:
                for done, snapshot in snapshots.items():
                    self.components[done].load_state_dict(snapshot)
                raise CheckpointMismatchError(
                    f"checkpoint {path}: the {name} refused its saved state: {e}"
                ) from e
        if rng:
            set_rng_state(states["rng"])
        return Checkpoint(path, manifest["step"], manifest["config"], states.get("extra", {}))


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a checkpoint directory and deserialize its files (plain data only)."""
    manifest = _read_manifest(path)
    states = {}
    for name, info in manifest["files"].items():
        if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(".pt"):
            raise CheckpointCorruptError(f"{path / MANIFEST}: invalid file name {name!r}")
        file = path / name
        try:
            data = file.read_bytes()
        except OSError as e:
            raise CheckpointCorruptError(f"{file}: cannot be read ({e.strerror})") from e
        if not data:
            raise CheckpointCorruptError(f"{file}: empty file")
        if len(data) != info["bytes"]:
            raise CheckpointCorruptError(
                f"{file}: {len(data)} bytes, the manifest says {info['bytes']} (truncated?)"
            )
        if _files.sha256(data) != info["sha256"]:
            raise CheckpointCorruptError(f"{file}: sha256 mismatch (the file is corrupted)")
        try:
            states[name[: -len(".pt")]] = _files.deserialize(data)
        except Exception as e:  # verified bytes that still do not load: report, never unpickle
            raise CheckpointCorruptError(f"{file}: cannot be loaded as plain data ({e})") from e
    return manifest, states


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise CheckpointCorruptError(f"{file}: cannot be read ({e.strerror})") from e
    if not raw:
        raise CheckpointCorruptError(f"{file}: empty file")
    try:
        manifest = json.loads(raw)
        body = {k: v for k, v in manifest.items() if k != "checksum"}
        valid = manifest.get("checksum") == _checksum(body)
    except (ValueError, AttributeError, TypeError):
        raise CheckpointCorruptError(f"{file}: not valid JSON (truncated or corrupted)") from None
    if not valid:  # checked first: every later field is then trustworthy
        raise CheckpointCorruptError(f"{file}: checksum mismatch (the manifest is corrupted)")
    if manifest.get("format") != FORMAT:
        raise CheckpointCorruptError(f"{file}: not an optimlab checkpoint manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format version {version!r} is newer than this optimlab reads "
            f"({FORMAT_VERSION}); upgrade optimlab"
        )
    # the checksum proves the manifest whole, not true: a step edited with its checksum
    # recomputed must still agree with the directory the checkpoint was written as
    step, named = manifest.get("step"), _NAME.match(path.name)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointCorruptError(f"{file}: step must be an integer >= 0, got {step!r}")
    if named and int(named.group(1)) != step:
        raise CheckpointCorruptError(
            f"{file}: says step {step}, but the checkpoint was written as {path.name} "
            f"(the manifest was edited)"
        )
    return manifest


def _checksum(body: dict[str, Any]) -> str:
    return _files.sha256(json.dumps(body, sort_keys=True).encode())


def _step_of(path: Path) -> int:
    match = _NAME.match(path.name)
    assert match is not None
    return int(match.group(1))


def _versions() -> dict[str, str]:
    import torch

    from ..core.version import __version__

    return {"optimlab": __version__, "torch": torch.__version__}
