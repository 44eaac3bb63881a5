"""Experiment tracking: a training run logs its parameters, per-step metrics and artifacts to a real local
MLflow store, and names the run in metrics.json for the registry."""

from __future__ import annotations

import contextlib
import io
import json
from importlib.metadata import entry_points

import pytest
from mlflow.tracking import MlflowClient

from workloads.common.tracking import RUN_ID_FILE, check_uri
from workloads.common.cli import UsageError
from workloads.training.demo import write_demo
from workloads.training.train import main


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A file: MLflow store in tmp_path (MLflow 3 wants the opt-in for the file backend)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return (tmp_path / "mlruns").as_uri()


def _train(demo, tiny_bert_dir, out, *extra):
    args = ["--train", str(demo["train"]), "--validation", str(demo["validation"]),
            "--model-name-or-path", str(tiny_bert_dir), "--model-dir", str(out / "model"),
            "--checkpoint-dir", str(out / "checkpoints"), "--sagemaker-base-dir", str(out / "opt-ml"),
            "--epochs", "1", "--batch-size", "16", "--learning-rate", "5e-3", "--log-format", "json",
            "--log-interval", "1", *extra]
    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)


def test_training_logs_params_step_metrics_and_artifacts(tiny_bert_dir, tmp_path, store):
    demo = write_demo(tmp_path / "demo", train=64, validation=32, seed=1)
    assert _train(demo, tiny_bert_dir, tmp_path, "--mlflow-tracking-uri", store, "--mlflow-experiment", "tiny") == 0
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    run_id = metrics["mlflow_run_id"]
    assert (tmp_path / "checkpoints" / RUN_ID_FILE).read_text().strip() == run_id
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tiny"
    assert run.data.params["learning_rate"] == "0.005" and run.data.params["batch_size"] == "16"
    assert run.data.params["train_examples"] == "64" and run.data.params["labels"] == "negative,positive"
    history = client.get_metric_history(run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3, 4], "one point per logged step (64 / 16)"
    assert client.get_metric_history(run_id, "validation_accuracy")[-1].step == 4
    assert {a.path for a in client.list_artifacts(run_id)} == {"metrics.json", "config.json"}

    # A restart with the same checkpoint folder (a spot interruption's new instance) continues the same run.
    assert _train(demo, tiny_bert_dir, tmp_path, "--mlflow-tracking-uri", store, "--mlflow-experiment", "tiny") == 0
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["mlflow_run_id"] == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_no_tracking_uri_means_no_run(tiny_bert_dir, tmp_path, store):
    demo = write_demo(tmp_path / "demo", train=32, validation=16, seed=2)
    assert _train(demo, tiny_bert_dir, tmp_path) == 0
    assert "mlflow_run_id" not in json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert not (tmp_path / "checkpoints" / RUN_ID_FILE).exists()


def test_bad_tracking_uri_is_one_line_before_training(tiny_bert_dir, tmp_path, capsys, store):
    demo = write_demo(tmp_path / "demo", train=32, validation=16, seed=2)
    assert _train(demo, tiny_bert_dir, tmp_path, "--mlflow-tracking-uri", "ftp://example.test/x") == 2
    err = capsys.readouterr().err.strip()
    assert err == ("python -m workloads.training: error: --mlflow-tracking-uri 'ftp://example.test/x': expected a "
                   "file:, sqlite:, http(s): URI or a SageMaker tracking server ARN")
    assert not (tmp_path / "model").exists()


def test_tracking_server_arn_needs_the_plugin_and_a_server_arn():
    arn = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/aiinfra-dev"
    assert check_uri(arn) == arn  # sagemaker-mlflow is installed (workloads/requirements-lifecycle.txt)
    stores = {e.name: e.value for e in entry_points(group="mlflow.tracking_store")}
    assert stores.get("arn", "").startswith("sagemaker_mlflow."), "the plugin resolves arn: tracking URIs"
    with pytest.raises(UsageError, match="must name a SageMaker MLflow tracking server"):
        check_uri("arn:aws:s3:::bucket")


def test_a_tracking_blip_mid_training_is_one_warning_not_a_failed_run(tmp_path, store, capsys, monkeypatch):
    from workloads.common.tracking import Tracker

    tracker = Tracker(store, "blips")
    monkeypatch.setattr(tracker.client, "log_batch", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("reset")))
    tracker.observe({"event": "train", "step": 3, "train_loss": 0.5})
    tracker.observe({"event": "train", "step": 4, "train_loss": 0.4})
    err = capsys.readouterr().err
    assert err.count("warning: MLflow tracking at") == 1 and "failed at step 3 (ConnectionError: reset)" in err


def test_a_resume_file_from_another_store_starts_a_new_run(tmp_path, store):
    from workloads.common.tracking import Tracker

    resume = tmp_path / RUN_ID_FILE
    resume.write_text("0123456789abcdef0123456789abcdef\n")
    tracker = Tracker(store, "fresh", resume_file=resume)
    assert tracker.run_id != "0123456789abcdef0123456789abcdef"
    assert resume.read_text().strip() == tracker.run_id


def test_an_unreachable_tracking_server_is_one_line_before_training(monkeypatch):
    from serving_helpers import free_port

    from workloads.common.tracking import Tracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UsageError, match=rf"^MLflow tracking at {uri}: "):
        Tracker(uri, "nowhere")
