"""The lifecycle's dependencies live in the training image (which runs the drift job) and never in the serving
image or the server's imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from contracts import lifecycle as lc

REPO = Path(__file__).resolve().parents[2]
LIFECYCLE_ONLY = ("mlflow", "sagemaker_mlflow", "scipy")


def test_serving_image_installs_no_lifecycle_requirements():
    dockerfile = (REPO / "workloads" / "images" / "serving.Dockerfile").read_text()
    assert "requirements-lifecycle" not in dockerfile and "workloads/lifecycle" not in dockerfile
    serving = (REPO / "workloads" / "requirements.txt").read_text().lower()
    assert not any(line.startswith(("mlflow", "sagemaker-mlflow", "scipy")) for line in serving.splitlines())


def test_training_image_installs_them_and_can_run_the_drift_job():
    dockerfile = (REPO / "workloads" / "images" / "training.Dockerfile").read_text()
    assert "-r workloads/requirements-lifecycle.txt" in dockerfile and "COPY workloads/ workloads/" in dockerfile
    assert lc.DRIFT_JOB_COMMAND[:3] == ("python", "-m", "workloads.lifecycle")
    pins = (REPO / "workloads" / "requirements-lifecycle.txt").read_text().splitlines()
    assert {p.split("==")[0] for p in pins if "==" in p} == {"mlflow-skinny", "sagemaker-mlflow", "scipy"}
    assert "-r workloads/requirements-lifecycle.txt" in (REPO / "requirements-test.txt").read_text()


def test_the_server_imports_none_of_them():
    code = ("import sys; import workloads.serving.server, workloads.serving.app, workloads.serving.model; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {LIFECYCLE_ONLY!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
