"""Decoding request bodies: both protocols take a JSON object and blame the body field the same way."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import BadRequest


def json_object(body: bytes, expected: str) -> dict[str, Any]:
    """The body as a JSON object; `expected` describes a valid body for the error message."""
    if not body:
        raise BadRequest(f"request body is empty; expected {expected}", field="body")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", field="body") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"request body must be a JSON object, got {kind_of(doc)}", field="body")
    return doc


def kind_of(value: object) -> str:
    """A JSON value's kind in words, for messages that say what was sent instead."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
