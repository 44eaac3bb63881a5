"""The architecture as a Mermaid flowchart, for Markdown: the same boxes, nodes and labelled edges as the DOT."""

from __future__ import annotations

import re

from aiinfra.diagram.dot import STORE_SERVICES
from aiinfra.diagram.model import Architecture, Group, Node

ARROWS = {"data": "-->", "traffic": "==>", "peering": "-.->", "route": "-.->", "image": "-.->"}


def _text(text: str) -> str:
    return re.sub(r'["\[\]{}()<>|#]', " ", text).strip()


def _node(node: Node) -> str:
    lines = [f"<b>{_text(node.title)}</b>"] + ([_text(node.name)] if node.name else []) \
        + [_text(line) for line in node.details] + ([f"KMS: {', '.join(node.keys)}"] if node.keys else [])
    label = "<br/>".join(lines)
    if node.type.startswith(STORE_SERVICES):
        return f'{node.id}[("{label}")]'
    return f'{node.id}("{label}")'


def _group(arch: Architecture, group: Group, depth: int) -> list[str]:
    pad = "  " * depth
    lines = [f'{pad}subgraph {group.id}["{_text(group.label)}"]']
    lines.extend(f"{pad}  {_node(arch.nodes[n])}" for n in group.nodes)
    for sub in group.groups:
        lines.extend(_group(arch, sub, depth + 1))
    lines.append(f"{pad}end")
    return lines


def to_mermaid(arch: Architecture) -> str:
    lines = ["flowchart LR"]
    lines.extend(f"  {_node(arch.nodes[n])}" for n in arch.root.nodes)
    for group in arch.root.groups:
        lines.extend(_group(arch, group, 1))
    for edge in arch.edges:
        source = edge.tail or edge.source
        target = edge.head or edge.target
        label = "<br/>".join(_text(text) for text in edge.labels) if edge.kind != "image" else "image"
        arrow = ARROWS[edge.kind]
        lines.append(f'  {source} {arrow}|"{label}"| {target}' if label else f"  {source} {arrow} {target}")
    if arch.legend:
        lines.append("  %% KMS keys: " + "; ".join(f"{badge} = {text}" for badge, text in arch.legend))
    return "\n".join(lines)
