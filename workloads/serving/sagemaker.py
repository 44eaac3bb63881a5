"""The SageMaker real-time contract: `{"inputs": [...]}` in, `{"outputs": [...]}` out, one entry per input."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from .errors import BadRequest, PayloadTooLarge
from .model import CLASSIFICATION, ModelInfo
from .payload import json_object, kind_of


def parse_invocation(body: bytes, max_inputs: int) -> list[str]:
    """The texts in an `/invocations` body; a single string is one input. Errors name the offending field."""
    doc = json_object(body, '{"inputs": ["text", ...]}')
    if "inputs" not in doc:
        raise BadRequest("missing field 'inputs' (a string or a list of strings)", field="inputs")
    inputs = doc["inputs"]
    if isinstance(inputs, str):
        return [inputs]
    if not isinstance(inputs, list):
        raise BadRequest(f"'inputs' must be a string or a list of strings, got {kind_of(inputs)}", field="inputs")
    if not inputs:
        raise BadRequest("'inputs' is an empty list; send at least one string", field="inputs")
    if len(inputs) > max_inputs:
        raise PayloadTooLarge(f"'inputs' has {len(inputs)} entries; at most {max_inputs} are allowed per request",
                              field="inputs", kind="too_many_inputs")
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise BadRequest(f"'inputs[{i}]' must be a string, got {kind_of(item)}", field=f"inputs[{i}]")
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

