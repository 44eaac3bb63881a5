"""The lifecycle end to end on this machine: train a tiny model (tracked in a local MLflow store), compile it,
register it in moto's SageMaker (lineage present), approval refused below the gate and accepted above it,
compare the captured answers of two variants served on real sockets, and the drift job flagging a drifted
capture while passing an undrifted one."""

from __future__ import annotations

import contextlib
import io
import json

import boto3
import pytest
from lifecycle_helpers import BUCKET, IMAGE, compile_artifact, lifecycle, platform, write_capture
from mlflow.tracking import MlflowClient
from serving_helpers import ThreadServer, post_json

from contracts import lifecycle as lc
from workloads.lifecycle import capture, package
from workloads.serving.config import parse_config
from workloads.training.demo import examples, write_demo
from workloads.training.train import main as train

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")
ENDPOINT = "aiinfra-dev-text-classifier"


def _served_capture(model_dir, texts, variant, root):
    """Send `texts` to the real server on `model_dir`; write what SageMaker would capture for that variant."""
    config = parse_config(["--model-dir", str(model_dir), "--no-access-log", "--log-level", "WARNING"], environ={})
    lines = []
    with ThreadServer(config, None) as srv:
        for i in range(0, len(texts), 4):
            batch = texts[i:i + 4]
            status, _, body = post_json(srv.port, "/invocations", {"inputs": batch})
            assert status == 200, body
            lines.append(capture.line(batch, body["outputs"], inference_id=f"req-{i}", event_id=f"{variant}-{i}"))
    return write_capture(root, ENDPOINT, variant, lines)


def test_train_compile_register_approve_compare_drift(aws, tiny_bert_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()

    # 1. Train, tracked.
    demo = write_demo(tmp_path / "demo", train=256, validation=64, seed=5)
    with contextlib.redirect_stdout(io.StringIO()):
        assert train(["--train", str(demo["train"]), "--validation", str(demo["validation"]),
                      "--model-name-or-path", str(tiny_bert_dir), "--model-dir", str(tmp_path / "model"),
                      "--checkpoint-dir", str(tmp_path / "ckpt"), "--sagemaker-base-dir", str(tmp_path / "opt-ml"),
                      "--epochs", "2", "--learning-rate", "5e-3", "--log-format", "json",
                      "--mlflow-tracking-uri", store]) == 0
    metrics_file = tmp_path / "model" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    accuracy = metrics["validation_accuracy"]

    # 2. Compile.
    artifact = compile_artifact(tmp_path / "model", tmp_path / "compiled")

    # 3. Register: the dataset as the run read it from S3, lineage on the version, MLflow run linked both ways.
    outputs = platform(tmp_path, gate={"validation_accuracy": round(accuracy + 0.05, 4)},
                       thresholds={lc.PROMOTION_MIN_AGREEMENT: 0.95, lc.PROMOTION_MIN_PAIRS: 40,
                                   lc.PROMOTION_MAX_ERROR_RATE_DELTA: 0.0})
    boto3.client("s3").upload_file(str(demo["train"]), BUCKET, "training-data/current/train/train.jsonl")
    code, lines, err = lifecycle(
        capsys, "register", "--artifact", artifact, "--stack-outputs", outputs, "--model", "text-classifier",
        "--image", IMAGE, "--training-run", "eks-run-7f3a", "--dataset-uri",
        f"s3://{BUCKET}/training-data/current/train/", "--code-commit", "0123abc", "--metrics", metrics_file,
        "--mlflow-tracking-uri", store)
    assert code == 0, err
    arn = lines[-1]["ModelPackageArn"]
    described = boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)
    props = described["CustomerMetadataProperties"]
    assert set(lc.LINEAGE_KEYS) <= set(props) and described["ModelApprovalStatus"] == lc.PENDING
    assert props[lc.LINEAGE_MLFLOW_RUN] == metrics["mlflow_run_id"]
    assert props[lc.LINEAGE_MANIFEST_SHA256] == package.sha256_file(artifact / "manifest.json")
    from workloads.lifecycle.register import dataset_sha256

    assert props[lc.LINEAGE_DATASET_SHA256] == dataset_sha256(demo["train"].parent, "")
    run = MlflowClient(tracking_uri=store).get_run(metrics["mlflow_run_id"])
    assert run.data.tags["aiinfra:model-package-arn"] == arn

    # 4. Approval: refused below the stack's gate, accepted above the one a reviewer passes.
    code, _, err = lifecycle(capsys, "approve", "--model-package-arn", arn, "--stack-outputs", outputs)
    assert code == 2 and "approval refused: validation_accuracy" in err
    code, _, err = lifecycle(capsys, "approve", "--model-package-arn", arn, "--gate",
                             f"validation_accuracy={accuracy - 0.05:.4f}")
    assert code == 0, err
    assert boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == lc.APPROVED

    # 5. Compare: the registered package (as SageMaker extracts it) in production, the eager model as a shadow.
    model_url = described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    archive = tmp_path / "downloaded" / "model.tar.gz"
    archive.parent.mkdir()
    boto3.client("s3").download_file(BUCKET, model_url.split(f"s3://{BUCKET}/", 1)[1], str(archive))
    served = package.extract(archive, tmp_path / "opt" / "ml" / "model")
    live = [r["text"] for r in examples(240, 21)]
    prod = _served_capture(served, live, "production", tmp_path / "capture")
    shadow = _served_capture(tmp_path / "model", live, "shadow", tmp_path / "capture")
    code, lines, err = lifecycle(capsys, "compare", "--production", prod, "--candidate", shadow,
                                 "--stack-outputs", outputs)
    assert code == 0, err
    assert lines[-1]["verdict"] == "promote" and lines[-1]["paired_inputs"] == 240
    assert lines[-1]["agreement"]["kind"] == "label" and lines[-1]["agreement"]["value"] >= 0.95

    # 6. Drift: baseline from the training data and the package's answers to it; the live capture passes,
    #    a capture of shifted traffic through the same server is flagged and published.
    code, _, err = lifecycle(capsys, "baseline", "--train", demo["train"], "--out", tmp_path / "baseline",
                             "--model-dir", served)
    assert code == 0, err
    code, lines, err = lifecycle(capsys, "drift", "--capture", prod, "--baseline", tmp_path / "baseline",
                                 "--out", tmp_path / "drift-ok", "--endpoint", ENDPOINT, "--publish-metrics")
    assert code == 0 and lines[-1]["status"] == "ok", lines
    shifted = [t + " refund invoice shipping delayed again" for t in live]
    drifted = _served_capture(served, shifted, "production", tmp_path / "capture-drifted")
    code, lines, err = lifecycle(capsys, "drift", "--capture", drifted, "--baseline", tmp_path / "baseline",
                                 "--out", tmp_path / "drift-bad", "--endpoint", ENDPOINT, "--publish-metrics")
    assert code == 0 and lines[-1]["status"] == "drift" and "input.oov_rate" in lines[-1]["drifted"], lines
    points = boto3.client("cloudwatch").list_metrics(Namespace=lc.DRIFT_NAMESPACE, MetricName=lc.DRIFT_METRIC)
    assert points["Metrics"][0]["Dimensions"] == [{"Name": lc.DRIFT_DIMENSION, "Value": ENDPOINT}]
