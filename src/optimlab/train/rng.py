"""Random number generator states (torch, CUDA, NumPy global, Python ``random``) as plain data.

The states are stored as tensors, numbers and strings only, so a checkpoint holding them
loads with ``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np


def get_rng_state() -> dict[str, Any]:
    """The current states of torch's CPU (and CUDA, if initialised), NumPy's and Python's RNGs."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "cuda": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states produced by :func:`get_rng_state`."""
    import torch

    np_state = state["numpy"]
    py_state = state["python"]
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    random.setstate(
        (
            py_state["version"],
            tuple(int(x) for x in py_state["internal"].tolist()),
            py_state["gauss_next"],
        )
    )
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
