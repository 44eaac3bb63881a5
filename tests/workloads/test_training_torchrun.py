"""`torchrun --nproc-per-node 2 -m workloads.training` on CPU with gloo: one model, per-rank random state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from transformers import AutoModelForSequenceClassification

from workloads.training.demo import write_demo


def _torchrun(demo, model, out, *extra):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "workloads.training", "--train", str(demo["train"]), "--validation", str(demo["validation"]),
            "--model-name-or-path", str(model), "--model-dir", str(out / "model"),
            "--checkpoint-dir", str(out / "checkpoints"), "--sagemaker-base-dir", str(out / "opt-ml"),
            "--batch-size", "16", "--learning-rate", "3e-3", "--log-format", "json", *extra]


def _run(argv, timeout):
    """Run torchrun in its own process group, so a timeout also ends its worker processes."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_two_cpu_processes_train_one_model(tiny_bert_dir, tmp_path):
    demo = write_demo(tmp_path / "demo", train=256, validation=64, seed=5)
    result = _run(_torchrun(demo, tiny_bert_dir, tmp_path, "--epochs", "2", "--log-interval", "1",
                            "--checkpoint-interval", "5"), timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _lines(result.stdout)
    steps = [r["step"] for r in lines if r["event"] == "train"]
    assert steps == list(range(1, 17)), "256 examples / (16 x 2 ranks) x 2 epochs, logged once (rank 0)"
    assert len([r for r in lines if r["event"] == "done"]) == 1
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["device"] == "cpu" and metrics["step"] == 16
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    latest = tmp_path / "checkpoints" / "step-00000016"
    assert sorted(p.name for p in latest.iterdir()) == ["COMPLETE.json", "rng-rank0.pt", "rng-rank1.pt",
                                                        "state.pt"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000010", "step-00000015", "step-00000016"], "the last 3 are kept"


@pytest.mark.slow
def test_sigterm_to_torchrun_checkpoints_both_ranks_and_resumes(tiny_bert_dir, tmp_path):
    demo = write_demo(tmp_path / "demo", train=1280, validation=64, seed=6)  # 40 steps per epoch with 2 ranks
    argv = _torchrun(demo, tiny_bert_dir, tmp_path, "--epochs", "1", "--log-interval", "1",
                     "--checkpoint-interval", "0")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    first = []
    for line in proc.stdout:
        if line.startswith("{"):
            first.append(json.loads(line))
            if first[-1].get("step", 0) >= 5:
                proc.send_signal(signal.SIGTERM)
                break
    try:
        rest, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    first += _lines(rest)
    assert proc.returncode != 0, "an interrupted run must not look finished"
    stopped = max(r["step"] for r in first if r["event"] == "train")
    assert stopped < 40, err[-2000:]
    assert (tmp_path / "checkpoints" / f"step-{stopped:08d}" / "rng-rank1.pt").is_file(), err[-2000:]
    second = _run(argv, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    steps = [r["step"] for r in first + _lines(second.stdout) if r["event"] == "train"]
    assert steps == list(range(1, 41))
