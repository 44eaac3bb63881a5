"""Package a compiled artifact the way a SageMaker Model loads it: `model.tar.gz`, the files at its root.

SageMaker downloads a model package's `ModelDataUrl` and extracts the archive into `/opt/ml/model`, which is
where the model server looks for `manifest.json` and the artifact beside it; a folder inside the archive would
leave the server with `/opt/ml/model/<folder>/manifest.json` and nothing to load. The archive is byte-for-byte
reproducible (sorted names, zero mtimes and owners, no gzip timestamp), so its hash identifies the artifact and
registering the same compile output twice uploads the same object.
"""

from __future__ import annotations

import gzip
import tarfile
from dataclasses import dataclass
from pathlib import Path

from contracts.storage import MANIFEST_FILE, MODEL_ARCHIVE
from workloads.common.cli import UsageError
from workloads.common.hashing import file_sha256
from workloads.compilation.manifest import Manifest, ManifestError


@dataclass(frozen=True)
class Package:
    """The archive and the hashes the registry records about it."""

    archive: Path
    archive_sha256: str
    manifest_sha256: str
    manifest: Manifest
    files: tuple[str, ...]


sha256_file = file_sha256


def build(artifact_dir: Path, out_dir: Path) -> Package:
    """`<out_dir>/model.tar.gz` from a compilation output folder (manifest checked first; hidden files skipped)."""
    if not artifact_dir.is_dir():
        raise UsageError(f"--artifact {artifact_dir}: not a folder (pass a workloads.compilation --out folder)")
    try:
        manifest = Manifest.load(artifact_dir)
    except ManifestError as exc:
        raise UsageError(f"--artifact: {exc}") from None
    if not (artifact_dir / manifest.artifact).is_file():
        raise UsageError(f"--artifact {artifact_dir}: the manifest names {manifest.artifact!r}, which is not there")
    files = sorted(p for p in artifact_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if any(p.is_dir() for p in artifact_dir.iterdir() if not p.name.startswith(".")):
        raise UsageError(f"--artifact {artifact_dir}: has sub-folders; a compiled artifact is a flat folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / MODEL_ARCHIVE
    with archive.open("wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in files:
            info = tarfile.TarInfo(file.name)  # at the archive root: SageMaker extracts into /opt/ml/model
            info.size = file.stat().st_size
            info.mode = 0o644
            with file.open("rb") as data:
                tar.addfile(info, data)
    return Package(archive=archive, archive_sha256=sha256_file(archive),
                   manifest_sha256=sha256_file(artifact_dir / MANIFEST_FILE), manifest=manifest,
                   files=tuple(p.name for p in files))


def extract(archive: Path, model_dir: Path) -> Path:
    """Unpack as SageMaker does before the container starts (used by tests and local runs of a package)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    return model_dir
