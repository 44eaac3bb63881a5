"""Training settings from the three places SageMaker and people put them, merged and typed.

Precedence, lowest to highest: defaults, `<base>/input/config/hyperparameters.json`, `SM_HPS`, command-line
flags. SageMaker passes every hyperparameter as a string (sometimes JSON-quoted), so each value is parsed to
the field's type here and a bad one is reported with its source and name.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from contracts.storage import RUN_ARCHIVE
from workloads.common.cli import UsageError
from workloads.common.s3 import is_s3, parse_uri
from workloads.common.tracking import DEFAULT_EXPERIMENT, EXPERIMENT_ENV, check_uri, resolve_uri

DEFAULT_BASE_DIR = "/opt/ml"
DEVICES = ("auto", "cpu", "cuda", "neuron")
LOG_FORMATS = ("auto", "json", "progress")


@dataclass(frozen=True)
class Hyperparameters:
    """What a run learns with; every field can come from flags, SM_HPS or hyperparameters.json."""

    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    max_seq_len: int = 128
    max_steps: int = 0
    seed: int = 42
    log_interval: int = 10
    checkpoint_interval: int = 100
    keep_checkpoints: int = 3
    labels: str = ""
    model_name_or_path: str = ""
    device: str = "auto"
    log_format: str = "auto"

    def label_names(self) -> list[str]:
        """`labels` as a list ("negative,positive" -> ["negative", "positive"]); empty when unset."""
        return [name.strip() for name in self.labels.split(",") if name.strip()]


HELP = {
    "epochs": "passes over the training set",
    "batch_size": "examples per step per process (global batch = batch_size x world size)",
    "learning_rate": "AdamW peak learning rate",
    "weight_decay": "AdamW weight decay",
    "warmup_steps": "linear warm-up steps before the linear decay",
    "max_grad_norm": "gradient clipping norm (0 disables)",
    "max_seq_len": "truncate texts to this many tokens",
    "max_steps": "stop after this many steps (0: run all epochs)",
    "seed": "seed for weights of a new head, dropout and data order",
    "log_interval": "steps between log lines",
    "checkpoint_interval": "steps between checkpoints (0: only on SIGTERM)",
    "keep_checkpoints": "complete checkpoints kept on disk",
    "labels": "comma-separated class names (default: the model's id2label, else the training labels)",
    "model_name_or_path": "base model directory (default: the 'model' channel, else bundled all-MiniLM-L6-v2)",
    "device": f"one of {', '.join(DEVICES)}; cuda and neuron fail at once when their runtime is missing, auto "
              "refuses to fall back to CPU on a host with Neuron devices",
    "log_format": "auto (progress bar on a terminal, JSON lines otherwise), json or progress",
}


@dataclass(frozen=True)
class Paths:
    """Where data comes from and results go, resolved from flags, SageMaker variables and the base dir."""

    base_dir: Path
    train: Path
    validation: Path | None
    model_dir: Path
    checkpoint_dir: Path
    hyperparameters_file: Path
    train_uri: str | None = None  # s3:// source of `train` (downloaded before training)
    validation_uri: str | None = None
    checkpoint_uri: str | None = None  # s3:// mirror of `checkpoint_dir`: uploaded as written, restored at start
    checkpoint_kms_key: str | None = None
    output_uri: str | None = None  # s3:// run prefix: <it>output/model.tar.gz, SageMaker's layout
    output_kms_key: str | None = None
    pointer_uri: str | None = None  # s3:// pointer manifest naming the newest model, written last
    tracking_uri: str | None = None  # MLflow tracking URI (file:, sqlite:, http(s): or a SageMaker server ARN)
    experiment: str = DEFAULT_EXPERIMENT


@dataclass(frozen=True)
class TrainConfig:
    hp: Hyperparameters
    paths: Paths
    sources: dict[str, str] = field(default_factory=dict)


def parse_value(name: str, raw: Any, kind: type, source: str) -> Any:
    """Parse one hyperparameter to `kind`, accepting SageMaker's strings and JSON-quoted strings."""
    value = raw
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            value = json.loads(value)
        except ValueError:
            pass
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("true", "1", "yes"):
                return True
            if str(value).strip().lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(value, (dict, list)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]
        raise UsageError(f"{source}: hyperparameter '{name}' must be {what}, got {raw!r}") from None


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def merge_hyperparameters(hp: Hyperparameters, values: Mapping[str, Any], source: str) -> Hyperparameters:
    """Overlay `values` (from one source) on `hp`; unknown names are errors, `sagemaker_*` names are SageMaker's."""
    known = {f.name: _TYPES[f.type] if isinstance(f.type, str) else f.type for f in fields(Hyperparameters)}
    updates: dict[str, Any] = {}
    for raw_name, raw in values.items():
        name = str(raw_name).replace("-", "_")
        if name.startswith("sagemaker_"):
            continue
        if name not in known:
            raise UsageError(f"{source}: unknown hyperparameter '{raw_name}' (known: {', '.join(sorted(known))})")
        updates[name] = parse_value(name, raw, known[name], source)
    return validate(replace(hp, **updates), source)


