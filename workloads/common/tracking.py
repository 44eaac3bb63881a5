"""Experiment tracking with MLflow: one run per training, its parameters, per-step metrics and artifacts.

The training workload and the register command use the MLflow client as users know it, not a copy of its
REST calls. A tracking URI is what MLflow itself accepts: `file:` or `sqlite:` for a local store, `http(s)://`,
or the ARN of a SageMaker managed tracking server, which the `sagemaker-mlflow` plugin resolves and signs with
the process's own AWS credentials. Without a URI nothing is tracked and MLflow is never imported, so the
serving image (which has no MLflow) can import the training code paths it shares.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workloads.common.cli import UsageError

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"          # MLflow's own variable, honoured when no flag is given
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "aiinfra-training"
RUN_ID_FILE = "mlflow-run-id"                     # beside the checkpoints: a restarted run continues its run
STATUSES = ("FINISHED", "FAILED", "KILLED")


def resolve_uri(flag: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The tracking URI from the flag, else MLFLOW_TRACKING_URI; None when tracking is off."""
    env = os.environ if environ is None else environ
    uri = flag if flag is not None else env.get(TRACKING_URI_ENV)
    return uri or None


def check_uri(uri: str, what: str = "--mlflow-tracking-uri") -> str:
    """Refuse, in one line, a URI this process cannot track to (no MLflow, or an ARN without the plugin)."""
    if importlib.util.find_spec("mlflow") is None:
        raise UsageError(f"{what} {uri!r}: MLflow is not installed (pip install -r workloads/requirements-lifecycle.txt)")
    if uri.startswith("arn:"):
        if ":mlflow-tracking-server/" not in uri and ":mlflow-app/" not in uri:
            raise UsageError(f"{what} {uri!r}: an ARN here must name a SageMaker MLflow tracking server")
        if importlib.util.find_spec("sagemaker_mlflow") is None:
            raise UsageError(f"{what} {uri!r}: a SageMaker tracking server needs the sagemaker-mlflow plugin "
                             "(pip install -r workloads/requirements-lifecycle.txt)")
    elif uri.split(":", 1)[0] not in ("file", "sqlite", "http", "https", "postgresql", "mysql", "databricks"):
        raise UsageError(f"{what} {uri!r}: expected a file:, sqlite:, http(s): URI or a SageMaker tracking "
                         "server ARN")
    return uri


class Tracker:
    """One MLflow run: opened (or reopened, after a restart) at the start, closed with the run's outcome."""

    def __init__(self, uri: str, experiment: str, *, run_name: str | None = None,
                 resume_file: Path | None = None, tags: Mapping[str, str] | None = None) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.uri = check_uri(uri)
        self.client = MlflowClient(tracking_uri=uri)
        self._warned = False
        self._closed = False
        try:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        except MlflowException as exc:  # a server that refuses or cannot be reached: before training, not after
            raise UsageError(f"MLflow tracking at {uri}: {exc.message.splitlines()[0]}") from None
        previous = resume_file.read_text(encoding="utf-8").strip() if resume_file and resume_file.is_file() else ""
        self.run_id = ""
        if previous:
            try:
                self.client.update_run(previous, status="RUNNING")
                self.run_id = previous
            except MlflowException:  # the run is not in this store (another URI): start a new one
                self.run_id = ""
        if not self.run_id:
            run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
            self.run_id = run.info.run_id
            if resume_file is not None:
                resume_file.parent.mkdir(parents=True, exist_ok=True)
                resume_file.write_text(self.run_id + "\n", encoding="utf-8")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters once per run; a resumed run keeps the ones it logged first (MLflow forbids changing them)."""
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params
        fresh = [Param(str(k), str(v)[:6000]) for k, v in params.items() if str(k) not in logged]
        if fresh:
            self.client.log_batch(self.run_id, params=fresh)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """The numeric entries of one record at `step`."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not batch:
            return
        try:
            self.client.log_batch(self.run_id, metrics=batch)
        except Exception as exc:  # noqa: BLE001 - a tracking blip must not end a long training run
            if not self._warned:
                print(f"warning: MLflow tracking at {self.uri} failed at step {step} ({type(exc).__name__}: {exc}); "
                      "training goes on, later failures are not reported", file=sys.stderr, flush=True)
                self._warned = True

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def observe(self, record: Mapping[str, Any]) -> None:
        """A progress record (workloads.training.report): train and validation events become step metrics."""
        if record.get("event") in ("train", "validation") and "step" in record:
            self.log_metrics({k: v for k, v in record.items() if k not in ("event", "step", "epoch")},
                             int(record["step"]))

    def close(self, status: str) -> None:
        if not self._closed:
            self.client.set_terminated(self.run_id, status=status)
            self._closed = True


def run_exists(uri: str, run_id: str) -> dict[str, Any]:
    """The run's metrics and artifact URI, or a UsageError naming the run: the registry links only real runs."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(tracking_uri=check_uri(uri)).get_run(run_id)
    except MlflowException as exc:
        raise UsageError(f"--mlflow-run-id {run_id!r}: not found in {uri} ({exc.error_code})") from None
    return {"metrics": dict(run.data.metrics), "artifact_uri": run.info.artifact_uri, "status": run.info.status}
