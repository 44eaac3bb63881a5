"""The training command end to end on CPU: it learns, it writes the model, and bad input is one clear line."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from workloads.training.demo import write_demo, write_jsonl
from workloads.training.train import main


def train_args(demo, tiny_bert_dir, out, **extra):
    args = ["--train", str(demo["train"]), "--validation", str(demo["validation"]),
            "--model-name-or-path", str(tiny_bert_dir), "--model-dir", str(out / "model"),
            "--checkpoint-dir", str(out / "checkpoints"), "--sagemaker-base-dir", str(out / "opt-ml"),
            "--epochs", "2", "--batch-size", "16", "--learning-rate", "5e-3", "--log-format", "json"]
    for key, value in extra.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"), train=384, validation=128, seed=3)


@pytest.fixture(scope="module")
def reference_run(demo, tiny_bert_dir, tmp_path_factory):
    """One uninterrupted run, in-process; the SIGTERM test compares its steps and losses with a resumed run."""
    out = tmp_path_factory.mktemp("reference")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(train_args(demo, tiny_bert_dir, out, log_interval=1, checkpoint_interval=0))
    assert code == 0
    return out, json_lines(buffer.getvalue())


def test_training_learns_and_writes_a_hugging_face_model(reference_run):
    out, lines = reference_run
    steps = [r["step"] for r in lines if r["event"] == "train"]
    assert steps == list(range(1, 49)), "384 examples / 16 per step x 2 epochs, one line per step"
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["step"] == 48 and metrics["labels"] == ["negative", "positive"]
    assert metrics["validation_accuracy"] >= 0.9, metrics  # chance is 0.5
    assert metrics["seconds"] < 60, "the tiny demo trains in well under a minute on CPU"
    start = lines[0]
    assert start["event"] == "start" and start["total_steps"] == 48 and start["resumed_from"] is None
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert (out / "model" / "model.safetensors").is_file()
    AutoTokenizer.from_pretrained(out / "model")
    first = [r for r in lines if r["event"] == "train"][0]
    assert set(first) == {"event", "step", "epoch", "train_loss", "learning_rate", "samples_per_second"}


def test_rerun_after_completion_resumes_at_the_end(reference_run, demo, tiny_bert_dir, capsys):
    out, _ = reference_run
    assert main(train_args(demo, tiny_bert_dir, out, log_interval=1, checkpoint_interval=0)) == 0
    captured = capsys.readouterr()
    assert "resuming from" in captured.err and "at step 48" in captured.err
    assert not [r for r in json_lines(captured.out) if r["event"] == "train"], "no step is repeated"


def test_checkpoint_of_another_run_is_refused(reference_run, demo, tiny_bert_dir, tmp_path, capsys):
    out, _ = reference_run
    shutil.copytree(out / "checkpoints", tmp_path / "checkpoints")
    code = main(train_args(demo, tiny_bert_dir, tmp_path, batch_size=8))
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint is from a different run ('batch_size' was 16, now 8)" in err and "\n" not in err


def _error_of(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_naming_file_or_field(demo, tiny_bert_dir, tmp_path, capsys):
    base = train_args(demo, tiny_bert_dir, tmp_path)
    missing = tmp_path / "nowhere"
    err = _error_of([*base, "--train", str(missing)], capsys)
    assert f"train data not found: {missing} (set --train or SM_CHANNEL_TRAIN)" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.jsonl").write_text("\n")
    assert f"{empty}: the train data set is empty" in _error_of([*base, "--train", str(empty)], capsys)

    odd = write_jsonl(tmp_path / "odd" / "validation.jsonl", [{"text": "a good day", "label": "positive"},
                                                              {"text": "so so", "label": "neutral"}])
    err = _error_of([*base, "--validation", str(odd)], capsys)
    assert f"{odd}:2: field 'label' is 'neutral', not one of the classes negative, positive" in err

    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "fine", "label": "positive"}\n{"text": "oops"\n')
    assert f"{bad_json}:2: not valid JSON" in _error_of([*base, "--train", str(bad_json)], capsys)
    no_text = write_jsonl(tmp_path / "no_text.jsonl", [{"label": "positive"}])
    assert f"{no_text}:1: missing field 'text'" in _error_of([*base, "--train", str(no_text)], capsys)

    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    err = _error_of([*base, "--checkpoint-dir", str(blocked / "checkpoints")], capsys)
    assert f"--checkpoint-dir {blocked / 'checkpoints'}: cannot create it" in err

    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    shutil.copy(tiny_bert_dir / "config.json", no_weights / "config.json")
    err = _error_of([*base, "--model-name-or-path", str(no_weights)], capsys)
    assert f"{no_weights}: no model weights (expected model.safetensors or pytorch_model.bin)" in err
    assert err.startswith("python -m workloads.training: error: ")


def test_failure_reason_goes_to_the_sagemaker_failure_file(demo, tiny_bert_dir, tmp_path, capsys):
    (tmp_path / "opt-ml" / "output").mkdir(parents=True)
    argv = [*train_args(demo, tiny_bert_dir, tmp_path), "--epochs", "zero"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt-ml"))
        err = _error_of(argv, capsys)
    assert "hyperparameter 'epochs' must be an integer, got 'zero'" in err
    assert (tmp_path / "opt-ml" / "output" / "failure").read_text().strip() == err


def _run_until_sigterm(argv, stop_after_step, timeout=120):
    """Start the training CLI, send SIGTERM once it has logged `stop_after_step`, return (code, lines, stderr)."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "workloads.training", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                lines.append(json.loads(line))
                if lines[-1].get("step", 0) >= stop_after_step and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    break
        rest, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += json_lines(rest)
    return proc.returncode, lines, err


