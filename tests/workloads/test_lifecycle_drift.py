"""baseline and drift: statistics from training JSON lines, KS / chi-square / PSI on generated capture, the
report and the CloudWatch metrics the drift alarm watches, locally and as a Model Monitor container."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from lifecycle_helpers import classifier_answer, lifecycle, write_capture

from contracts import lifecycle as lc
from workloads.lifecycle import capture
from workloads.training.demo import examples, write_jsonl

REPO = Path(__file__).resolve().parents[2]
ENDPOINT = "aiinfra-prod-text-classifier"


def _capture(tmp_path, records, *, flip=0.0, suffix="", variant="production"):
    rng = np.random.default_rng(3)
    lines = []
    for i, r in enumerate(records):
        label = r["label"] if rng.random() >= flip else "positive"
        lines.append(capture.line([r["text"]], [classifier_answer(label)], inference_id=f"{suffix}{i}",
                                  event_id=f"e{suffix}{i}"))
    return write_capture(tmp_path / f"capture{suffix}", ENDPOINT, variant, lines)


def _shifted(records):
    """Longer texts with words the training data never had: what a new client population might send."""
    return [{"text": r["text"] + " refund shipping invoice delayed again", "label": r["label"]} for r in records]


@pytest.fixture
def baseline_dir(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train" / "train.jsonl", examples(1500, 0))
    code, lines, err = lifecycle(capsys, "baseline", "--train", train, "--out", tmp_path / "baseline")
    assert code == 0, err
    return tmp_path / "baseline"


def test_baseline_holds_every_signal_with_its_test_inputs(baseline_dir):
    stats = json.loads((baseline_dir / lc.BASELINE_STATISTICS_FILE).read_text())
    assert stats["records"] == 1500 and stats["vocabulary"][-1] == "<other>"
    kinds = {name: s["kind"] for name, s in stats["signals"].items()}
    assert kinds == {"input.chars": "continuous", "input.words": "continuous", "input.oov_rate": "continuous",
                     "input.projection.0": "continuous", "input.projection.1": "continuous",
                     "input.projection.2": "continuous", "input.projection.3": "continuous",
                     "input.vocabulary": "categorical", "output.label": "categorical"}
    label = stats["signals"]["output.label"]
    assert label["categories"] == ["negative", "positive"] and label["proportions"] == [0.5, 0.5]
    words = stats["signals"]["input.words"]
    assert abs(sum(words["proportions"]) - 1) < 1e-9 and len(words["proportions"]) == len(words["edges"]) + 1
    assert words["sample"] == sorted(words["sample"])
    constraints = json.loads((baseline_dir / lc.BASELINE_CONSTRAINTS_FILE).read_text())
    assert constraints == {"version": 1, "alpha": 0.01, "psi": 0.1, "min_records": 30}


def test_undrifted_capture_passes_and_publishes_zero(aws, baseline_dir, tmp_path, capsys):
    source = _capture(tmp_path, examples(800, 11))
    code, lines, err = lifecycle(capsys, "drift", "--capture", source, "--baseline", baseline_dir, "--out",
                                 tmp_path / "report", "--endpoint", ENDPOINT, "--publish-metrics")
    assert code == 0, err
    assert lines[-1]["status"] == "ok" and lines[-1]["drifted"] == [] and lines[-1]["published"]
    report = json.loads((tmp_path / "report" / lc.DRIFT_REPORT_FILE).read_text())
    assert report["inputs"] == 800 and report["max_psi"] < 0.1
    assert {s["test"] for s in report["signals"].values()} == {"ks", "chi-square"}
    assert json.loads((tmp_path / "report" / "constraint_violations.json").read_text()) == {"violations": []}
    assert _metric(lc.DRIFT_METRIC) == 0.0
    assert _metric(lc.DRIFT_MAX_PSI_METRIC) == pytest.approx(report["max_psi"])


def test_drifted_inputs_are_flagged_reported_and_published(aws, baseline_dir, tmp_path, capsys):
    source = _capture(tmp_path, _shifted(examples(800, 12)))
    code, lines, err = lifecycle(capsys, "drift", "--capture", source, "--baseline", baseline_dir, "--out",
                                 tmp_path / "report", "--endpoint", ENDPOINT, "--publish-metrics")
    assert code == 0, err
    report = json.loads((tmp_path / "report" / lc.DRIFT_REPORT_FILE).read_text())
    assert report["status"] == "drift"
    assert {"input.chars", "input.words", "input.oov_rate", "input.vocabulary"} <= set(report["drifted"])
    assert "output.label" not in report["drifted"], "the answers did not change"
    assert report["signals"]["input.oov_rate"]["p_value"] < 0.01 and report["signals"]["input.words"]["psi"] > 0.2
    violations = json.loads((tmp_path / "report" / "constraint_violations.json").read_text())["violations"]
    assert {v["feature_name"] for v in violations} == set(report["drifted"])
    assert all(v["constraint_check_type"] == "baseline_drift_check" for v in violations)
    assert _metric(lc.DRIFT_METRIC) == float(len(report["drifted"]))


def test_drifted_predictions_are_flagged(baseline_dir, tmp_path, capsys):
    source = _capture(tmp_path, examples(800, 13), flip=0.5)
    code, lines, _ = lifecycle(capsys, "drift", "--capture", source, "--baseline", baseline_dir, "--out", tmp_path)
    assert code == 0 and lines[-1]["drifted"] == ["output.label"]


def test_embedding_answers_drift_on_their_projections(tiny_bert_encoder_dir, tmp_path, capsys):
    from workloads.serving.model import load_predictor

    records = examples(600, 4)
    train = write_jsonl(tmp_path / "train.jsonl", records)
    code, _, err = lifecycle(capsys, "baseline", "--train", train, "--out", tmp_path / "baseline", "--model-dir",
                             tiny_bert_encoder_dir)
    assert code == 0, err
    stats = json.loads((tmp_path / "baseline" / lc.BASELINE_STATISTICS_FILE).read_text())
    assert "output.projection.0" in stats["signals"] and "output.label" not in stats["signals"]
    predictor = load_predictor(tiny_bert_encoder_dir)
    live = examples(400, 5)
    vectors = predictor.predict([r["text"] for r in live])
    rotated = np.roll(vectors, 7, axis=1)  # a different model's space: same lengths, other directions
    for name, answers in (("same", vectors), ("rotated", rotated)):
        lines = [capture.line([r["text"]], [v.tolist()], event_id=f"{name}{i}") for i, (r, v) in
                 enumerate(zip(live, answers))]
        write_capture(tmp_path / name, "e", "primary", lines)
    _, same, _ = lifecycle(capsys, "drift", "--capture", tmp_path / "same", "--baseline", tmp_path / "baseline",
                           "--out", tmp_path / "r1")
    _, moved, _ = lifecycle(capsys, "drift", "--capture", tmp_path / "rotated", "--baseline", tmp_path / "baseline",
                            "--out", tmp_path / "r2")
    assert same[-1]["status"] == "ok"
    assert moved[-1]["status"] == "drift" and all(s.startswith("output.projection.") for s in moved[-1]["drifted"])


def test_model_monitor_container_contract(baseline_dir, tmp_path):
    """The job definition's command, with only the environment SageMaker gives a monitoring job."""
    source = _capture(tmp_path, _shifted(examples(300, 14))).parent.parent  # dataset_source/<endpoint>/<variant>/...
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({lc.MONITOR_DATASET_SOURCE: str(source), lc.MONITOR_OUTPUT_PATH: str(tmp_path / "resultdata"),
                lc.MONITOR_BASELINE_STATISTICS: str(baseline_dir / lc.BASELINE_STATISTICS_FILE),
                lc.MONITOR_BASELINE_CONSTRAINTS: str(baseline_dir / lc.BASELINE_CONSTRAINTS_FILE),
                lc.MONITOR_ENDPOINT_NAME: ENDPOINT, lc.MONITOR_PUBLISH_METRICS: "Disabled",
                "dataset_format": '{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput","endpointOutput"]}}',
                "PYTHONPATH": str(REPO)})
    command = [sys.executable if part == "python" else part for part in lc.DRIFT_JOB_COMMAND]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "resultdata" / lc.DRIFT_REPORT_FILE).read_text())
    assert report["endpoint"] == ENDPOINT and report["status"] == "drift" and report["inputs"] == 300
    assert (tmp_path / "resultdata" / "constraint_violations.json").is_file()


