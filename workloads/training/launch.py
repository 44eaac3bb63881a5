"""`python -m workloads.training.launch`: start this training workload as a SageMaker training job.

The job's network, keys, role, checkpoint location and image come from the platform stack's outputs (the JSON
`pulumi stack output --json` writes), so a job runs inside the platform's private subnets with its customer
keys and nothing is copied by hand. Managed spot training is on by default; the training code checkpoints to
/opt/ml/checkpoints, which SageMaker syncs to the checkpoint S3 URI and restores after an interruption.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.common.cli import UsageError, run_main
from workloads.training.config import Hyperparameters, merge_hyperparameters
from workloads.training.report import METRIC_DEFINITIONS

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")

# Stack outputs the launcher reads: name -> what it is used for. Alternatives are documented beside each.
STACK_OUTPUTS = {
    "trainingRoleArn": "IAM role the job runs as (RoleArn)",
    "privateSubnetIds": "private subnets for the job's network interfaces (VpcConfig.Subnets)",
    "trainingSecurityGroupId": "security group of the job (VpcConfig.SecurityGroupIds)",
    "dataKeyArn": "KMS key for the instances' storage volumes (ResourceConfig.VolumeKmsKeyId)",
    "modelsKeyArn": "KMS key for the model artifact (OutputDataConfig.KmsKeyId)",
    "checkpointS3Uri": "checkpoint location; else s3://<datasetsBucketName>/checkpoints/",
    "modelsBucketName": "model output location s3://<modelsBucketName>/training/ (unless --output-s3-uri)",
    "trainingRepositoryUrl": "training image repository: the job runs <it>:<--image-tag> (unless --image-uri)",
}


@dataclass(frozen=True)
class StackOutputs:
    """The validated subset of the stack's outputs a training job needs."""

    role_arn: str
    subnet_ids: list[str]
    security_group_id: str
    volume_kms_key: str
    output_kms_key: str
    checkpoint_s3_uri: str
    models_bucket: str | None
    repository_url: str | None
    environment: str | None