def test_sigterm_mid_epoch_then_restart_continues_without_gap_or_repeat(reference_run, demo, tiny_bert_dir,
                                                                      tmp_path):
    import subprocess
    import sys

    _, reference = reference_run
    argv = train_args(demo, tiny_bert_dir, tmp_path, log_interval=1, checkpoint_interval=0)
    code, first, err = _run_until_sigterm(argv, stop_after_step=5)
    assert code == 143, err
    stopped = max(r["step"] for r in first if r["event"] == "train")
    assert 5 <= stopped < 24, "stopped within the first epoch (24 steps)"
    assert f"interrupted: checkpoint at step {stopped}" in err
    assert (tmp_path / "checkpoints" / f"step-{stopped:08d}" / "COMPLETE.json").is_file()
    assert not (tmp_path / "model" / "model.safetensors").exists()

    second = subprocess.run([sys.executable, "-m", "workloads.training", *argv], capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"at step {stopped} (epoch 0, batch {stopped})" in second.stderr
    resumed = json_lines(second.stdout)
    steps = [r["step"] for r in first + resumed if r["event"] == "train"]
    assert steps == list(range(1, 49)), "same final step, no gap, no repeat"
    losses = [r["train_loss"] for r in first + resumed if r["event"] == "train"]
    expected = [r["train_loss"] for r in reference if r["event"] == "train"]
    assert losses == pytest.approx(expected, rel=1e-4, abs=1e-5), "the loss curve continues where it stopped"
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["step"] == 48


def test_corrupt_newest_checkpoint_is_skipped_and_the_run_resumes_from_the_one_before(demo, tiny_bert_dir, tmp_path,
                                                                                    capsys):
    argv = train_args(demo, tiny_bert_dir, tmp_path, max_steps=4, checkpoint_interval=2, log_interval=1)
    assert main(argv) == 0
    capsys.readouterr()
    newest = tmp_path / "checkpoints" / "step-00000004" / "state.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a half-synced copy
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "skipping checkpoint" in captured.err and "step-00000004: state.pt does not match its sha256" in captured.err
    assert "at step 2 (epoch 0, batch 2)" in captured.err
    assert [r["step"] for r in json_lines(captured.out) if r["event"] == "train"] == [3, 4]
    assert checkpoint_ok(tmp_path / "checkpoints" / "step-00000004"), "the corrupt one is replaced by a good one"


def checkpoint_ok(folder):
    from workloads.training import checkpoint

    return checkpoint._verify(folder, 1) is None


def test_demo_command_writes_channels_and_a_tiny_model(tmp_path, capsys):
    from workloads.training.demo import main as demo_main

    assert demo_main(["--out", str(tmp_path), "--train-examples", "10", "--validation-examples", "4",
                      "--tiny-model"]) == 0
    train = [json.loads(line) for line in (tmp_path / "data" / "train" / "train.jsonl").read_text().splitlines()]
    assert len(train) == 10 and {r["label"] for r in train} == {"negative", "positive"}
    assert (tmp_path / "data" / "validation" / "validation.jsonl").read_text().count("\n") == 4
    assert (tmp_path / "tiny-model" / "model.safetensors").is_file()
    assert "train: " in capsys.readouterr().out


def test_sagemaker_layout_alone_drives_a_run(demo, tiny_bert_dir, tmp_path, monkeypatch, capsys):
    """No flags: channels, hyperparameters (as SageMaker's strings) and outputs all under SAGEMAKER_BASE_DIR."""
    base = tmp_path / "opt-ml"
    for channel in ("train", "validation"):
        (base / "input" / "data" / channel).mkdir(parents=True)
        shutil.copy(demo[channel], base / "input" / "data" / channel / "part-0.jsonl")
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({
        "epochs": "1", "max_steps": "3", "batch_size": "8", "log_interval": "1", "log_format": '"json"',
        "model_name_or_path": json.dumps(str(tiny_bert_dir)), "sagemaker_region": '"us-east-1"'}))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    for name in ("SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_MODEL_DIR", "SM_HPS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["train"]) == 0, capsys.readouterr().err
    lines = json_lines(capsys.readouterr().out)
    assert [r["step"] for r in lines if r["event"] == "train"] == [1, 2, 3]
    metrics = json.loads((base / "model" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["batch_size"] == 8 and metrics["validation_examples"] == 128
    assert (base / "checkpoints" / "step-00000003" / "COMPLETE.json").is_file()
