"""Shared pieces of the lifecycle tests: a compiled tiny artifact and a moto account with the platform's
models bucket, key and model package group, as the stack outputs name them."""

from __future__ import annotations

import json
from pathlib import Path

from contracts import lifecycle as lc

GROUP = "aiinfra-dev-text-classifier"
BUCKET = "aiinfra-dev-models"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/aiinfra-dev-serving:1.0"


def compile_artifact(model_dir: Path, out: Path) -> Path:
    """`python -m workloads.compilation` (CPU TorchScript) on `model_dir`, in-process."""
    import contextlib
    import io

    from workloads.compilation.compile import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--model-dir", str(model_dir), "--target", "cpu", "--batch-size", "2", "--seq-len", "16",
                     "--out", str(out)]) == 0
    return out


def platform(tmp_path: Path, *, gate: dict[str, float] | None = None,
             thresholds: dict[str, float] | None = None) -> Path:
    """Inside moto: the models bucket, its KMS key, the model package group; returns the stack outputs file."""
    import boto3

    key = boto3.client("kms").create_key(Description="models")["KeyMetadata"]["Arn"]
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    outputs = {"region": "us-east-1", "modelsBucketName": BUCKET, "modelsKeyArn": key,
               "servingRepositoryUrl": IMAGE.rsplit(":", 1)[0],
               lc.OUTPUT_MODEL_PACKAGE_GROUPS: {"text-classifier": GROUP},
               lc.OUTPUT_APPROVAL_GATE: gate if gate is not None else {"validation_accuracy": 0.8}}
    if thresholds is not None:
        outputs[lc.OUTPUT_PROMOTION_THRESHOLDS] = thresholds
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs), encoding="utf-8")
    return path


def lifecycle(capsys, *argv: str) -> tuple[int, list[dict], str]:
    """Run `python -m workloads.lifecycle` in-process: exit code, its JSON lines, stderr."""
    from workloads.lifecycle.__main__ import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    return code, lines, captured.err.strip()


def write_capture(root: Path, endpoint: str, variant: str, lines: list[str]) -> Path:
    """Capture lines in SageMaker's layout, `<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`, split in two files."""
    folder = root / endpoint / variant / "2026" / "12" / "02" / "08"
    folder.mkdir(parents=True, exist_ok=True)
    half = len(lines) // 2
    for name, part in (("00-00-000-a.jsonl", lines[:half]), ("30-00-000-b.jsonl", lines[half:])):
        (folder / name).write_text("".join(line + "\n" for line in part), encoding="utf-8")
    return root / endpoint / variant


def classifier_answer(label: str, confidence: float = 0.9) -> dict:
    other = "negative" if label == "positive" else "positive"
    return {"label": label, "scores": {label: confidence, other: round(1 - confidence, 6)}}