def load_stack_outputs(path: Path) -> StackOutputs:
    """Read and check the outputs file; a missing or malformed output is one error naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: stack outputs file not found (write it with `pulumi stack output --json`)") \
            from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable stack outputs ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object of stack outputs")

    def text(name: str, *, required: bool = True) -> str | None:
        value = data.get(name)
        if value is None or value == "":
            if required:
                raise UsageError(f"{path}: missing stack output '{name}' ({STACK_OUTPUTS.get(name, 'required')})")
            return None
        if not isinstance(value, str):
            raise UsageError(f"{path}: stack output '{name}' must be a string, got {type(value).__name__}")
        return value

    subnets = data.get("privateSubnetIds")
    if subnets is None:
        raise UsageError(f"{path}: missing stack output 'privateSubnetIds' ({STACK_OUTPUTS['privateSubnetIds']})")
    if not isinstance(subnets, list) or not subnets or not all(isinstance(s, str) and s for s in subnets):
        raise UsageError(f"{path}: stack output 'privateSubnetIds' must be a non-empty list of subnet ids")
    checkpoint = text("checkpointS3Uri", required=False)
    if checkpoint is None:
        datasets = text("datasetsBucketName", required=False)
        if datasets is None:
            raise UsageError(f"{path}: missing stack output 'checkpointS3Uri' (or 'datasetsBucketName' to derive "
                             "it from)")
        checkpoint = f"s3://{datasets}/checkpoints/"
    for name in ("trainingRoleArn", "dataKeyArn", "modelsKeyArn"):
        value = text(name)
        if not value.startswith("arn:"):
            raise UsageError(f"{path}: stack output '{name}' must be an ARN, got {value!r}")
    return StackOutputs(
        role_arn=text("trainingRoleArn"), subnet_ids=list(subnets),
        security_group_id=text("trainingSecurityGroupId"), volume_kms_key=text("dataKeyArn"),
        output_kms_key=text("modelsKeyArn"), checkpoint_s3_uri=checkpoint,
        models_bucket=text("modelsBucketName", required=False),
        repository_url=text("trainingRepositoryUrl", required=False), environment=text("environment", required=False),
    )


def build_parser() -> argparse.ArgumentParser:
    outputs = "\n".join(f"  {name}: {use}" for name, use in STACK_OUTPUTS.items())
    p = argparse.ArgumentParser(
        prog="python -m workloads.training.launch", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start a SageMaker training job for workloads.training from the platform stack's outputs.",
        epilog=f"Stack outputs read from --stack-outputs:\n{outputs}\n"
               "Alternatives: 'datasetsBucketName' for 'checkpointS3Uri'; --image-uri for "
               "'trainingRepositoryUrl' with --image-tag.",
    )
    p.add_argument("--stack-outputs", type=Path, required=True, help="JSON from `pulumi stack output --json`")
    p.add_argument("--instance-type", required=True, help="e.g. ml.trn1.32xlarge, ml.g5.2xlarge, ml.m5.xlarge")
    p.add_argument("--instance-count", type=int, default=1, help="instances (several: torchrun across them)")
    p.add_argument("--train", required=True, help="s3:// URI of the training JSON lines")
    p.add_argument("--validation", help="s3:// URI of the validation JSON lines")
    p.add_argument("--base-model", help="s3:// URI of a Hugging Face model directory (the 'model' channel)")
    p.add_argument("--hyperparameter", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="a training hyperparameter (repeatable), checked against the training code's list")
    p.add_argument("--job-name", help="training job name (default: aiinfra-train-<UTC timestamp>)")
    p.add_argument("--image-uri", help="training image (default: <stack output trainingRepositoryUrl>:<--image-tag>)")
    p.add_argument("--image-tag", help="tag of the image in the stack's trainingRepositoryUrl")
    p.add_argument("--output-s3-uri", help="where SageMaker writes model.tar.gz (default: s3://<models>/training/)")
    p.add_argument("--checkpoint-s3-uri", help="override the stack's checkpoint location")
    p.add_argument("--no-spot", dest="spot", action="store_false", help="on-demand instead of managed spot")
    p.add_argument("--max-run", type=int, default=24 * 3600, help="seconds of training before SageMaker stops it")
    p.add_argument("--max-wait", type=int, help="spot: seconds to wait for capacity plus training (default: 2 x run)")
    p.add_argument("--volume-size", type=int, default=100, help="GB of encrypted storage per instance")
    p.add_argument("--processes-per-instance", type=int,
                   help="torchrun processes per instance (default: one per GPU or NeuronCore, else 1)")
    p.add_argument("--region", help="AWS region (default: the stack's 'region' output, else the AWS config)")
    p.add_argument("--dry-run", action="store_true", help="print the CreateTrainingJob request, start nothing")
    return p


def _s3(flag: str, value: str) -> str:
    if not value.startswith("s3://") or len(value) <= len("s3://"):
        raise UsageError(f"--{flag} {value!r}: expected an s3:// URI")
    return value


def hyperparameters(pairs: Sequence[str]) -> dict[str, str]:
    """NAME=VALUE pairs, checked against the training code's hyperparameters, as SageMaker's strings."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--hyperparameter {pair!r}: expected NAME=VALUE")
        values[name.replace("-", "_")] = value
    merge_hyperparameters(Hyperparameters(), values, "--hyperparameter")
    return values


