"""The SageMaker launcher: the job moto records carries the stack's network, keys, spot and checkpoints."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from workloads.training.launch import main
from workloads.training.report import METRIC_DEFINITIONS, Reporter

ACCOUNT = "123456789012"
OUTPUTS = {
    "environment": "dev",
    "region": "us-east-1",
    "trainingRoleArn": f"arn:aws:iam::{ACCOUNT}:role/aiinfra-dev-training",
    "privateSubnetIds": ["subnet-0a1b2c3d", "subnet-0e1f2a3b"],
    "trainingSecurityGroupId": "sg-0123456789abcdef0",
    "dataKeyArn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111",
    "modelsKeyArn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222",
    "datasetsBucketName": "aiinfra-dev-datasets",
    "modelsBucketName": "aiinfra-dev-models",
    "trainingRepositoryUrl": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/aiinfra-dev-training",
}


def _outputs(tmp_path, **changes):
    data = {**OUTPUTS, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    return path


def _argv(path, *extra):
    return ["--stack-outputs", str(path), "--instance-type", "ml.trn1.32xlarge", "--instance-count", "2",
            "--train", "s3://aiinfra-dev-datasets/demo/train/", "--validation", "s3://aiinfra-dev-datasets/demo/val/",
            "--image-tag", "1.4.0", "--job-name", "demo-trn1", "-p", "epochs=3", "-p", "learning_rate=0.00005",
            "-p", "labels=negative,positive", *extra]


def test_job_recorded_by_moto_has_vpc_keys_spot_checkpoints_and_hyperparameters(aws, tmp_path, capsys):
    code = main(_argv(_outputs(tmp_path), "--max-run", "7200", "--max-wait", "10800"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    assert printed["TrainingJobArn"].endswith(":training-job/demo-trn1")

    job = boto3.client("sagemaker", region_name="us-east-1").describe_training_job(TrainingJobName="demo-trn1")
    assert job["VpcConfig"] == {"SecurityGroupIds": ["sg-0123456789abcdef0"],
                                "Subnets": ["subnet-0a1b2c3d", "subnet-0e1f2a3b"]}
    assert job["ResourceConfig"] == {"InstanceType": "ml.trn1.32xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100,
                                     "VolumeKmsKeyId": OUTPUTS["dataKeyArn"]}
    assert job["OutputDataConfig"] == {"S3OutputPath": "s3://aiinfra-dev-models/training/",
                                       "KmsKeyId": OUTPUTS["modelsKeyArn"]}
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert job["CheckpointConfig"] == {"S3Uri": "s3://aiinfra-dev-datasets/checkpoints/demo-trn1/",
                                       "LocalPath": "/opt/ml/checkpoints"}
    assert job["HyperParameters"] == {"epochs": "3", "learning_rate": "0.00005", "labels": "negative,positive"}
    assert job["RoleArn"] == OUTPUTS["trainingRoleArn"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == OUTPUTS["trainingRepositoryUrl"] + ":1.4.0"
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "validation"]
    assert job["EnableNetworkIsolation"] is True and job["EnableInterContainerTrafficEncryption"] is True


def test_dry_run_request_carries_metric_definitions_matching_the_training_log_lines(tmp_path, capsys):
    path = _outputs(tmp_path, checkpointS3Uri="s3://ckpt-bucket/runs", trainingRepositoryUrl="img")
    assert main(_argv(path, "--no-spot", "--processes-per-instance", "32", "--dry-run")) == 0
    request = json.loads(capsys.readouterr().out)
    assert request["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    assert request["CheckpointConfig"]["S3Uri"] == "s3://ckpt-bucket/runs/demo-trn1/"
    assert request["AlgorithmSpecification"]["TrainingImage"] == "img:1.4.0"
    assert request["Environment"] == {"NPROC_PER_NODE": "32"}
    definitions = {d["Name"]: d["Regex"] for d in request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert definitions == {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}

    import io

    stream = io.StringIO()
    reporter = Reporter("json", 10, stdout=stream)
    reporter.emit({"event": "train", "step": 3, "epoch": 1, "train_loss": 0.6931, "learning_rate": 4.5e-05,
                   "samples_per_second": 812.5})
    reporter.emit({"event": "validation", "step": 3, "epoch": 1, "validation_loss": 0.5,
                   "validation_accuracy": 0.875})
    log = stream.getvalue()
    found = {name: float(re.search(regex, log).group(1)) for name, regex in definitions.items()}
    assert found == {"train:loss": 0.6931, "train:learning_rate": 4.5e-05, "train:samples_per_second": 812.5,
                     "validation:loss": 0.5, "validation:accuracy": 0.875}


@pytest.mark.parametrize(("changes", "extra", "message"), [
    ({"trainingRoleArn": None}, [], "missing stack output 'trainingRoleArn' (IAM role the job runs as"),
    ({"privateSubnetIds": None}, [], "missing stack output 'privateSubnetIds'"),
    ({"privateSubnetIds": []}, [], "stack output 'privateSubnetIds' must be a non-empty list of subnet ids"),
    ({"trainingSecurityGroupId": None}, [], "missing stack output 'trainingSecurityGroupId'"),
    ({"dataKeyArn": "alias/data"}, [], "stack output 'dataKeyArn' must be an ARN, got 'alias/data'"),
    ({"modelsKeyArn": None}, [], "missing stack output 'modelsKeyArn'"),
    ({"datasetsBucketName": None}, [], "missing stack output 'checkpointS3Uri' (or 'datasetsBucketName'"),
    ({"modelsBucketName": None}, [], "missing stack output 'modelsBucketName' (or pass --output-s3-uri)"),
    ({"trainingRepositoryUrl": None}, [], "missing stack output 'trainingRepositoryUrl' (or pass --image-uri)"),
    ({}, ["-p", "epochz=3"], "--hyperparameter: unknown hyperparameter 'epochz'"),
    ({}, ["-p", "epochs=three"], "--hyperparameter: hyperparameter 'epochs' must be an integer, got 'three'"),
    ({}, ["--max-wait", "60"], "--max-wait 60 must be at least --max-run 86400 for spot training"),
    ({}, ["--train", "/local/data"], "--train '/local/data': expected an s3:// URI"),
])
def test_bad_outputs_and_flags_are_one_line(tmp_path, capsys, changes, extra, message):
    code = main(_argv(_outputs(tmp_path, **changes), *extra, "--dry-run"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err, err


def test_help_documents_the_stack_outputs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in ("trainingRoleArn", "privateSubnetIds", "trainingSecurityGroupId", "dataKeyArn", "modelsKeyArn",
                 "checkpointS3Uri", "modelsBucketName", "trainingRepositoryUrl", "datasetsBucketName"):
        assert name in text


def test_the_image_comes_from_an_output_the_stack_exports(tmp_path, capsys):
    """The program exports `trainingRepositoryUrl` (named in contracts/outputs.py), never a `trainingImageUri`."""
    import ast
    from pathlib import Path

    from contracts.outputs import repository_url

    assert repository_url("training") == "trainingRepositoryUrl"
    root = Path(__file__).resolve().parents[2]
    assert "ImageUri" not in (root / "components" / "platform.py").read_text()
    assert "ImageUri" not in (root / "contracts" / "outputs.py").read_text()
    tree = ast.parse(Path(__file__).resolve().parents[2].joinpath("workloads/training/launch.py").read_text())
    assert "trainingImageUri" not in ast.unparse(tree)
    path = _outputs(tmp_path)
    assert main([a for a in _argv(path, "--dry-run") if a not in ("--image-tag", "1.4.0")]) == 2
    assert "--image-tag is required with stack output 'trainingRepositoryUrl'" in capsys.readouterr().err