def test_model_monitor_mode_publishes_when_enabled(aws, baseline_dir, tmp_path, monkeypatch, capsys):
    source = _capture(tmp_path, examples(200, 15)).parent.parent
    for name, value in {lc.MONITOR_DATASET_SOURCE: str(source), lc.MONITOR_OUTPUT_PATH: str(tmp_path / "out"),
                        lc.MONITOR_BASELINE_STATISTICS: str(baseline_dir / lc.BASELINE_STATISTICS_FILE),
                        lc.MONITOR_ENDPOINT_NAME: ENDPOINT, lc.MONITOR_PUBLISH_METRICS: "Enabled"}.items():
        monkeypatch.setenv(name, value)
    code, lines, err = lifecycle(capsys, "drift")
    assert code == 0 and lines[-1]["published"], err
    assert _metric(lc.DRIFT_METRIC) == 0.0


def test_too_few_records_are_not_judged_and_not_published(aws, baseline_dir, tmp_path, capsys):
    source = _capture(tmp_path, _shifted(examples(10, 16)))
    code, lines, _ = lifecycle(capsys, "drift", "--capture", source, "--baseline", baseline_dir, "--out", tmp_path,
                               "--endpoint", ENDPOINT, "--publish-metrics")
    assert code == 0 and lines[-1]["status"] == "insufficient-data" and lines[-1]["drifted"] == []
    assert boto3.client("cloudwatch").list_metrics(Namespace=lc.DRIFT_NAMESPACE)["Metrics"] == []


