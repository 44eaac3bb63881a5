"""register / approve / reject against moto's S3 and SageMaker: the archive SageMaker loads, the lineage on the
version, and an approval gate that refuses below its thresholds and accepts above them."""

from __future__ import annotations

import json
import tarfile

import boto3
import pytest
from lifecycle_helpers import BUCKET, GROUP, IMAGE, compile_artifact, lifecycle, platform
from serving_helpers import ThreadServer, post_json

from contracts import lifecycle as lc
from contracts.storage import MANIFEST_FILE
from workloads.lifecycle import package
from workloads.lifecycle.register import METRIC_PREFIX, dataset_sha256
from workloads.serving.config import parse_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def artifact(tiny_bert_dir, tmp_path_factory):
    return compile_artifact(tiny_bert_dir, tmp_path_factory.mktemp("compiled") / "artifact")


def _register(capsys, tmp_path, artifact, outputs, *extra):
    dataset = tmp_path / "train.jsonl"
    if not dataset.exists():
        dataset.write_text('{"text": "good film", "label": "positive"}\n', encoding="utf-8")
    metrics = tmp_path / "metrics.json"
    if not metrics.exists():
        metrics.write_text(json.dumps({"validation_accuracy": 0.75, "validation_loss": 0.5, "step": 48,
                                       "seconds": 3.2}), encoding="utf-8")
    return lifecycle(capsys, "register", "--artifact", artifact, "--stack-outputs", outputs, "--model",
                     "text-classifier", "--image", IMAGE, "--training-run", "aiinfra-train-20261202-070000",
                     "--dataset-uri", f"s3://{BUCKET}/training-data/current/train.jsonl", "--dataset", dataset,
                     "--code-commit", COMMIT, "--metrics", metrics, *extra)


def test_archive_has_the_files_at_its_root_and_is_reproducible(artifact, tmp_path):
    first = package.build(artifact, tmp_path / "a")
    second = package.build(artifact, tmp_path / "b")
    assert first.archive_sha256 == second.archive_sha256, "same artifact, same bytes"
    with tarfile.open(first.archive, "r:gz") as tar:
        names = tar.getnames()
    assert sorted(names) == sorted(p.name for p in artifact.iterdir() if p.is_file())
    assert MANIFEST_FILE in names and "model.pt" in names and all("/" not in n for n in names)
    assert first.manifest_sha256 == package.sha256_file(artifact / MANIFEST_FILE)


def test_server_loads_the_package_as_sagemaker_extracts_it(artifact, tmp_path):
    pkg = package.build(artifact, tmp_path / "pkg")
    model_dir = package.extract(pkg.archive, tmp_path / "opt" / "ml" / "model")  # what SageMaker does first
    config = parse_config(["--model-dir", str(model_dir), "--no-access-log", "--log-level", "WARNING"], environ={})
    with ThreadServer(config, None) as srv:
        status, _, body = post_json(srv.port, "/invocations", {"inputs": ["a good film", "the worst food"]})
    assert status == 200, body
    assert [set(o["scores"]) for o in body["outputs"]] == [{"negative", "positive"}] * 2


def test_register_uploads_with_sse_kms_and_records_lineage(aws, artifact, tmp_path, capsys):
    outputs = platform(tmp_path)
    code, lines, err = _register(capsys, tmp_path, artifact, outputs, "--mlflow-run-id", "abc123")
    assert code == 0, err
    arn = lines[-1]["ModelPackageArn"]
    described = boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == lc.PENDING and described["ModelPackageGroupName"] == GROUP
    props = described["CustomerMetadataProperties"]
    assert set(lc.LINEAGE_KEYS) <= set(props), "every lineage field is recorded"
    assert props[lc.LINEAGE_TRAINING_RUN] == "aiinfra-train-20261202-070000"
    assert props[lc.LINEAGE_CODE_COMMIT] == COMMIT and props[lc.LINEAGE_MLFLOW_RUN] == "abc123"
    assert props[lc.LINEAGE_MANIFEST_SHA256] == package.sha256_file(artifact / MANIFEST_FILE)
    assert props[lc.LINEAGE_DATASET_SHA256] == dataset_sha256(tmp_path / "train.jsonl", "")
    assert props[METRIC_PREFIX + "validation_accuracy"] == "0.75" and METRIC_PREFIX + "step" not in props
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == IMAGE
    url = container["ModelDataUrl"]
    assert url.startswith(f"s3://{BUCKET}/compiled/{GROUP}/") and url.endswith("/model.tar.gz")
    key_arn = json.loads(outputs.read_text())["modelsKeyArn"]
    s3 = boto3.client("s3")
    for uri in (url, described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]):
        head = s3.head_object(Bucket=BUCKET, Key=uri.split(f"s3://{BUCKET}/", 1)[1])
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn
    evaluation = json.loads(s3.get_object(Bucket=BUCKET, Key=described["ModelMetrics"]["ModelQuality"]["Statistics"]
                                          ["S3Uri"].split(f"s3://{BUCKET}/", 1)[1])["Body"].read())
    assert evaluation["metrics"]["validation_accuracy"] == {"value": 0.75}


