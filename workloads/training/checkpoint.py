"""Checkpoints that survive spot interruption: written atomically, verified on load, the last K kept.

Layout: `<dir>/step-00000120/` holds `state.pt` (model, optimizer, scheduler and data position: the same on
every rank), `rng-rank<r>.pt` (each rank's random state, which differs per rank) and `COMPLETE.json` (world
size, step, sha256 of every file), written last. Only global rank 0 touches the folder: it gathers the other
ranks' random states, writes everything into `<dir>/.tmp-step-00000120/`, then renames it, so a checkpoint
folder is either complete or absent, and on resume it broadcasts what it loaded. That works the same on one
host, on several SageMaker instances (only node 0's folder is synced to S3) and on EKS with a shared volume.
A folder that fails verification (no record, missing file, wrong hash, other world size) is skipped with a
warning and the next older one is tried.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workloads.common.hashing import file_sha256

STATE_FILE = "state.pt"
COMPLETE_FILE = "COMPLETE.json"
_NAME = re.compile(r"^step-(\d{8,})$")


@dataclass(frozen=True)
class Loaded:
    """A verified checkpoint: the shared state and every rank's random state."""

    path: Path
    step: int
    state: dict[str, Any]
    rngs: list[dict[str, Any]]


def folder_name(step: int) -> str:
    return f"step-{step:08d}"


_sha256 = file_sha256


def _save_file(obj: Any, path: Path) -> None:
    """torch.save to a temporary name, fsync, rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def save(root: Path, step: int, *, state: dict[str, Any], rngs: list[dict[str, Any]], keep: int) -> Path:
    """Write one checkpoint (called on rank 0 with every rank's random state); returns its folder."""
    final = root / folder_name(step)
    staging = root / f".tmp-{folder_name(step)}"
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _save_file(state, staging / STATE_FILE)
    for rank, rng in enumerate(rngs):
        _save_file(rng, staging / f"rng-rank{rank}.pt")
    files = sorted(p.name for p in staging.iterdir() if not p.name.startswith("."))
    record = {"step": step, "world_size": len(rngs), "files": {name: _sha256(staging / name) for name in files}}
    tmp = staging / f".{COMPLETE_FILE}.partial"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, staging / COMPLETE_FILE)
    _fsync_dir(staging)
    if final.exists():  # the same step again (SIGTERM right after a periodic save): replace it whole
        shutil.rmtree(final)
    os.replace(staging, final)
    _fsync_dir(root)
    prune(root, keep)
    return final


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints, and leftovers of interrupted writes."""
    complete = [p for p in candidates(root) if (p / COMPLETE_FILE).is_file()]
    for old in complete[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def candidates(root: Path) -> list[Path]:
    """Checkpoint folders, newest step first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def clean_staging(root: Path) -> None:
    """Remove half-written checkpoint folders left by a process that died mid-write (rank 0, at start)."""
    if root.is_dir():
        for leftover in root.glob(".tmp-step-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _verify(folder: Path, world_size: int) -> str | None:
    """Why `folder` cannot be resumed from by a run of `world_size` processes, or None when it checks out."""
    record_path = folder / COMPLETE_FILE
    if not record_path.is_file():
        return f"no {COMPLETE_FILE} (partial checkpoint)"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        files = dict(record["files"])
        saved_world = int(record["world_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {COMPLETE_FILE} ({exc})"
    if saved_world != world_size:
        return f"written by {saved_world} processes, this run has {world_size}"
    for name in (STATE_FILE, *(f"rng-rank{r}.pt" for r in range(world_size))):
        if name not in files:
            return f"{name} not listed in {COMPLETE_FILE}"
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != files[name]:
            return f"{name} does not match its sha256 (corrupt or partial)"
    return None


def load_latest(root: Path, *, world_size: int) -> Loaded | None:
    """The newest checkpoint that verifies and loads (rank 0); corrupt or partial ones are skipped with a warning."""
    for folder in candidates(root):
        problem = _verify(folder, world_size)
        if problem is None:
            try:
                state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
                rngs = [torch.load(folder / f"rng-rank{r}.pt", map_location="cpu", weights_only=True)
                        for r in range(world_size)]
                return Loaded(folder, int(state["step"]), state, rngs)
            except Exception as exc:  # noqa: BLE001 - any unpickling failure means "do not use this one"
                problem = f"cannot be loaded ({type(exc).__name__}: {exc})"
        warn(f"skipping checkpoint {folder}: {problem}")
    return None
