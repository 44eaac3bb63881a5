"""Hyperparameters and paths: the SageMaker sources, their precedence, and clear errors for bad values."""

from __future__ import annotations

import json

import pytest

from workloads.common.cli import UsageError
from workloads.training.config import resolve


def _hp_file(base, values):
    path = base / "input" / "config" / "hyperparameters.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(values))
    return path


def test_sagemaker_strings_are_parsed_and_flags_win(tmp_path):
    _hp_file(tmp_path, {"epochs": "4", "learning_rate": "0.002", "batch_size": "8", "labels": '"neg,pos"',
                        "sagemaker_region": '"us-east-1"'})
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HPS": json.dumps({"batch_size": 12, "seed": "7"})}
    cfg = resolve(["--seed", "9", "--max-steps", "1e2"], env)
    hp = cfg.hp
    assert (hp.epochs, hp.learning_rate, hp.batch_size, hp.seed, hp.max_steps) == (4, 0.002, 12, 9, 100)
    assert hp.label_names() == ["neg", "pos"]
    assert cfg.sources["epochs"].endswith("hyperparameters.json")
    assert cfg.sources["batch_size"] == "SM_HPS" and cfg.sources["seed"] == "command line"


def test_paths_follow_base_dir_and_sagemaker_variables(tmp_path):
    (tmp_path / "input" / "data" / "validation").mkdir(parents=True)
    cfg = resolve([], {"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert cfg.paths.train == tmp_path / "input" / "data" / "train"
    assert cfg.paths.validation == tmp_path / "input" / "data" / "validation"
    assert cfg.paths.model_dir == tmp_path / "model"
    assert cfg.paths.checkpoint_dir == tmp_path / "checkpoints"
    env = {"SM_CHANNEL_TRAIN": "/data/t", "SM_MODEL_DIR": "/m", "SM_CHANNEL_MODEL": "/base-model"}
    cfg = resolve(["train", "--sagemaker-base-dir", str(tmp_path / "none")], env)
    assert str(cfg.paths.train) == "/data/t" and str(cfg.paths.model_dir) == "/m"
    assert cfg.paths.validation is None, "an absent default validation channel is optional"
    assert cfg.hp.model_name_or_path == "/base-model"


@pytest.mark.parametrize(("env", "argv", "message"), [
    ({"SM_HPS": '{"epochs": "three"}'}, [], "SM_HPS: hyperparameter 'epochs' must be an integer, got 'three'"),
    ({"SM_HPS": '{"lr": "0.1"}'}, [], "SM_HPS: unknown hyperparameter 'lr'"),
    ({"SM_HPS": "[1]"}, [], "SM_HPS: expected a JSON object"),
    ({}, ["--batch-size", "0"], "command line: hyperparameter 'batch_size' must be at least 1, got 0"),
    ({}, ["--device", "tpu"], "command line: hyperparameter 'device' must be one of auto, cpu, cuda, neuron"),
    ({}, ["--learning-rate", "fast"], "command line: hyperparameter 'learning_rate' must be a number"),
])
def test_bad_hyperparameters_name_source_and_field(tmp_path, env, argv, message):
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path), **env}
    with pytest.raises(UsageError) as excinfo:
        resolve(argv, env)
    assert message in str(excinfo.value)


def test_bad_hyperparameters_file_is_named(tmp_path):
    path = _hp_file(tmp_path, {"warmup_steps": "-1"})
    with pytest.raises(UsageError, match=f"{path}: hyperparameter 'warmup_steps' must not be negative, got -1"):
        resolve([], {"SAGEMAKER_BASE_DIR": str(tmp_path)})