def test_baseline_reads_s3_and_uploads_with_sse_kms(aws, tmp_path, capsys):
    s3 = boto3.client("s3")
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    for bucket in ("aiinfra-prod-datasets", "aiinfra-prod-models"):
        s3.create_bucket(Bucket=bucket)
    write_jsonl(tmp_path / "train.jsonl", examples(200, 1))
    s3.upload_file(str(tmp_path / "train.jsonl"), "aiinfra-prod-datasets", "training-data/current/train/part.jsonl")
    target = f"s3://aiinfra-prod-models/{lc.baseline_prefix(ENDPOINT)}"
    code, lines, err = lifecycle(capsys, "baseline", "--train", "s3://aiinfra-prod-datasets/training-data/current/train/",
                                 "--out", tmp_path / "b", "--upload", target, "--kms-key-id", key)
    assert code == 0, err
    for name in (lc.BASELINE_STATISTICS_FILE, lc.BASELINE_CONSTRAINTS_FILE):
        head = s3.head_object(Bucket="aiinfra-prod-models", Key=f"{lc.baseline_prefix(ENDPOINT)}{name}")
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key


@pytest.mark.parametrize("argv, message", [
    (["drift"], "no --capture and no dataset_source in the environment: run with --capture and --baseline locally, "
                "or as a Model Monitor job"),
    (["drift", "--capture", "x.jsonl"], "--capture needs --baseline (write one with `python -m workloads.lifecycle "
                                        "baseline`)"),
    (["baseline", "--train", "t.jsonl", "--out", "o", "--upload", "s3://b/baselines/e/"],
     "--upload needs --kms-key-id (the models bucket accepts only SSE-KMS objects)"),
])
def test_bad_drift_input_is_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv(lc.MONITOR_DATASET_SOURCE, raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = lifecycle(capsys, *argv)
    assert code == 2 and err == f"python -m workloads.lifecycle: error: {message}"


def test_publishing_needs_an_endpoint(baseline_dir, tmp_path, capsys):
    source = _capture(tmp_path, examples(50, 17))
    code, _, err = lifecycle(capsys, "drift", "--capture", source, "--baseline", baseline_dir, "--publish-metrics")
    assert code == 2 and err.endswith("--publish-metrics needs --endpoint (the metrics' Endpoint dimension)")


def _metric(name: str) -> float:
    """The latest datapoint of one drift metric for ENDPOINT, as the alarm would read it."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=lc.DRIFT_NAMESPACE, MetricName=name, Dimensions=[{"Name": lc.DRIFT_DIMENSION, "Value": ENDPOINT}],
        StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=10), Period=60,
        Statistics=["Maximum"])["Datapoints"]
    assert len(points) == 1, points
    return points[0]["Maximum"]


def test_model_monitor_window_skips_records_outside_it(baseline_dir, tmp_path, monkeypatch, capsys):
    """Model Monitor may hand the job more hours than its window; only [start_time, end_time) is judged."""
    inside = [capture.line([r["text"]], [classifier_answer(r["label"])], event_id=f"in{i}",
                           time="2026-12-02T08:15:00Z") for i, r in enumerate(examples(300, 18))]
    before = [capture.line([r["text"]], [classifier_answer(r["label"])], event_id=f"out{i}",
                           time="2026-12-02T07:59:59Z") for i, r in enumerate(_shifted(examples(300, 19)))]
    source = write_capture(tmp_path / "source", ENDPOINT, "primary", before + inside).parent.parent
    for name, value in {lc.MONITOR_DATASET_SOURCE: str(source), lc.MONITOR_OUTPUT_PATH: str(tmp_path / "out"),
                        lc.MONITOR_BASELINE_STATISTICS: str(baseline_dir / lc.BASELINE_STATISTICS_FILE),
                        lc.MONITOR_ENDPOINT_NAME: ENDPOINT, "start_time": "2026-12-02T08:00:00Z",
                        "end_time": "2026-12-02T09:00:00Z"}.items():
        monkeypatch.setenv(name, value)
    code, lines, err = lifecycle(capsys, "drift")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / lc.DRIFT_REPORT_FILE).read_text())
    assert (report["status"], report["inputs"], report["outside_window"]) == ("ok", 300, 300)
    monkeypatch.setenv("start_time", "yesterday")
    code, _, err = lifecycle(capsys, "drift")
    assert code == 2 and err.endswith("start_time 'yesterday': expected an ISO 8601 time such as 2026-12-02T08:00:00Z")