def test_dataset_hash_of_an_s3_copy_equals_the_local_one(aws, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    folder = tmp_path / "data"
    (folder / "part").mkdir(parents=True)
    (folder / "a.jsonl").write_text("one\n")
    (folder / "part" / "b.jsonl").write_text("two\n")
    for rel in ("a.jsonl", "part/b.jsonl"):
        s3.upload_file(str(folder / rel), BUCKET, f"train/{rel}")
    assert dataset_sha256(None, f"s3://{BUCKET}/train/") == dataset_sha256(folder, "")
    (folder / "a.jsonl").write_text("changed\n")
    assert dataset_sha256(None, f"s3://{BUCKET}/train/") != dataset_sha256(folder, "")


def test_approval_is_refused_below_the_gate_and_accepted_above(aws, artifact, tmp_path, capsys):
    outputs = platform(tmp_path, gate={"validation_accuracy": 0.8})
    code, lines, err = _register(capsys, tmp_path, artifact, outputs)
    arn = lines[-1]["ModelPackageArn"]
    sagemaker = boto3.client("sagemaker")

    code, _, err = lifecycle(capsys, "approve", "--model-package-arn", arn, "--stack-outputs", outputs)
    assert code == 2
    assert err == (f"python -m workloads.lifecycle: error: approval refused: validation_accuracy 0.75 is below the "
                   f"gate's 0.8 ({arn})")
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == lc.PENDING

    code, _, err = lifecycle(capsys, "approve", "--model-package-arn", arn, "--gate", "f1=0.5")
    assert code == 2 and "has no registered metric 'f1' (registered: validation_accuracy, validation_loss)" in err

    code, lines, err = lifecycle(capsys, "approve", "--model-package-arn", arn, "--gate", "validation_accuracy=0.7",
                                 "--description", "reviewed")
    assert code == 0, err
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == lc.APPROVED
    assert described["ApprovalDescription"] == "reviewed; gate passed: validation_accuracy 0.75 >= 0.7"
    assert set(lc.LINEAGE_KEYS) - {lc.LINEAGE_MLFLOW_RUN} <= set(described["CustomerMetadataProperties"])


def test_reject_needs_a_reason_and_records_it(aws, artifact, tmp_path, capsys):
    outputs = platform(tmp_path)
    _, lines, _ = _register(capsys, tmp_path, artifact, outputs)
    arn = lines[-1]["ModelPackageArn"]
    code, _, err = lifecycle(capsys, "reject", "--model-package-arn", arn)
    assert code == 2 and err.endswith("reject needs --description (the reason is kept on the version)")
    code, _, err = lifecycle(capsys, "reject", "--model-package-arn", arn, "--description", "bias review failed")
    assert code == 0, err
    described = boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == (lc.REJECTED, "bias review failed")


@pytest.mark.parametrize("extra, message", [
    (["--model", "other"], "stack output 'modelPackageGroupNames' has no entry 'other' (has: text-classifier)"),
    (["--metric", "accuracy=high"], "--metric 'accuracy=high': expected NAME=NUMBER"),
    (["--code-commit", "main"], "--code-commit 'main': expected a git commit hash (7-40 hex digits)"),
    (["--dataset-sha256", "xyz"], "--dataset-sha256 'xyz': expected 64 lowercase hex digits"),
    (["--training-run", "run#7"], "lineage 'aiinfra:training-run' 'run#7': SageMaker allows only letters, digits, "
                                  "spaces and _.:/=+-@"),
])
def test_bad_register_input_is_one_line(aws, artifact, tmp_path, capsys, extra, message):
    outputs = platform(tmp_path)
    code, _, err = _register(capsys, tmp_path, artifact, outputs, *extra)
    assert code == 2
    assert err == f"python -m workloads.lifecycle: error: {message}" or err.endswith(message), err
    assert "\n" not in err


def test_an_artifact_folder_without_manifest_is_refused(aws, tmp_path, capsys):
    outputs = platform(tmp_path)
    (tmp_path / "empty").mkdir()
    code, _, err = _register(capsys, tmp_path, tmp_path / "empty", outputs)
    assert code == 2 and "no manifest (is this a compilation output directory?)" in err
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
