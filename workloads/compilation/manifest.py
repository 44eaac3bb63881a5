"""The compiled-artifact manifest: the one contract between compilation (writer) and serving (reader).

`<out>/manifest.json` sits beside the artifact (`model.pt`, or `model.onnx` for `--target onnx`) and the
tokenizer files. It says what the artifact expects (names, shapes, dtypes, batch and sequence length), what it
returns, how it was built, and whether it passed the numeric check against the eager model, so the server can
refuse an artifact it cannot serve.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
TARGETS = ("cpu", "cuda", "onnx", "inferentia", "trainium")
TASKS = ("embedding", "classification")


class ManifestError(ValueError):
    """A manifest that is missing, unreadable or has a field of the wrong kind; the message names both."""


@dataclass(frozen=True)
class CompilerInfo:
    """Which compiler built the artifact, its version and the exact arguments it was given."""

    name: str
    version: str
    args: list[str]


@dataclass(frozen=True)
class NumericCheck:
    """Compiled-versus-eager agreement on held-out inputs, with the tolerances it was judged against."""

    cosine_min: float
    max_abs_diff: float
    tolerances: dict[str, float]
    passed: bool


@dataclass(frozen=True)
class Manifest:
    """Everything a loader needs to know about `artifact` without importing the model's Python class."""

    target: str
    task: str
    labels: list[str] | None
    input_shapes: list[list[int]]
    input_dtypes: list[str]
    output_names: list[str]
    output_shape: list[int]
    batch_size: int
    seq_len: int
    dynamic_batch: bool
    compiler: CompilerInfo
    torch_version: str
    source_model_sha256: str
    numeric_check: NumericCheck
    quantized: bool
    artifact: str = "model.pt"
    dynamic_seq_len: bool = False  # True: inputs may be shorter than seq_len (padding to it is still fine)
    input_names: list[str] = field(default_factory=lambda: ["input_ids", "attention_mask"])
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _check(self, "<in memory>")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, nested records included."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "Manifest":
        """Build from parsed JSON, naming `source` and the field in any error; unknown fields are ignored."""
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: expected a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                if f.name in ("artifact", "input_names", "dynamic_seq_len"):
                    continue
                raise ManifestError(f"{source}: missing field '{f.name}'")
            values[f.name] = data[f.name]
        values["compiler"] = _record(CompilerInfo, values["compiler"], source, "compiler")
        values["numeric_check"] = _record(NumericCheck, values["numeric_check"], source, "numeric_check")
        try:
            return cls(**values)
        except ManifestError as exc:
            raise ManifestError(str(exc).replace("<in memory>", source)) from None

    @classmethod
    def load(cls, directory: str | Path) -> "Manifest":
        """Read `<directory>/manifest.json`; a missing file or bad field raises ManifestError naming it."""
        path = Path(directory) / MANIFEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{path}: no manifest (is this a compilation output directory?)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: unreadable manifest: {exc}") from None
        return cls.from_dict(data, str(path))

    def write(self, directory: str | Path) -> Path:
        """Write `<directory>/manifest.json` atomically (temporary file, then rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MANIFEST_FILE
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
        return path


def _record(kind: type, value: Any, source: str, name: str) -> Any:
    if not isinstance(value, dict):
        raise ManifestError(f"{source}: field '{name}' must be an object")
    missing = [f.name for f in fields(kind) if f.name not in value]
    if missing:
        raise ManifestError(f"{source}: field '{name}' is missing '{missing[0]}'")
    return kind(**{f.name: value[f.name] for f in fields(kind)})


def _check(m: Manifest, source: str) -> None:
    def bad(field: str, why: str) -> ManifestError:
        return ManifestError(f"{source}: field '{field}' {why}")

    if m.format_version != FORMAT_VERSION:
        raise bad("format_version", f"is {m.format_version!r}; this reader understands {FORMAT_VERSION}")
    if m.target not in TARGETS:
        raise bad("target", f"is {m.target!r}; expected one of {', '.join(TARGETS)}")
    if m.task not in TASKS:
        raise bad("task", f"is {m.task!r}; expected one of {', '.join(TASKS)}")
    if m.task == "classification" and (not isinstance(m.labels, list) or not m.labels):
        raise bad("labels", "must be a non-empty list of label names for a classification artifact")
    if m.task == "embedding" and m.labels is not None:
        raise bad("labels", "must be null for an embedding artifact")
    if not isinstance(m.artifact, str) or not m.artifact or "/" in m.artifact or m.artifact.startswith("."):
        raise bad("artifact", f"must be a plain file name, got {m.artifact!r}")
    if (m.target == "onnx") != m.artifact.endswith(".onnx"):
        raise bad("artifact", f"is {m.artifact!r}; an onnx target has a .onnx artifact and no other target does")
    for name in ("batch_size", "seq_len"):
        value = getattr(m, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(name, f"must be a positive integer, got {value!r}")
    if not isinstance(m.input_names, list) or not all(isinstance(n, str) for n in m.input_names):
        raise bad("input_names", "must be a list of strings")
    for name in ("input_shapes", "input_dtypes"):
        if not isinstance(getattr(m, name), list) or len(getattr(m, name)) != len(m.input_names):
            raise bad(name, f"must be a list with one entry per input ({len(m.input_names)})")
    if not all(isinstance(s, list) and all(isinstance(d, int) for d in s) for s in m.input_shapes):
        raise bad("input_shapes", "must be a list of integer lists")
    if not isinstance(m.output_shape, list) or not all(isinstance(d, int) for d in m.output_shape):
        raise bad("output_shape", "must be a list of integers")
    if m.task == "classification" and m.output_shape[-1:] != [len(m.labels or [])]:
        raise bad("output_shape", f"last dimension must equal the number of labels ({len(m.labels or [])})")
    for name in ("dynamic_batch", "dynamic_seq_len", "quantized"):
        if not isinstance(getattr(m, name), bool):
            raise bad(name, "must be true or false")
    if not isinstance(m.numeric_check.passed, bool):
        raise bad("numeric_check", "field 'passed' must be true or false")
