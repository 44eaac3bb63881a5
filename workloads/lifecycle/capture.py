"""SageMaker endpoint data capture: read its JSON Lines records (and write them, for tests and benchmarks).

One line per invocation, as SageMaker writes it under `<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`:

    {"captureData": {"endpointInput":  {"observedContentType": "application/json", "mode": "INPUT",
                                        "data": "<base64 or text>", "encoding": "BASE64" | "JSON" | "CSV"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": "...", "inferenceId": "...", "inferenceTime": "2026-12-02T08:00:00Z"},
     "eventVersion": "0"}

The bodies are this project's SageMaker contract (workloads/serving/sagemaker.py): `{"inputs": [...]}` in,
`{"outputs": [...]}` out, one output per input, an embedding vector or `{"label", "scores"}`. A record whose
output is not such an answer counts as an error. SageMaker records no latency; a record may carry one as
`eventMetadata.latencyMs` (a replay harness or load test writes it), and `compare` uses it when present.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.common import s3
from workloads.common.cli import UsageError

LATENCY_KEY = "latencyMs"


@dataclass(frozen=True)
class Record:
    """One captured invocation: its texts, its answers (or why there are none) and how to pair it."""

    inference_id: str | None
    input_key: str                       # sha256 of the request body: pairs a shadow's copy of a request
    inputs: tuple[str, ...]
    outputs: tuple[Any, ...] | None      # None when the answer is an error or unreadable
    error: str | None
    latency_ms: float | None
    time: str | None = None              # eventMetadata.inferenceTime, ISO 8601 UTC


def _body(part: Any, where: str) -> bytes:
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        raise ValueError(f"{where} has no 'data' string")
    encoding = str(part.get("encoding", "JSON")).upper()
    if encoding == "BASE64":
        return base64.b64decode(part["data"], validate=True)
    if encoding in ("JSON", "CSV", "NONE"):
        return part["data"].encode()
    raise ValueError(f"{where} has encoding {encoding!r}; expected BASE64, JSON or CSV")


def parse_line(line: str, where: str) -> Record:
    """A capture line as a Record; a line that is not a capture record at all is a UsageError naming it."""
    try:
        event = json.loads(line)
        data = event["captureData"]
        body_in = _body(data.get("endpointInput"), "captureData.endpointInput")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{where}: not a SageMaker capture record ({exc})") from None
    meta = event.get("eventMetadata") or {}
    try:
        request = json.loads(body_in)
        inputs = request["inputs"]
        inputs = (inputs,) if isinstance(inputs, str) else tuple(str(t) for t in inputs)
    except (ValueError, KeyError, TypeError):
        inputs = ()
    outputs: tuple[Any, ...] | None = None
    error = None
    try:
        answer = json.loads(_body(data.get("endpointOutput"), "captureData.endpointOutput"))
        if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
            error = str(answer.get("error", "no 'outputs' list"))[:200] if isinstance(answer, dict) else "no outputs"
        elif len(answer["outputs"]) != len(inputs):
            error = f"{len(answer['outputs'])} outputs for {len(inputs)} inputs"
        else:
            outputs = tuple(answer["outputs"])
    except (ValueError, TypeError) as exc:
        error = f"unreadable output ({exc})"[:200]
    latency = meta.get(LATENCY_KEY)
    return Record(inference_id=meta.get("inferenceId") or None, input_key=hashlib.sha256(body_in).hexdigest(),
                  inputs=inputs, outputs=outputs, error=error,
                  latency_ms=float(latency) if isinstance(latency, (int, float)) else None,
                  time=meta.get("inferenceTime") if isinstance(meta.get("inferenceTime"), str) else None)


def files(path: Path) -> list[Path]:
    """The capture files of a file or a folder (every *.jsonl below it, in path order)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UsageError(f"{path}: no such capture file or folder")
    found = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
    if not found:
        raise UsageError(f"{path}: no capture files (*.jsonl) in it")
    return found


def read(path: Path) -> Iterator[Record]:
    for file in files(path):
        with file.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield parse_line(line, f"{file}:{number}")


def local(location: str, scratch: Path) -> Path:
    """A local path for `location`: itself, or an s3:// prefix downloaded under `scratch`."""
    if s3.is_s3(location):
        return s3.download_prefix(location, Path(tempfile.mkdtemp(dir=scratch)) / "capture", what="capture")
    return Path(location)


def line(inputs: Sequence[str], outputs: Sequence[Any] | None, *, inference_id: str | None = None,
         event_id: str, time: str = "2026-12-02T08:00:00Z", latency_ms: float | None = None,
         error: str | None = None) -> str:
    """One capture line as SageMaker writes it (bodies base64-encoded), for tests, benchmarks and replays."""
    answer = {"outputs": list(outputs)} if outputs is not None else {"error": error or "model error"}

    def part(mode: str, body: Any) -> dict[str, str]:
        raw = json.dumps(body, separators=(",", ":")).encode()
        return {"observedContentType": "application/json", "mode": mode,
                "data": base64.b64encode(raw).decode(), "encoding": "BASE64"}

    meta: dict[str, Any] = {"eventId": event_id, "inferenceTime": time}
    if inference_id:
        meta["inferenceId"] = inference_id
    if latency_ms is not None:
        meta[LATENCY_KEY] = latency_ms
    return json.dumps({"captureData": {"endpointInput": part("INPUT", {"inputs": list(inputs)}),
                                       "endpointOutput": part("OUTPUT", answer)},
                       "eventMetadata": meta, "eventVersion": "0"})
