"""`aiinfra preview`: what the stack declares, grouped by component, with counts and the stack outputs."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

from aiinfra.graph import STACK_TYPE, ResourceGraph, ResourceRecord
from aiinfra.policy_command import policy_section
from aiinfra.stack_args import add_stack_arguments, synthesize_from_args


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("preview", help="render a stack offline and summarise what it declares")
    add_stack_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    graph = synthesize_from_args(args)
    print(render_summary(graph))
    section, blocking = policy_section(graph)
    print("\n" + section)
    return 1 if blocking else 0


def render_summary(graph: ResourceGraph) -> str:
    environment = graph.config.get("aiinfra:environment", "?")
    region = graph.config.get("aws:region", "?")
    custom = [r for r in graph if r.custom and not r.is_provider]
    lines = [f"Stack {graph.project}/{graph.stack} (environment {environment}, region {region}): "
             f"{len(custom)} resources in {len(_groups(graph))} components", ""]
    for (component_type, component_name), records in _groups(graph).items():
        lines.append(f"{component_type} {component_name}  ({len(records)})")
        by_type: dict[str, list[str]] = defaultdict(list)
        for record in records:
            by_type[record.type].append(record.name.removeprefix(f"{component_name}-"))
        width = max(len(t) for t in by_type)
        for type_token in sorted(by_type):
            names = by_type[type_token]
            lines.append(f"    {len(names):>3}  {type_token:<{width}}  {_short(', '.join(sorted(names)), 70)}")
        lines.append("")
    lines.append("Outputs")
    width = max((len(k) for k in graph.stack_outputs), default=0)
    for key in sorted(graph.stack_outputs):
        lines.append(f"    {key:<{width}}  {_short(graph.stack_outputs[key])}")
    return "\n".join(lines)


def _groups(graph: ResourceGraph) -> dict[tuple[str, str], list[ResourceRecord]]:
    """Custom resources under their top-level component, components in the order they were declared."""
    groups: dict[tuple[str, str], list[ResourceRecord]] = {
        (r.type.removeprefix("aiinfra:"), r.name): [] for r in graph if r.type.startswith("aiinfra:")}
    for record in graph:
        if not record.custom or record.is_provider or record.type == STACK_TYPE:
            continue
        component = graph.component_of(record)
        key = (component.type.removeprefix("aiinfra:"), component.name) if component else ("(no component)", "")
        groups.setdefault(key, []).append(record)
    return {key: groups[key] for key in sorted(groups) if groups[key]}


def _short(value: Any, limit: int = 110) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
