"""The training run's S3 side on EKS: data in, checkpoints mirrored as they are written and restored at start,
the final model published under the run prefix with a pointer manifest that compilation reads.

SageMaker does the channel download and the checkpoint sync itself (and isolates the container from the
network), so there none of this runs; the model it writes lands at `training/<job>/output/model.tar.gz`, the
same place and format this module publishes an EKS run to. The layout is `contracts.storage`.

A checkpoint folder in S3 is complete once its `COMPLETE.json` is there (uploaded last); restoring takes the
newest complete one that is newer than what the pod still has locally, and `checkpoint.load_latest` then
verifies it file by file exactly as a local one.
"""

from __future__ import annotations

import os
import re
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from contracts.storage import CHECKPOINT_COMPLETE_FILE as COMPLETE_FILE
from contracts.storage import POINTER_VERSION, RUN_ARCHIVE
from workloads.common import s3
from workloads.common.hashing import file_sha256

_STEP = re.compile(r"^(step-\d{8,})/" + re.escape(COMPLETE_FILE) + "$")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fetch_channel(uri: str, dest: Path, channel: str) -> Path:
    """Download a data channel (every rank may call this; the folder appears whole exactly once)."""
    return s3.download_prefix(uri, dest, what=f"{channel} data")


def remote_steps(uri: str) -> list[str]:
    """Complete checkpoint folders under `uri`, newest first."""
    names = [m.group(1) for key in s3.list_keys(uri) if (m := _STEP.match(key))]
    return sorted(names, reverse=True)


def restore_checkpoint(uri: str, local_root: Path) -> str | None:
    """Bring the newest complete S3 checkpoint into `local_root` unless the pod already has it or a newer one;
    returns the folder name restored, or None."""
    from workloads.training.checkpoint import candidates

    remote = remote_steps(uri)
    if not remote:
        return None
    local = [p.name for p in candidates(local_root) if (p / COMPLETE_FILE).is_file()]
    if local and local[0] >= remote[0]:
        return None
    s3.download_prefix(uri.rstrip("/") + "/" + remote[0] + "/", local_root / remote[0], what="checkpoint")
    _log(f"restored checkpoint {remote[0]} from {uri}")
    return remote[0]


def mirror_checkpoint(folder: Path, uri: str, kms_key: str, keep: int) -> None:
    """Upload one checkpoint folder (COMPLETE.json last) and delete S3 checkpoints beyond the newest `keep`."""
    s3.upload_folder(folder, uri.rstrip("/") + "/" + folder.name + "/", kms_key, last=COMPLETE_FILE)
    for old in remote_steps(uri)[keep:]:
        s3.delete_prefix(uri.rstrip("/") + "/" + old + "/")


def publish_model(model_dir: Path, output_uri: str, kms_key: str, pointer_uri: str | None,
                  metrics: dict[str, Any]) -> dict[str, Any]:
    """Pack `model_dir` as SageMaker does (files at the archive's top level), upload it to
    `<output_uri>output/model.tar.gz`, then write the pointer naming it. Returns the pointer document."""
    bucket, prefix = s3.prefix_of(output_uri, "--output-s3-uri")
    archive = model_dir.parent / f".model-{os.getpid()}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for file in sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            tar.add(file, arcname=file.name)
    model_uri = f"s3://{bucket}/{prefix}{RUN_ARCHIVE}"
    try:
        s3.upload_file(archive, model_uri, kms_key)
        document = {"version": POINTER_VERSION, "run": prefix.rstrip("/").rsplit("/", 1)[-1], "model": model_uri,
                    "sha256": file_sha256(archive), "step": metrics.get("step"), "created": int(time.time()),
                    "metrics": {k: v for k, v in metrics.items() if k.startswith("validation_")
                                or k in ("train_examples", "labels")}}
    finally:
        archive.unlink(missing_ok=True)
    _log(f"published model {model_uri}")
    if pointer_uri:
        s3.put_json(pointer_uri, document, kms_key)
        _log(f"pointer {pointer_uri} -> {model_uri}")
    return document
