"""Random-number state of one process, captured and restored so a resumed run draws the same numbers."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture(kind: str) -> dict[str, Any]:
    """Python, numpy, torch (and CUDA or XLA) generator states, in a form torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if kind == "cuda":
        state["cuda"] = torch.cuda.get_rng_state()
    if kind == "xla":
        import torch_xla.core.xla_model as xm

        state["xla"] = int(xm.get_rng_state())
    return state


def restore(state: dict[str, Any], kind: str) -> None:
    """Put back what `capture` took (the accelerator part only on the same kind of device)."""
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if kind == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])
    if kind == "xla" and "xla" in state:
        import torch_xla.core.xla_model as xm

        xm.set_rng_state(state["xla"])


def _tuples(value: Any) -> Any:
    """random.setstate wants tuples; a round trip through some serialisers gives lists."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_tuples(v) for v in value)
    return value
