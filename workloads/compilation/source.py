"""Where the model to compile comes from: a local folder, or what a training run published in S3.

`--model-s3-uri` takes any of the three forms both training paths produce (`contracts.storage`):
- the pointer manifest `s3://<models>/training/latest.json` an EKS training Job writes last;
- a run prefix `s3://<models>/training/<run>/`, e.g. a SageMaker job's name: its `output/model.tar.gz`;
- the archive itself, `.../output/model.tar.gz`.
The archive is checked against the pointer's sha256 when there is one and unpacked with tarfile's `data` filter
(no absolute paths, links out of the folder or device files).
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from contracts.storage import POINTER_VERSION
from contracts.storage import RUN_ARCHIVE as MODEL_ARCHIVE
from workloads.common import s3
from workloads.common.cli import UsageError

FLAG = "--model-s3-uri"


def archive_uri(uri: str) -> tuple[str, str | None]:
    """(model.tar.gz URI, expected sha256 or None) for a pointer, a run prefix or an archive URI."""
    s3.parse_uri(uri, FLAG)
    if uri.endswith(".json"):
        pointer = s3.get_json(uri, what=f"{FLAG} pointer")
        if pointer.get("version") != POINTER_VERSION or not s3.is_s3(pointer.get("model")):
            raise UsageError(f"{FLAG} {uri}: not a training pointer (version {POINTER_VERSION} with an s3:// 'model')")
        return str(pointer["model"]), pointer.get("sha256")
    if uri.endswith(".tar.gz"):
        return uri, None
    return uri.rstrip("/") + "/" + MODEL_ARCHIVE, None


def fetch_model(uri: str, work: Path) -> tuple[Path, str]:
    """Download and unpack the trained model into `work/model`; returns (folder, archive URI)."""
    model_uri, expected = archive_uri(uri)
    archive = s3.download_file(model_uri, work / "model.tar.gz", what=f"{FLAG} model archive")
    if expected:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != expected:
            raise UsageError(f"{model_uri}: sha256 {digest} does not match the pointer's {expected}")
    folder = work / "model"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(f"{model_uri}: not a readable model archive ({exc})") from None
    archive.unlink()
    return folder, model_uri
