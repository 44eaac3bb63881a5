"""Publish a checked artifact: the output folder appears complete or not at all, then optionally S3 (SSE-KMS).

Files are written into a hidden sibling folder and renamed into place, so a reader never sees an artifact
without its manifest. In S3 the manifest is uploaded last: a prefix with a manifest is a complete artifact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import torch

from workloads.common.cli import UsageError
from workloads.common.model_dir import tokenizer_files
from workloads.compilation.manifest import MANIFEST_FILE, Manifest


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse to mix a new artifact into a non-empty folder unless asked to replace it."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"--out {out}: folder is not empty (pass --overwrite to replace it)")


def save_torchscript(module: torch.jit.ScriptModule) -> Callable[[Path], None]:
    """The writer for a TorchScript artifact (`model.pt`)."""

    def save(path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the serving contract
            torch.jit.save(module, str(path))

    return save


def write_artifact(out: Path, save: Callable[[Path], None], manifest: Manifest, model_dir: Path) -> Path:
    """The artifact (written by `save` to its path), the tokenizer files and manifest.json into `out`, atomically."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        save(staging / manifest.artifact)
        for file in tokenizer_files(model_dir):
            shutil.copy2(file, staging / file.name)
        manifest.write(staging)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """('bucket', 'prefix/') from s3://bucket/prefix; a bad URI is a UsageError naming the flag."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UsageError(f"--upload {uri!r}: expected s3://bucket/prefix")
    prefix = parsed.path.lstrip("/")
    return parsed.netloc, (prefix.rstrip("/") + "/") if prefix else ""


def upload(out: Path, uri: str, kms_key_id: str, *, client=None) -> list[str]:
    """Upload every file of `out` under `uri` with SSE-KMS (`kms_key_id`), manifest last; returns the keys."""
    import boto3

    bucket, prefix = parse_s3_uri(uri)
    s3 = client or boto3.client("s3")
    files = sorted((p for p in out.iterdir() if p.is_file()), key=lambda p: (p.name == MANIFEST_FILE, p.name))
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    keys = []
    for file in files:
        key = prefix + file.name
        s3.upload_file(str(file), bucket, key, ExtraArgs=extra)
        keys.append(key)
    return keys