def validate(hp: Hyperparameters, source: str) -> Hyperparameters:
    """Range checks that the type alone does not give."""
    positive = ("epochs", "batch_size", "max_seq_len", "log_interval", "keep_checkpoints")
    for name in positive:
        if getattr(hp, name) < 1:
            raise UsageError(f"{source}: hyperparameter '{name}' must be at least 1, got {getattr(hp, name)}")
    for name in ("warmup_steps", "max_steps", "checkpoint_interval", "weight_decay", "max_grad_norm"):
        if getattr(hp, name) < 0:
            raise UsageError(f"{source}: hyperparameter '{name}' must not be negative, got {getattr(hp, name)}")
    if not hp.learning_rate > 0:
        raise UsageError(f"{source}: hyperparameter 'learning_rate' must be positive, got {hp.learning_rate}")
    if hp.device not in DEVICES:
        raise UsageError(f"{source}: hyperparameter 'device' must be one of {', '.join(DEVICES)}, got {hp.device!r}")
    if hp.log_format not in LOG_FORMATS:
        raise UsageError(
            f"{source}: hyperparameter 'log_format' must be one of {', '.join(LOG_FORMATS)}, got {hp.log_format!r}")
    return hp


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.training",
        description="Fine-tune a BERT-style encoder for text classification. Data: JSON lines "
                    '{"text": ..., "label": ...}. Follows the SageMaker training contract (SM_CHANNEL_TRAIN, '
                    "SM_CHANNEL_VALIDATION, SM_MODEL_DIR, SM_HPS, /opt/ml/...) and runs under torchrun.",
    )
    parser.add_argument("mode", nargs="?", choices=["train"], help="ignored; SageMaker starts images with 'train'")
    paths = parser.add_argument_group("paths (flags override SageMaker variables)")
    paths.add_argument("--train", help="training JSON lines file or folder, or an s3:// prefix (default: "
                       "SM_CHANNEL_TRAIN)")
    paths.add_argument("--validation", help="validation file or folder, or an s3:// prefix (default: "
                       "SM_CHANNEL_VALIDATION)")
    paths.add_argument("--model-dir", type=Path, help="where the trained model goes (default: SM_MODEL_DIR)")
    paths.add_argument("--checkpoint-dir", type=Path, help="checkpoints (default: <base>/checkpoints)")
    paths.add_argument("--sagemaker-base-dir", type=Path,
                       help=f"replaces {DEFAULT_BASE_DIR} (default: SAGEMAKER_BASE_DIR, else {DEFAULT_BASE_DIR})")
    remote = parser.add_argument_group("S3 (EKS: SageMaker copies channels and checkpoints itself)")
    remote.add_argument("--checkpoint-s3-uri", help="mirror checkpoints here as they are written; resume from the "
                        "newest complete one at start")
    remote.add_argument("--checkpoint-kms-key-id", help="SSE-KMS key for the checkpoint objects")
    remote.add_argument("--output-s3-uri", help=f"run prefix: the model goes to <it>{RUN_ARCHIVE}")
    remote.add_argument("--output-kms-key-id", help="SSE-KMS key for the model archive and the pointer")
    remote.add_argument("--pointer-s3-uri", help="after the model, write a pointer manifest naming it here")
    tracking = parser.add_argument_group("experiment tracking (MLflow)")
    tracking.add_argument("--mlflow-tracking-uri", help="log parameters, per-step metrics and artifacts to this "
                          "MLflow store: file:/sqlite: URI, http(s):// server or a SageMaker tracking server ARN "
                          "(default: MLFLOW_TRACKING_URI; unset: no tracking)")
    tracking.add_argument("--mlflow-experiment", help=f"experiment name (default: {EXPERIMENT_ENV}, else "
                          f"{DEFAULT_EXPERIMENT})")
    hps = parser.add_argument_group("hyperparameters (flags override SM_HPS and hyperparameters.json)")
    for f in fields(Hyperparameters):
        kind = _TYPES[f.type] if isinstance(f.type, str) else f.type
        hps.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=kind.__name__.upper(),
                         help=f"{HELP[f.name]} (default: {f.default!r})")
    return parser


