"""The SageMaker real-time contract: `{"inputs": [...]}` in, `{"outputs": [...]}` out, one entry per input."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from .errors import BadRequest
from .model import CLASSIFICATION, ModelInfo


def parse_invocation(body: bytes, max_inputs: int) -> list[str]:
    """The texts in an `/invocations` body; a single string is one input. Errors name the offending field."""
    if not body:
        raise BadRequest("request body is empty; expected {\"inputs\": [\"text\", ...]}", field="body")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", field="body") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"request body must be a JSON object, got {_kind(doc)}", field="body")
    if "inputs" not in doc:
        raise BadRequest("missing field 'inputs' (a string or a list of strings)", field="inputs")
    inputs = doc["inputs"]
    if isinstance(inputs, str):
        return [inputs]
    if not isinstance(inputs, list):
        raise BadRequest(f"'inputs' must be a string or a list of strings, got {_kind(inputs)}", field="inputs")
    if not inputs:
        raise BadRequest("'inputs' is an empty list; send at least one string", field="inputs")
    if len(inputs) > max_inputs:
        raise BadRequest(f"'inputs' has {len(inputs)} entries; at most {max_inputs} are allowed per request",
                         field="inputs", kind="too_many_inputs")
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise BadRequest(f"'inputs[{i}]' must be a string, got {_kind(item)}", field=f"inputs[{i}]")
    return inputs


def format_outputs(info: ModelInfo, rows: np.ndarray) -> bytes:
    """`{"outputs": [...]}`: embedding vectors, or `{"label", "scores"}` per input for a classifier."""
    if info.task == CLASSIFICATION:
        labels = info.labels or ()
        best = rows.argmax(axis=1)
        outputs: Any = [
            {"label": labels[int(b)], "scores": {name: float(p) for name, p in zip(labels, row)}}
            for b, row in zip(best, rows)
        ]
        return orjson.dumps({"outputs": outputs})
    return orjson.dumps({"outputs": np.ascontiguousarray(rows, dtype=np.float32)}, option=orjson.OPT_SERIALIZE_NUMPY)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
