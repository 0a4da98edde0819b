"""Durable file operations for checkpoints: write + fsync, directory fsync, hashing, and a
check that a state is plain data (what ``torch.load(weights_only=True)`` accepts)."""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

# Written through os.open/os.write/os.fsync (not a buffered file object) so each system
# call's failure (ENOSPC, EIO) surfaces here, and tests can inject it.


def write_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), write all of ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serialize(obj: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def deserialize(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def check_plain(obj: Any, where: str) -> None:
    """Raise ``ValueError`` naming the first value that is not plain data.

    Plain: tensors, numbers, strings, None, and lists/tuples/dicts of them (dict keys:
    str, int or float). Anything else would need pickle to load, which we never allow.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        if type(obj) not in (torch.Tensor, torch.nn.Parameter):
            raise ValueError(f"{where} is a {type(obj).__name__}, not a plain tensor")
        return
    # Exact types: numpy.float64 is a float subclass, yet loading it would need numpy's pickle.
    if type(obj) in _SCALARS or type(obj) in (torch.dtype, torch.device, torch.Size):
        return
    if type(obj) in (list, tuple):
        for i, item in enumerate(obj):
            check_plain(item, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict, Counter):
        for key, value in obj.items():
            if type(key) not in (str, int, float):
                raise ValueError(f"{where} has a key of type {type(key).__name__}: {key!r}")
            check_plain(value, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which cannot be "
        "stored as plain data (tensors, numbers, strings, lists, dicts); checkpoints never "
        "pickle objects"
    )
