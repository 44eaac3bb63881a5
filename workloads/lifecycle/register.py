"""`register`: package a compiled artifact, upload it with SSE-KMS, and create a model package version.

The version carries its lineage in CustomerMetadataProperties (contracts/lifecycle.py names the keys): the
training run, the dataset location and content hash, the code commit, the compile manifest's hash and the
MLflow run. Its evaluation metrics go twice: as a statistics document that ModelMetrics points at (what
SageMaker Studio shows) and as `aiinfra:metric:<name>` properties, which `approve` reads to apply the gate
without a second S3 read. The version starts PendingManualApproval: nothing deploys it until `approve`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from contracts import lifecycle as lc
from contracts.outputs import REGION
from contracts.storage import COMPILED, MODEL_ARCHIVE
from workloads.common import s3
from workloads.common.cli import UsageError, number_pairs, read_json_object
from workloads.common.tracking import TRACKING_URI_ENV, resolve_uri, run_exists
from workloads.lifecycle import package, stack

METRIC_PREFIX = "aiinfra:metric:"   # CustomerMetadataProperties key of one evaluation metric
EVALUATION_FILE = "evaluation.json"  # beside model.tar.gz; ModelMetrics.ModelQuality.Statistics points at it
# Training's metrics.json entries that are evaluation results (the rest is bookkeeping: step, seconds, ...).
_EVALUATION = re.compile(r"^(validation|eval|test)_[a-z0-9_]+$|^train_loss$")
_METADATA_VALUE = re.compile(r"^[\w\s.:/=+\-@]+$")  # CustomerMetadataValue's pattern, \w for \p{L}\p{N}_
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("register", help="package a compiled artifact and register it, pending approval",
                       description=__doc__.split("\n")[0])
    p.add_argument("--artifact", type=Path, required=True, help="workloads.compilation --out folder")
    p.add_argument("--stack-outputs", type=Path, help="JSON from `pulumi stack output --json`")
    p.add_argument("--model", help=f"served model name: its group from stack output {lc.OUTPUT_MODEL_PACKAGE_GROUPS}")
    p.add_argument("--group", help="model package group name (instead of --model)")
    p.add_argument("--models-bucket", help=f"bucket for the archive (default: stack output {stack.MODELS_BUCKET})")
    p.add_argument("--kms-key-id", help=f"SSE-KMS key (default: stack output {stack.MODELS_KEY})")
    p.add_argument("--image", help=f"serving image (default: stack output {stack.SERVING_REPOSITORY}:<--image-tag>)")
    p.add_argument("--image-tag", help="tag of the serving image")
    p.add_argument("--training-run", required=True, help="SageMaker training job name or EKS run id")
    p.add_argument("--dataset-uri", required=True, help="where the run's training data lives (s3://...)")
    p.add_argument("--dataset", type=Path, help="local copy of the dataset to hash (default: hash --dataset-uri)")
    p.add_argument("--dataset-sha256", help="the dataset's content hash, when already known")
    p.add_argument("--code-commit", help="git commit of the training code (default: `git rev-parse HEAD`)")
    p.add_argument("--metrics", type=Path, help="training metrics.json (its validation_*/eval_*/test_* entries)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE", help="an evaluation metric")
    p.add_argument("--mlflow-run-id", help="MLflow run to link (default: metrics.json's mlflow_run_id)")
    p.add_argument("--mlflow-tracking-uri", help=f"check the run exists there and tag it with the package "
                   f"(default: {TRACKING_URI_ENV})")
    p.add_argument("--description", default="", help="model package description")
    p.add_argument("--region", help="AWS region (default: stack output 'region', else the AWS config)")
    p.set_defaults(run=run)


def evaluation_metrics(metrics_file: Path | None, pairs: list[str]) -> dict[str, float]:
    """The metrics to register: evaluation entries of metrics.json, then --metric flags (which win)."""
    found: dict[str, float] = {}
    if metrics_file is not None:
        document = read_json_object(metrics_file, "training metrics (--metrics)")
        found.update({k: float(v) for k, v in document.items()
                      if _EVALUATION.match(k) and isinstance(v, (int, float)) and not isinstance(v, bool)})
    found.update(number_pairs(pairs, "--metric"))
    if not found:
        raise UsageError("no evaluation metrics: pass --metrics (training metrics.json) or --metric NAME=VALUE")
    return found


def dataset_sha256(local: Path | None, uri: str, *, s3_client: Any = None) -> str:
    """sha256 over (relative name, bytes) of every file, sorted: a local copy and its S3 prefix hash the same."""
    digest = hashlib.sha256()
    if local is not None:
        if not local.exists():
            raise UsageError(f"--dataset {local}: does not exist")
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for file in files:
            digest.update((file.name if local.is_file() else file.relative_to(local).as_posix()).encode() + b"\0")
            digest.update(bytes.fromhex(package.sha256_file(file)))
        return digest.hexdigest()
    if not s3.is_s3(uri):
        raise UsageError(f"--dataset-uri {uri!r}: not s3://; pass --dataset (a local copy) or --dataset-sha256")
    client = s3_client or s3.client()
    bucket, key = s3.parse_uri(uri, "--dataset-uri")
    if key and not key.endswith("/") and _object_exists(client, bucket, key):
        entries = [(key.rsplit("/", 1)[-1], key)]  # one object: hashed under its base name, as a local file
    else:
        prefix = s3.prefix_of(uri, "--dataset-uri")[1]
        entries = [(name, prefix + name) for name in s3.list_keys(uri, s3=client)]
    if not entries:
        raise UsageError(f"--dataset-uri {uri}: no objects there")
    for name, object_key in entries:
        body = client.get_object(Bucket=bucket, Key=object_key)["Body"]
        file_digest = hashlib.sha256()
        for block in iter(lambda: body.read(1 << 20), b""):
            file_digest.update(block)
        digest.update(name.encode() + b"\0")
        digest.update(file_digest.digest())
    return digest.hexdigest()


def _object_exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except Exception:  # noqa: BLE001 - 404 and 403 both mean "treat it as a prefix"
        return False


def code_commit(flag: str | None) -> str:
    if flag:
        if not _COMMIT.match(flag):
            raise UsageError(f"--code-commit {flag!r}: expected a git commit hash (7-40 hex digits)")
        return flag
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        raise UsageError("--code-commit not given and `git rev-parse HEAD` failed here; pass --code-commit") from None
    return out.stdout.strip()


def lineage(args: argparse.Namespace, pkg: package.Package, metrics: dict[str, float],
            mlflow_run: str | None, dataset_hash: str) -> dict[str, str]:
    """CustomerMetadataProperties: lineage keys and one property per metric (values are strings, <= 256)."""
    props = {lc.LINEAGE_TRAINING_RUN: args.training_run, lc.LINEAGE_DATASET_URI: args.dataset_uri,
             lc.LINEAGE_DATASET_SHA256: dataset_hash, lc.LINEAGE_CODE_COMMIT: code_commit(args.code_commit),
             lc.LINEAGE_MANIFEST_SHA256: pkg.manifest_sha256}
    if mlflow_run:
        props[lc.LINEAGE_MLFLOW_RUN] = mlflow_run
    props.update({METRIC_PREFIX + name: repr(value) for name, value in sorted(metrics.items())})
    for key, value in props.items():
        if not 1 <= len(value) <= 256:
            raise UsageError(f"lineage '{key}' is {len(value)} characters; SageMaker allows 1 to 256")
        if not _METADATA_VALUE.match(value):
            raise UsageError(f"lineage '{key}' {value!r}: SageMaker allows only letters, digits, spaces and _.:/=+-@")
    if len(props) > 50:
        raise UsageError(f"{len(props)} metadata properties; SageMaker allows 50 (register fewer metrics)")
    return props


def run(args: argparse.Namespace) -> int:
    import boto3

    outputs = stack.load(args.stack_outputs)
    group = args.group or (outputs.entry(lc.OUTPUT_MODEL_PACKAGE_GROUPS, args.model, why="the model's group")
                           if args.model else None)
    if not group:
        raise UsageError("pass --group, or --model with --stack-outputs")
    bucket = args.models_bucket or outputs.text(stack.MODELS_BUCKET, why="or pass --models-bucket")
    kms_key = args.kms_key_id or outputs.text(stack.MODELS_KEY, why="or pass --kms-key-id")
    image = args.image
    if not image:
        if not args.image_tag:
            raise UsageError("pass --image, or --image-tag with stack output "
                             f"'{stack.SERVING_REPOSITORY}'")
        image = f"{outputs.text(stack.SERVING_REPOSITORY, why='or pass --image')}:{args.image_tag}"
    metrics_doc = read_json_object(args.metrics, "training metrics (--metrics)") if args.metrics else {}
    metrics = evaluation_metrics(args.metrics, args.metric)
    mlflow_run = args.mlflow_run_id or metrics_doc.get("mlflow_run_id")
    tracking_uri = resolve_uri(args.mlflow_tracking_uri)
    if mlflow_run and tracking_uri:
        run_exists(tracking_uri, mlflow_run)
    if args.dataset_sha256 and not _SHA256.match(args.dataset_sha256):
        raise UsageError(f"--dataset-sha256 {args.dataset_sha256!r}: expected 64 lowercase hex digits")
    region = args.region or outputs.values.get(REGION) or None
    s3_client = boto3.client("s3", region_name=region)
    dataset_hash = args.dataset_sha256 or dataset_sha256(args.dataset, args.dataset_uri, s3_client=s3_client)

    with tempfile.TemporaryDirectory(prefix="aiinfra-register-") as tmp:
        pkg = package.build(args.artifact, Path(tmp))
        props = lineage(args, pkg, metrics, mlflow_run, dataset_hash)
        # Content-addressed and never overwritten: a registered version's bytes cannot change under it.
        prefix = f"s3://{bucket}/{COMPILED}{group}/{pkg.archive_sha256[:16]}/"
        model_url = prefix + MODEL_ARCHIVE
        evaluation = {"metrics": {k: {"value": v} for k, v in sorted(metrics.items())},
                      "source": str(args.metrics) if args.metrics else "command line",
                      "manifest_sha256": pkg.manifest_sha256, "archive_sha256": pkg.archive_sha256}
        s3.put_json(prefix + EVALUATION_FILE, evaluation, kms_key, s3=s3_client)
        s3.upload_file(pkg.archive, model_url, kms_key, s3=s3_client)

    request = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": (args.description or f"{pkg.manifest.task} model, {pkg.manifest.target} "
                                    f"target, from {args.training_run}")[:1024],
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_url}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelApprovalStatus": lc.PENDING,
        "MetadataProperties": {"CommitId": props[lc.LINEAGE_CODE_COMMIT], "GeneratedBy": args.training_run},
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                         "S3Uri": prefix + EVALUATION_FILE}}},
        "CustomerMetadataProperties": props,
        # Idempotent retries: the same archive with the same lineage is the same version, not a second one.
        "ClientToken": hashlib.sha256(json.dumps(props, sort_keys=True).encode()
                                      + pkg.archive_sha256.encode()).hexdigest()[:36],
    }
    sagemaker = boto3.client("sagemaker", region_name=region)
    try:
        arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
    except Exception as exc:  # noqa: BLE001 - botocore's ClientError and validation errors
        raise UsageError(f"registering in model package group {group!r}: {exc}") from None
    if mlflow_run and tracking_uri:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=tracking_uri).set_tag(mlflow_run, "aiinfra:model-package-arn", arn)
    print(json.dumps({"event": "registered", "ModelPackageArn": arn, "ModelApprovalStatus": lc.PENDING,
                      "ModelDataUrl": model_url, "CustomerMetadataProperties": props}), flush=True)
    return 0