def _remote(args: argparse.Namespace) -> dict[str, str | None]:
    """The S3 locations and their keys, checked together: a location to write needs its KMS key."""
    remote = {
        "train_uri": args.train if is_s3(args.train) else None,
        "validation_uri": args.validation if is_s3(args.validation) else None,
        "checkpoint_uri": args.checkpoint_s3_uri, "checkpoint_kms_key": args.checkpoint_kms_key_id,
        "output_uri": args.output_s3_uri, "output_kms_key": args.output_kms_key_id,
        "pointer_uri": args.pointer_s3_uri,
    }
    for flag, key in (("--train", "train_uri"), ("--validation", "validation_uri"),
                      ("--checkpoint-s3-uri", "checkpoint_uri"), ("--output-s3-uri", "output_uri"),
                      ("--pointer-s3-uri", "pointer_uri")):
        if remote[key] is not None:
            parse_uri(remote[key], flag)
    for flag, needs in (("--checkpoint-s3-uri", "--checkpoint-kms-key-id"), ("--output-s3-uri", "--output-kms-key-id"),
                        ("--pointer-s3-uri", "--output-kms-key-id")):
        attr = flag[2:].replace("-", "_")
        if getattr(args, attr) and not getattr(args, needs[2:].replace("-", "_")):
            raise UsageError(f"{flag} needs {needs} (the buckets accept only SSE-KMS objects)")
    if args.pointer_s3_uri and not args.output_s3_uri:
        raise UsageError("--pointer-s3-uri needs --output-s3-uri (the pointer names the model published there)")
    return remote


def resolve(argv: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> TrainConfig:
    """Parse flags and merge them with the SageMaker sources into one TrainConfig."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    base = args.sagemaker_base_dir or Path(env.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR)
    hp_file = base / "input" / "config" / "hyperparameters.json"
    hp = Hyperparameters()
    sources = {}
    if hp_file.is_file():
        try:
            data = json.loads(hp_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{hp_file}: unreadable hyperparameters ({exc})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{hp_file}: expected a JSON object of hyperparameters")
        hp = merge_hyperparameters(hp, data, str(hp_file))
        sources.update({k: str(hp_file) for k in data})
    if env.get("SM_HPS"):
        try:
            data = json.loads(env["SM_HPS"])
        except ValueError as exc:
            raise UsageError(f"SM_HPS: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UsageError("SM_HPS: expected a JSON object of hyperparameters")
        hp = merge_hyperparameters(hp, data, "SM_HPS")
        sources.update({k: "SM_HPS" for k in data})
    flags = {f.name: getattr(args, f.name) for f in fields(Hyperparameters) if getattr(args, f.name) is not None}
    hp = merge_hyperparameters(hp, {k.replace("_", "-"): v for k, v in flags.items()}, "command line")
    sources.update({k: "command line" for k in flags})

    def channel(flag: str | None, var: str, name: str) -> Path:
        if flag is not None and not is_s3(flag):
            return Path(flag)
        if flag is None and env.get(var):
            return Path(env[var])
        return base / "input" / "data" / name  # an S3 channel is downloaded here, as SageMaker would

    validation: Path | None = channel(args.validation, "SM_CHANNEL_VALIDATION", "validation")
    if args.validation is None and not env.get("SM_CHANNEL_VALIDATION") and not validation.exists():
        validation = None  # optional unless asked for explicitly
    remote = _remote(args)
    tracking_uri = resolve_uri(args.mlflow_tracking_uri, env)
    if tracking_uri:
        check_uri(tracking_uri, "--mlflow-tracking-uri" if args.mlflow_tracking_uri else "MLFLOW_TRACKING_URI")
    paths = Paths(
        base_dir=base,
        train=channel(args.train, "SM_CHANNEL_TRAIN", "train"),
        validation=validation,
        model_dir=args.model_dir or Path(env.get("SM_MODEL_DIR") or base / "model"),
        checkpoint_dir=args.checkpoint_dir or base / "checkpoints",
        hyperparameters_file=hp_file,
        tracking_uri=tracking_uri,
        experiment=args.mlflow_experiment or env.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT,
        **remote,
    )
    if not hp.model_name_or_path and env.get("SM_CHANNEL_MODEL"):
        hp = replace(hp, model_name_or_path=env["SM_CHANNEL_MODEL"])
    return TrainConfig(hp=hp, paths=paths, sources=sources)
