"""Open Inference Protocol v2 (KServe / Triton REST): metadata, and infer with a BYTES [N] text input.

JSON tensors and Triton's binary tensor extension are both understood, so `tritonclient.http` works with
its defaults (binary) as well as with `binary_data=False` (JSON).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .errors import BadRequest, PayloadTooLarge
from .model import CLASSIFICATION, ModelInfo
from .payload import json_object, kind_of

INPUT_NAME = "text"
HEADER_LENGTH = "Inference-Header-Content-Length"
SERVER_NAME = "aiinfra-serving"
SERVER_VERSION = "1.0.0"
MODEL_VERSION = "1"


def output_specs(info: ModelInfo) -> list[dict[str, Any]]:
    """The outputs this model answers with: names, datatypes and shapes (-1 is the batch dimension)."""
    if info.task == CLASSIFICATION:
        return [{"name": "scores", "datatype": "FP32", "shape": [-1, info.dim]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]}]
    return [{"name": "embedding", "datatype": "FP32", "shape": [-1, info.dim]}]


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": ["binary_tensor_data"]}


def model_metadata(name: str, info: ModelInfo) -> dict[str, Any]:
    return {
        "name": name, "versions": [MODEL_VERSION], "platform": info.platform,
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": output_specs(info),
        "parameters": {"task": info.task, "max_seq_len": info.max_seq_len, "device": info.device,
                       **({"labels": list(info.labels)} if info.labels else {})},
    }


@dataclass(frozen=True)
class InferRequest:
    """A parsed infer request: the texts, which outputs to return, and which of them in binary form."""

    id: str | None
    texts: list[str]
    outputs: list[tuple[str, bool]]  # (name, binary)


def parse_infer(body: bytes, header_length: str | None, info: ModelInfo, max_inputs: int) -> InferRequest:
    """Validate an infer body (JSON, or JSON header plus binary tensors); errors name the field."""
    binary = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise BadRequest(f"{HEADER_LENGTH} is {header_length!r}, not a length within the body",
                             field=HEADER_LENGTH)
        body, binary = body[:n], body[n:]
    doc = json_object(body, "an inference request object")
    req_id = doc.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise BadRequest(f"'id' must be a string, got {kind_of(req_id)}", field="id")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise BadRequest(f"'inputs' must be a list with exactly one tensor named '{INPUT_NAME}'", field="inputs")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise BadRequest(f"'inputs[0]' must be an object, got {kind_of(tensor)}", field="inputs[0]")
    if tensor.get("name") != INPUT_NAME:
        raise BadRequest(f"'inputs[0].name' is {tensor.get('name')!r}; this model's input is '{INPUT_NAME}'",
                         field="inputs[0].name")
    if tensor.get("datatype") != "BYTES":
        raise BadRequest(f"'inputs[0].datatype' is {tensor.get('datatype')!r}; expected 'BYTES'",
                         field="inputs[0].datatype")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 2 or
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) or
            (len(shape) == 2 and shape[1] != 1)):
        raise BadRequest(f"'inputs[0].shape' is {shape!r}; expected [N] (or [N, 1])", field="inputs[0].shape")
    count = shape[0]
    if count == 0:
        raise BadRequest("'inputs[0]' holds no texts; send at least one", field="inputs[0].shape")
    if count > max_inputs:
        raise PayloadTooLarge(f"'inputs[0]' has {count} texts; at most {max_inputs} are allowed per request",
                              field="inputs[0].shape", kind="too_many_inputs")
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest("'inputs[0].parameters' must be an object", field="inputs[0].parameters")
    if "binary_data_size" in params:
        texts = _binary_texts(binary, params["binary_data_size"], count)
    else:
        texts = _json_texts(tensor.get("data"), count)
    return InferRequest(id=req_id, texts=texts, outputs=_requested_outputs(doc, info))


def _json_texts(data: Any, count: int) -> list[str]:
    if not isinstance(data, list):
        raise BadRequest(f"'inputs[0].data' must be a list of strings, got {kind_of(data)}", field="inputs[0].data")
    flat = [d[0] if isinstance(d, list) and len(d) == 1 else d for d in data]  # [N, 1] may come nested
    if len(flat) != count:
        raise BadRequest(f"'inputs[0].data' has {len(flat)} elements but the shape says {count}",
                         field="inputs[0].data")
    for i, item in enumerate(flat):
        if not isinstance(item, str):
            raise BadRequest(f"'inputs[0].data[{i}]' must be a string, got {kind_of(item)}",
                             field=f"inputs[0].data[{i}]")
    return flat


def _binary_texts(binary: bytes, size: Any, count: int) -> list[str]:
    """Triton's BYTES encoding: each element is a little-endian uint32 length followed by its bytes."""
    field = "inputs[0].parameters.binary_data_size"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > len(binary):
        raise BadRequest(f"'{field}' is {size!r}; the binary part of the body has {len(binary)} bytes", field=field)
    buf, pos, texts = binary[:size], 0, []
    for i in range(count):
        if pos + 4 > len(buf):
            raise BadRequest(f"binary tensor ends before element {i} of {count}", field=field)
        (n,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if pos + n > len(buf):
            raise BadRequest(f"binary tensor element {i} is cut short", field=field)
        try:
            texts.append(buf[pos:pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(f"binary tensor element {i} is not UTF-8 text", field=field) from None
        pos += n
    if pos != len(buf):
        raise BadRequest(f"binary tensor has {len(buf) - pos} bytes after its {count} elements", field=field)
    return texts


def _requested_outputs(doc: dict[str, Any], info: ModelInfo) -> list[tuple[str, bool]]:
    known = [spec["name"] for spec in output_specs(info)]
    params = doc.get("parameters") or {}
    default_binary = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    requested = doc.get("outputs")
    if requested is None:
        return [(name, default_binary) for name in known]
    if not isinstance(requested, list):
        raise BadRequest(f"'outputs' must be a list, got {kind_of(requested)}", field="outputs")
    out = []
    for i, item in enumerate(requested):
        name = item.get("name") if isinstance(item, dict) else None
        if name not in known:
            raise BadRequest(f"'outputs[{i}].name' is {name!r}; this model's outputs are {', '.join(known)}",
                             field=f"outputs[{i}].name")
        p = item.get("parameters") or {}
        out.append((name, bool(p.get("binary_data", default_binary)) if isinstance(p, dict) else default_binary))
    return out


def build_response(model_name: str, info: ModelInfo, req: InferRequest, rows: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """The response body and headers; binary outputs follow the JSON header, as Triton's extension says."""
    n = len(rows)
    tensors, blobs = [], []
    for name, binary in req.outputs:
        if name == "label":
            labels = info.labels or ()
            values = [labels[int(i)] for i in rows.argmax(axis=1)]
            spec: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": [n]}
            if binary:
                blob = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
            else:
                spec["data"] = values
        else:
            flat = np.ascontiguousarray(rows, dtype=np.float32)
            spec = {"name": name, "datatype": "FP32", "shape": [n, int(rows.shape[1])]}
            if binary:
                blob = flat.astype("<f4", copy=False).tobytes()
            else:
                spec["data"] = flat.reshape(-1)
        if binary:
            spec["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        tensors.append(spec)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": MODEL_VERSION, "outputs": tensors}
    if req.id is not None:
        doc["id"] = req.id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