def build_request(outputs: StackOutputs, args: argparse.Namespace, *, now: float | None = None) -> dict[str, Any]:
    """The CreateTrainingJob request: VPC, KMS keys, spot, checkpoints, metrics, hyperparameters."""
    name = args.job_name or time.strftime("aiinfra-train-%Y%m%d-%H%M%S", time.gmtime(now))
    if not _JOB_NAME.match(name):
        raise UsageError(f"--job-name {name!r}: 1-63 letters, digits and hyphens, not starting with a hyphen")
    if args.instance_count < 1:
        raise UsageError(f"--instance-count must be at least 1, got {args.instance_count}")
    if not args.instance_type.startswith("ml."):
        raise UsageError(f"--instance-type {args.instance_type!r}: SageMaker instance types start with 'ml.'")
    image = args.image_uri
    if image is None:
        if outputs.repository_url is None:
            raise UsageError(f"{args.stack_outputs}: missing stack output 'trainingRepositoryUrl' (or pass --image-uri)")
        if not args.image_tag:
            raise UsageError("--image-tag is required with stack output 'trainingRepositoryUrl' (or pass --image-uri)")
        image = f"{outputs.repository_url}:{args.image_tag}"
    output_uri = args.output_s3_uri or (f"s3://{outputs.models_bucket}/training/" if outputs.models_bucket else None)
    if output_uri is None:
        raise UsageError(f"{args.stack_outputs}: missing stack output 'modelsBucketName' (or pass --output-s3-uri)")
    checkpoint = (args.checkpoint_s3_uri or outputs.checkpoint_s3_uri).rstrip("/") + f"/{name}/"
    max_wait = args.max_wait if args.max_wait is not None else 2 * args.max_run
    if args.spot and max_wait < args.max_run:
        raise UsageError(f"--max-wait {max_wait} must be at least --max-run {args.max_run} for spot training")

    channels = [("train", "train", args.train), ("validation", "validation", args.validation),
                ("model", "base-model", args.base_model)]
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": outputs.role_arn,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File",
                                   "MetricDefinitions": METRIC_DEFINITIONS,
                                   "EnableSageMakerMetricsTimeSeries": True},
        "HyperParameters": hyperparameters(args.hyperparameter),
        "InputDataConfig": [
            {"ChannelName": channel, "InputMode": "File",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": _s3(flag, uri),
                                             "S3DataDistributionType": "FullyReplicated"}}}
            for channel, flag, uri in channels if uri
        ],
        "OutputDataConfig": {"S3OutputPath": _s3("output-s3-uri", output_uri), "KmsKeyId": outputs.output_kms_key},
        "ResourceConfig": {"InstanceType": args.instance_type, "InstanceCount": args.instance_count,
                           "VolumeSizeInGB": args.volume_size, "VolumeKmsKeyId": outputs.volume_kms_key},
        "VpcConfig": {"SecurityGroupIds": [outputs.security_group_id], "Subnets": outputs.subnet_ids},
        "StoppingCondition": {"MaxRuntimeInSeconds": args.max_run,
                              **({"MaxWaitTimeInSeconds": max_wait} if args.spot else {})},
        "EnableManagedSpotTraining": bool(args.spot),
        "CheckpointConfig": {"S3Uri": _s3("checkpoint-s3-uri", checkpoint), "LocalPath": CHECKPOINT_LOCAL_PATH},
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": args.instance_count > 1,
        "Tags": [{"Key": "managed-by", "Value": "workloads.training.launch"}]
                + ([{"Key": "environment", "Value": outputs.environment}] if outputs.environment else []),
    }
    if args.processes_per_instance:
        if args.processes_per_instance < 1:
            raise UsageError(f"--processes-per-instance must be at least 1, got {args.processes_per_instance}")
        request["Environment"] = {"NPROC_PER_NODE": str(args.processes_per_instance)}
    return request


def main(argv: Sequence[str] | None = None) -> int:
    def go(argv_: Sequence[str] | None) -> int:
        args = build_parser().parse_args(argv_)
        outputs = load_stack_outputs(args.stack_outputs)
        request = build_request(outputs, args)
        if args.dry_run:
            print(json.dumps(request, indent=2))
            return 0
        import boto3

        stack = json.loads(args.stack_outputs.read_text(encoding="utf-8"))
        region = args.region or stack.get("region") or None
        response = boto3.client("sagemaker", region_name=region).create_training_job(**request)
        print(json.dumps({"TrainingJobName": request["TrainingJobName"],
                          "TrainingJobArn": response["TrainingJobArn"],
                          "CheckpointS3Uri": request["CheckpointConfig"]["S3Uri"]}))
        return 0

    return run_main(go, argv, prog="python -m workloads.training.launch")


if __name__ == "__main__":
    sys.exit(main())
