"""Check and fingerprint a Hugging Face model directory before any workload loads it.

Every workload takes "a directory of the reference shape" (config.json, safetensors weights, tokenizer files).
A wrong directory should fail with one line naming the file that is missing, not with a transformers traceback
three layers down, and the compiled artifact should record exactly which weights it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from workloads.common.hashing import update_with_file

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "added_tokens.json",
    "merges.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
)


class ModelDirError(ValueError):
    """The directory is not a usable Hugging Face model directory; the message names the file."""


def offline() -> None:
    """Make transformers and the hub client never reach the network (the model is always a local directory)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def quiet_transformers() -> None:
    """Silence transformers' load-time progress bars and notices; workloads report their own progress."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        return
    disable_progress_bars()


def weight_files(model_dir: Path) -> list[Path]:
    """The weight files of `model_dir` (single file or the shards an index names), in a stable order."""
    for index_name in WEIGHT_INDEXES:
        index = model_dir / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                raise ModelDirError(f"{index}: unreadable weight index ({exc})") from None
            missing = [s for s in shards if not (model_dir / s).is_file()]
            if missing:
                raise ModelDirError(f"{model_dir / missing[0]}: weight shard named in {index_name} is missing")
            return [model_dir / s for s in shards]
    return [model_dir / name for name in WEIGHT_FILES if (model_dir / name).is_file()][:1]


def check_model_dir(path: str | Path, *, need_tokenizer: bool = True) -> Path:
    """Return `path` if it holds a config, weights and (optionally) a tokenizer; else raise ModelDirError."""
    model_dir = Path(path)
    if not model_dir.is_dir():
        raise ModelDirError(f"{model_dir}: model directory does not exist")
    config = model_dir / "config.json"
    if not config.is_file():
        raise ModelDirError(f"{config}: missing (not a Hugging Face model directory)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{config}: unreadable ({exc})") from None
    if not weight_files(model_dir):
        raise ModelDirError(f"{model_dir}: no model weights (expected model.safetensors or pytorch_model.bin)")
    if need_tokenizer and not any((model_dir / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise ModelDirError(f"{model_dir}: no tokenizer files (expected tokenizer.json or vocab.txt)")
    return model_dir


def model_sha256(path: str | Path) -> str:
    """sha256 over config.json and the weight files (names and bytes): identifies the source of an artifact."""
    model_dir = check_model_dir(path, need_tokenizer=False)
    digest = hashlib.sha256()
    for file in [model_dir / "config.json", *weight_files(model_dir)]:
        digest.update(file.name.encode() + b"\0")
        update_with_file(digest, file)
    return digest.hexdigest()


def tokenizer_files(path: str | Path) -> list[Path]:
    """The tokenizer files present in `path`, to copy beside an artifact so AutoTokenizer loads from there."""
    model_dir = Path(path)
    return [model_dir / name for name in TOKENIZER_FILES if (model_dir / name).is_file()]
