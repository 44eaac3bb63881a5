"""`aiinfra export`: the offline graph as a Pulumi stack-export document (`pulumi stack export`'s format).

Other tools (the policy runner's `--state`, drift checkers, diagram tools) read it the way they read a real
export. Secrets are marked with Pulumi's secret signature and a redacted ciphertext, never written in clear.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from aiinfra.engine import SECRET_MARK, SECRET_SIG, SIG_KEY
from aiinfra.graph import STACK_TYPE, ResourceGraph, ResourceRecord
from aiinfra.stack_args import add_stack_arguments, synthesize_from_args

REDACTED_CIPHERTEXT = "offline-synth:redacted"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="write the offline synth as a Pulumi stack-export document")
    add_stack_arguments(parser)
    parser.add_argument("--out", required=True, help="file to write, or - for standard output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    document = export_document(synthesize_from_args(args))
    text = export_text(document)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}: {len(document['deployment']['resources'])} resources", file=sys.stderr)
    return 0


def export_text(document: dict[str, Any]) -> str:
    """The file `aiinfra export` writes; the golden-export test compares exactly this text."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def export_document(graph: ResourceGraph, *, time: datetime | None = None) -> dict[str, Any]:
    """A version-3 deployment: manifest plus one entry per resource, stack first, in registration order.

    `time` is the manifest's timestamp (now when omitted); the golden-export test pins it.
    """
    return {
        "version": 3,
        "deployment": {
            "manifest": {
                "time": (time or datetime.now(timezone.utc)).isoformat(),
                "magic": "",
                "version": f"v{metadata.version('pulumi')}",
            },
            "secrets_providers": {"type": "offline"},
            "resources": [_resource(graph, record) for record in graph],
        },
    }


def _resource(graph: ResourceGraph, record: ResourceRecord) -> dict[str, Any]:
    outputs = graph.stack_outputs if record.type == STACK_TYPE else record.outputs
    entry: dict[str, Any] = {
        "urn": record.urn,
        "custom": record.custom,
        "type": record.type,
        "inputs": _mark_secrets(record.inputs if record.type != STACK_TYPE else {}),
        "outputs": _mark_secrets(outputs),
    }
    if record.id:
        entry["id"] = record.id
    if record.parent:
        entry["parent"] = record.parent
    if record.provider:
        entry["provider"] = record.provider
    if record.dependencies:
        entry["dependencies"] = list(record.dependencies)
    deps = {k: list(v) for k, v in record.property_dependencies.items() if v}
    if deps:
        entry["propertyDependencies"] = deps
    return entry


def _mark_secrets(value: Any) -> Any:
    if value == SECRET_MARK:
        return {SIG_KEY: SECRET_SIG, "ciphertext": REDACTED_CIPHERTEXT}
    if isinstance(value, dict):
        return {k: _mark_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secrets(v) for v in value]
    return value
