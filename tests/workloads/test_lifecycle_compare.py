"""compare on generated SageMaker capture of two variants: agreement, error and latency deltas, the verdict."""

from __future__ import annotations

import numpy as np
import pytest
from lifecycle_helpers import classifier_answer, lifecycle, write_capture

from contracts import lifecycle as lc
from workloads.lifecycle import capture

ENDPOINT = "aiinfra-prod-text-classifier"


def _classifier_captures(tmp_path, *, disagree: float, errors: float = 0.0, latency: tuple | None = None,
                         ids: bool = True, n: int = 200):
    rng = np.random.default_rng(0)
    prod, cand = [], []
    for i in range(n):
        texts = [f"text {i} a", f"text {i} b"]
        labels = [("positive", "negative")[int(rng.integers(2))] for _ in texts]
        flipped = [("negative" if l == "positive" else "positive") if rng.random() < disagree else l for l in labels]
        rid = f"req-{i}" if ids else None
        prod.append(capture.line(texts, [classifier_answer(l) for l in labels], inference_id=rid, event_id=f"p{i}",
                                 latency_ms=latency[0] + rng.random() if latency else None))
        failed = rng.random() < errors
        cand.append(capture.line(texts, None if failed else [classifier_answer(l, 0.8) for l in flipped],
                                 inference_id=rid, event_id=f"c{i}",
                                 latency_ms=latency[1] + rng.random() if latency else None))
    return (write_capture(tmp_path, ENDPOINT, "production", prod),
            write_capture(tmp_path, ENDPOINT, "shadow", cand))


def _compare(capsys, prod, cand, *thresholds):
    flags = [x for t in thresholds for x in ("--threshold", t)]
    return lifecycle(capsys, "compare", "--production", prod, "--candidate", cand, *flags)


def test_agreeing_classifier_is_promoted(tmp_path, capsys):
    prod, cand = _classifier_captures(tmp_path, disagree=0.01)
    code, lines, err = _compare(capsys, prod, cand, "minAgreement=0.95", "minPairs=300", "maxErrorRateDelta=0.01")
    assert code == 0, err
    report = lines[-1]
    assert report["verdict"] == "promote" and report["paired_inputs"] == 400
    assert report["agreement"]["kind"] == "label" and 0.97 <= report["agreement"]["value"] < 1.0
    assert report["production"]["requests"] == report["candidate"]["requests"] == 200
    assert all(c["passed"] for c in report["checks"])


def test_disagreeing_classifier_is_held_with_the_failing_check(tmp_path, capsys):
    prod, cand = _classifier_captures(tmp_path, disagree=0.2)
    code, lines, _ = _compare(capsys, prod, cand, "minAgreement=0.95")
    assert code == 1
    report = lines[-1]
    assert report["verdict"] == "hold" and report["agreement"]["value"] < 0.9
    assert [c["check"] for c in report["checks"] if c["passed"] is False] == [lc.PROMOTION_MIN_AGREEMENT]


def test_errors_and_latency_deltas_hold_a_candidate(tmp_path, capsys):
    prod, cand = _classifier_captures(tmp_path, disagree=0.0, errors=0.1, latency=(10.0, 25.0))
    code, lines, _ = _compare(capsys, prod, cand, "minAgreement=0.9", "maxErrorRateDelta=0.02",
                              "maxLatencyP99Ratio=1.5")
    report = lines[-1]
    assert code == 1 and report["verdict"] == "hold"
    assert report["production"]["errors"] == 0 and 0.05 < report["candidate"]["error_rate"] < 0.15
    assert report["error_rate_delta"] == pytest.approx(report["candidate"]["error_rate"])
    assert 14 < report["latency_p99_delta_ms"] < 16
    failed = {c["check"] for c in report["checks"] if c["passed"] is False}
    assert failed == {lc.PROMOTION_MAX_ERROR_RATE_DELTA, lc.PROMOTION_MAX_LATENCY_RATIO}


def test_latency_is_not_judged_when_the_capture_has_none(tmp_path, capsys):
    prod, cand = _classifier_captures(tmp_path, disagree=0.0)
    code, lines, _ = _compare(capsys, prod, cand, "minAgreement=0.9", "maxLatencyP99Ratio=1.5")
    assert code == 0
    latency = [c for c in lines[-1]["checks"] if c["check"] == lc.PROMOTION_MAX_LATENCY_RATIO][0]
    assert latency["passed"] is None and latency["note"] == "no latency in the capture; not judged"


