"""S3 in and out for the workloads: whole prefixes down, folders up with SSE-KMS, a marker file last.

The workloads use this instead of the aws CLI so a pod needs no second image (the CLI image would run with
the pod's IRSA credentials) and so the same code runs under moto, locally and in the rehearsal: boto3 honours
`AWS_ENDPOINT_URL`. Downloads land in a private staging folder and are renamed into place, so several
processes of one pod (torchrun's local ranks) can fetch the same prefix at once and each sees it whole.

`python -m workloads.common.s3 sync s3://bucket/prefix/ /local/folder` is the init-container form.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from workloads.common.cli import UsageError, run_main


def is_s3(value: object) -> bool:
    return isinstance(value, str) and value.startswith("s3://")


def parse_uri(uri: str, what: str = "S3 URI") -> tuple[str, str]:
    """('bucket', 'key or prefix') from s3://bucket/key; a bad URI is a UsageError naming `what`."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UsageError(f"{what} {uri!r}: expected s3://bucket/prefix")
    return parsed.netloc, parsed.path.lstrip("/")


def prefix_of(uri: str, what: str = "S3 URI") -> tuple[str, str]:
    """Like `parse_uri`, with the key part ending in '/' (or empty): a folder."""
    bucket, key = parse_uri(uri, what)
    return bucket, (key.rstrip("/") + "/") if key else ""


def client() -> Any:
    import boto3

    return boto3.client("s3")


def _error(exc: Exception, what: str) -> UsageError:
    """botocore's failures as one line: the operation, the S3 location and AWS's own words."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return UsageError(f"{what}: {code or type(exc).__name__}: {exc}")


def list_keys(uri: str, *, s3: Any = None) -> list[str]:
    """Every key under the prefix `uri` (sorted), relative to that prefix."""
    bucket, prefix = prefix_of(uri)
    s3 = s3 or client()
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"][len(prefix):] for obj in page.get("Contents", []))
    except Exception as exc:  # noqa: BLE001 - botocore raises several unrelated classes
        raise _error(exc, f"listing {uri}") from None
    return sorted(k for k in keys if k and not k.endswith("/"))


def download_prefix(uri: str, dest: Path, *, what: str = "S3 prefix", s3: Any = None) -> Path:
    """Copy everything under `uri` into `dest` (created whole, or left as another process made it)."""
    s3 = s3 or client()
    bucket, prefix = prefix_of(uri, what)
    keys = list_keys(uri, s3=s3)
    if not keys:
        raise UsageError(f"{what} {uri}: no objects there (publish them first)")
    if dest.is_dir() and any(dest.iterdir()):
        return dest  # a sibling process (another local rank) already fetched it
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.fetch-"))
    try:
        for key in keys:
            target = staging / key
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                s3.download_file(bucket, prefix + key, str(target))
            except Exception as exc:  # noqa: BLE001
                raise _error(exc, f"downloading s3://{bucket}/{prefix}{key}") from None
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        try:
            os.rename(staging, dest)
        except OSError:
            if not (dest.is_dir() and any(dest.iterdir())):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def download_file(uri: str, dest: Path, *, what: str = "S3 object", s3: Any = None) -> Path:
    bucket, key = parse_uri(uri, what)
    s3 = s3 or client()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        s3.download_file(bucket, key, str(tmp))
    except Exception as exc:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        raise _error(exc, f"{what} {uri}") from None
    os.replace(tmp, dest)
    return dest


def upload_folder(folder: Path, uri: str, kms_key_id: str, *, last: str | None = None, s3: Any = None) -> list[str]:
    """Upload every file under `folder` below the prefix `uri` with SSE-KMS; the file named `last` goes last,
    so a reader that waits for it sees a complete folder. Returns the keys written."""
    s3 = s3 or client()
    bucket, prefix = prefix_of(uri)
    files = sorted((p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: (p.name == last, str(p)))
    keys = []
    for file in files:
        key = prefix + file.relative_to(folder).as_posix()
        try:
            s3.upload_file(str(file), bucket, key, ExtraArgs=sse(kms_key_id))
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, f"uploading {file} to s3://{bucket}/{key}") from None
        keys.append(key)
    return keys


def upload_file(file: Path, uri: str, kms_key_id: str, *, s3: Any = None) -> None:
    bucket, key = parse_uri(uri)
    try:
        (s3 or client()).upload_file(str(file), bucket, key, ExtraArgs=sse(kms_key_id))
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, f"uploading {file} to {uri}") from None


def put_json(uri: str, document: dict[str, Any], kms_key_id: str, *, s3: Any = None) -> None:
    bucket, key = parse_uri(uri)
    body = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    try:
        (s3 or client()).put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                                    **sse(kms_key_id))
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, f"writing {uri}") from None


def get_json(uri: str, *, what: str = "S3 object", s3: Any = None) -> dict[str, Any]:
    bucket, key = parse_uri(uri, what)
    try:
        body = (s3 or client()).get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, f"{what} {uri}") from None
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise UsageError(f"{what} {uri}: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UsageError(f"{what} {uri}: expected a JSON object")
    return document


def delete_prefix(uri: str, *, s3: Any = None) -> None:
    s3 = s3 or client()
    bucket, prefix = prefix_of(uri)
    for key in list_keys(uri, s3=s3):
        s3.delete_object(Bucket=bucket, Key=prefix + key)


def sse(kms_key_id: str) -> dict[str, str]:
    """upload_file's ExtraArgs and put_object's parameters: the buckets refuse objects not encrypted with their customer key."""
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.common.s3",
                                     description="Copy an S3 prefix into a local folder (an init container's job).")
    sub = parser.add_subparsers(dest="command", required=True)
    sync = sub.add_parser("sync", help="download every object under an s3:// prefix into a folder")
    sync.add_argument("source", help="s3://bucket/prefix/")
    sync.add_argument("dest", type=Path, help="local folder (created)")

    def go(argv_: Sequence[str] | None) -> int:
        args = parser.parse_args(argv_)
        out = download_prefix(args.source, args.dest, what="source")
        print(json.dumps({"event": "synced", "source": args.source, "dest": str(out),
                          "files": sum(1 for p in out.rglob("*") if p.is_file())}), flush=True)
        return 0

    return run_main(go, argv, prog="python -m workloads.common.s3")


if __name__ == "__main__":
    sys.exit(main())
