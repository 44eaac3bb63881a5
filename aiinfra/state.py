"""Reads a Pulumi stack-export document back into a `ResourceGraph`: the inverse of `aiinfra export`, and
tolerant of what a real `pulumi stack export` writes (secrets with ciphertext or plaintext, provider references
as `urn::id`, resources without inputs), so deployed stacks can be audited with the same rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiinfra.engine import SECRET_MARK, SECRET_SIG, SIG_KEY
from aiinfra.graph import STACK_TYPE, ResourceGraph, ResourceRecord


class StateError(ValueError):
    """The document is not a stack export this reader understands."""


def load_state(path: Path) -> ResourceGraph:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise StateError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: cannot read: {exc}") from None
    except ValueError as exc:
        raise StateError(f"{path}: not JSON ({exc})") from None
    return graph_from_export(document, source=str(path))


def graph_from_export(document: Any, *, source: str = "state") -> ResourceGraph:
    """A graph from `{"version": 3, "deployment": {...}}` or a bare deployment `{"manifest": ..., "resources": [...]}`."""
    if not isinstance(document, Mapping):
        raise StateError(f"{source}: expected a JSON object with a 'deployment'")
    deployment = document.get("deployment", document)
    if not isinstance(deployment, Mapping) or not isinstance(deployment.get("resources", []), list):
        raise StateError(f"{source}: 'deployment.resources' must be a list")
    entries = deployment.get("resources") or []
    project, stack = "", ""
    for entry in entries:
        urn = str(entry.get("urn", "")) if isinstance(entry, Mapping) else ""
        if urn.split("::")[2:3] == [STACK_TYPE] or (urn and not project):
            stack, project = _stack_and_project(urn, source)
    graph = ResourceGraph(project, stack)
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not entry.get("urn") or not entry.get("type"):
            raise StateError(f"{source}: resources[{index}] needs 'urn' and 'type'")
        record = _record(entry)
        if record.type == STACK_TYPE:
            graph.stack_outputs.update(dict(record.outputs))
            record = ResourceRecord(**{**record.__dict__, "outputs": {}})
        graph.records.append(record)
    return graph


def _stack_and_project(urn: str, source: str) -> tuple[str, str]:
    parts = urn.split("::")
    if len(parts) < 4 or not parts[0].startswith("urn:pulumi:"):
        raise StateError(f"{source}: {urn!r} is not a Pulumi URN")
    return parts[0].removeprefix("urn:pulumi:"), parts[1]


def _record(entry: Mapping[str, Any]) -> ResourceRecord:
    urn = str(entry["urn"])
    deps = entry.get("propertyDependencies") or {}
    return ResourceRecord(
        urn=urn, type=str(entry["type"]), name=urn.rsplit("::", 1)[-1], custom=bool(entry.get("custom", False)),
        parent=str(entry.get("parent") or ""), provider=str(entry.get("provider") or ""), id=str(entry.get("id") or ""),
        dependencies=tuple(entry.get("dependencies") or ()),
        property_dependencies={str(k): tuple(v or ()) for k, v in deps.items()},
        inputs=reveal(entry.get("inputs") or {}), outputs=reveal(entry.get("outputs") or {}),
    )


def reveal(value: Any) -> Any:
    """Secrets become their plaintext where the export carries it (`--show-secrets`), else a placeholder."""
    if isinstance(value, Mapping):
        if value.get(SIG_KEY) == SECRET_SIG:
            if "plaintext" in value:
                try:
                    return reveal(json.loads(value["plaintext"]))
                except (TypeError, ValueError):
                    return value["plaintext"]
            if "value" in value:
                return reveal(value["value"])
            return SECRET_MARK
        return {str(k): reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value