def test_requests_pair_by_body_without_inference_ids(tmp_path, capsys):
    prod, cand = _classifier_captures(tmp_path, disagree=0.0, ids=False, n=50)
    code, lines, _ = _compare(capsys, prod, cand, "minAgreement=0.99")
    assert code == 0 and lines[-1]["paired_inputs"] == 100 and lines[-1]["agreement"]["value"] == 1.0


@pytest.mark.parametrize("noise, verdict", [(0.01, "promote"), (3.0, "hold")])
def test_embedding_variants_are_judged_by_cosine(tmp_path, capsys, noise, verdict):
    rng = np.random.default_rng(1)
    prod, cand = [], []
    for i in range(100):
        vectors = rng.normal(size=(2, 16))
        prod.append(capture.line(["a", "b"], vectors.tolist(), inference_id=f"r{i}", event_id=f"p{i}"))
        other = vectors + rng.normal(scale=noise, size=vectors.shape)
        cand.append(capture.line(["a", "b"], other.tolist(), inference_id=f"r{i}", event_id=f"c{i}"))
    code, lines, _ = _compare(capsys, write_capture(tmp_path, "e", "production", prod),
                              write_capture(tmp_path, "e", "shadow", cand), "minAgreement=0.95")
    report = lines[-1]
    assert report["agreement"]["kind"] == "cosine" and report["verdict"] == verdict
    assert code == (0 if verdict == "promote" else 1)
    assert report["agreement"]["min"] <= report["agreement"]["p05"] <= report["agreement"]["value"]


def test_thresholds_come_from_the_stack_outputs(tmp_path, capsys):
    import json

    prod, cand = _classifier_captures(tmp_path, disagree=0.05, n=60)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({lc.OUTPUT_PROMOTION_THRESHOLDS: {"minAgreement": 0.99, "minPairs": 10}}))
    code, lines, _ = lifecycle(capsys, "compare", "--production", prod, "--candidate", cand, "--stack-outputs",
                               outputs, "--report", tmp_path / "report.json")
    assert code == 1 and {c["check"]: c["threshold"] for c in lines[-1]["checks"]} == {"minPairs": 10,
                                                                                       "minAgreement": 0.99}
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "hold"


def test_capture_in_s3_is_read_from_its_prefix(aws, tmp_path, capsys):
    import boto3

    prod, cand = _classifier_captures(tmp_path, disagree=0.0, n=20)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="aiinfra-prod-datasets")
    for folder, variant in ((prod, "production"), (cand, "shadow")):
        for file in capture.files(folder):
            s3.upload_file(str(file), "aiinfra-prod-datasets",
                           f"data-capture/{ENDPOINT}/{variant}/{file.relative_to(folder).as_posix()}")
    code, lines, err = lifecycle(capsys, "compare", "--production",
                                 f"s3://aiinfra-prod-datasets/data-capture/{ENDPOINT}/production/", "--candidate",
                                 f"s3://aiinfra-prod-datasets/data-capture/{ENDPOINT}/shadow/",
                                 "--threshold", "minAgreement=0.99")
    assert code == 0, err
    assert lines[-1]["paired_inputs"] == 40


@pytest.mark.parametrize("thresholds, message", [
    (["minAgreement=0.9", "maxP99=2"], "unknown promotion check 'maxP99' (known: minAgreement, minPairs, "
                                       "maxErrorRateDelta, maxLatencyP99Ratio)"),
    (["minPairs=10"], "no 'minAgreement' threshold: pass --stack-outputs (its promotionThresholds) or --threshold "
                      "minAgreement=VALUE"),
    (["minAgreement=high"], "--threshold 'minAgreement=high': expected CHECK=NUMBER"),
])
def test_bad_thresholds_are_one_line(tmp_path, capsys, thresholds, message):
    prod, cand = _classifier_captures(tmp_path, disagree=0.0, n=4)
    code, _, err = _compare(capsys, prod, cand, *thresholds)
    assert code == 2 and err == f"python -m workloads.lifecycle: error: {message}"


def test_a_line_that_is_not_a_capture_record_is_named(tmp_path, capsys):
    prod, cand = _classifier_captures(tmp_path, disagree=0.0, n=4)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"inputs": ["a"]}\n')
    code, _, err = _compare(capsys, prod, bad, "minAgreement=0.9")
    assert code == 2 and err.startswith(f"python -m workloads.lifecycle: error: {bad}:1: not a SageMaker capture record")
