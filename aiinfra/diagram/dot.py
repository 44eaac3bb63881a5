"""The architecture as Graphviz DOT: placement boxes as clusters, flows as styled, labelled edges, keys as a legend.

Every node, cluster and edge carries an `id`, so the SVG that `dot` renders can be read back by tests and tools.
"""

from __future__ import annotations

from html import escape

from aiinfra.diagram import model
from aiinfra.diagram.model import Architecture, Group, Node

STORE_SERVICES = ("aws:s3/", "aws:msk/", "aws:elasticache/", "aws:secretsmanager/", "aws:ecr/", "aws:dynamodb/",
                  "aws:rds/", "aws:efs/", "aws:fsx/", "aws:sqs/", "aws:sns/", "aws:kinesis/")
CLUSTER_STYLE = {
    "vpc": 'style="rounded,bold" color="#2e7d32" fontcolor="#2e7d32"',
    "tier": 'style="rounded,filled" color="#81c784" fillcolor="#f1f8e9"',
    "az": 'style="rounded,dashed" color="#9e9e9e"',
    "eks": 'style="rounded,filled" color="#1e88e5" fillcolor="#e3f2fd"',
    "nodes": 'style="rounded,dashed" color="#1e88e5"',
    "pool": 'style="rounded,filled" color="#90caf9" fillcolor="#ffffff"',
    "component": 'style="rounded,filled" color="#bdbdbd" fillcolor="#fafafa"',
}
EDGE_STYLE = {
    "data": ('color="#1565c0" fontcolor="#1565c0" penwidth=1.6', "data (IAM grant: S3 prefix, topic)"),
    "traffic": ('color="#6a1b9a" fontcolor="#6a1b9a" penwidth=1.4', "connection (address in env / command)"),
    "peering": ('color="#c62828" fontcolor="#c62828" style=dashed', "security-group peering (port)"),
    "route": ('color="#757575" fontcolor="#757575" style=dotted', "default route"),
    "image": ('color="#bdbdbd" style=dashed arrowsize=0.6', "container image pull"),
}


def _node_style(node: Node) -> str:
    if node.type == "internet":
        return 'shape=ellipse style="filled" fillcolor="#ffebee" color="#c62828"'
    if node.role == model.WORKLOAD:
        return 'shape=box style="rounded,filled" fillcolor="#fff8e1" color="#f9a825"'
    if node.role == "external":
        return 'shape=box style="rounded,dashed,filled" fillcolor="#fffde7" color="#f9a825"'
    if node.role in (model.POOL, model.CLUSTER):
        return 'shape=box style="filled" fillcolor="#bbdefb" color="#1e88e5"'
    if node.type.startswith(STORE_SERVICES):
        return 'shape=cylinder style="filled" fillcolor="#fce4ec" color="#ad1457"'
    return 'shape=box style="rounded,filled" fillcolor="#eeeeee" color="#616161"'


def _html(node: Node) -> str:
    rows = [f"<B>{escape(node.title)}</B>"]
    if node.name:
        rows.append(escape(node.name))
    rows.extend(f'<FONT POINT-SIZE="9">{escape(line)}</FONT>' for line in node.details)
    if node.keys:
        rows.append(f'<FONT POINT-SIZE="9" COLOR="#2e7d32">KMS: {escape(", ".join(node.keys))}</FONT>')
    return "<" + "<BR/>".join(rows) + ">"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _cluster(arch: Architecture, group: Group, depth: int) -> list[str]:
    pad = "  " * depth
    lines = [f"{pad}subgraph cluster_{group.id} {{", f'{pad}  id="cluster_{group.id}";',
             f"{pad}  label={_quote(group.label)}; {CLUSTER_STYLE.get(group.kind, '')}"]
    lines.extend(_nodes(arch, group, depth + 1))
    for sub in group.groups:
        lines.extend(_cluster(arch, sub, depth + 1))
    lines.append(f"{pad}}}")
    return lines


def _nodes(arch: Architecture, group: Group, depth: int) -> list[str]:
    pad = "  " * depth
    return [f'{pad}{node_id} [id="{node_id}" label={_html(arch.nodes[node_id])} {_node_style(arch.nodes[node_id])}];'
            for node_id in group.nodes]


def _legend(arch: Architecture) -> list[str]:
    rows = ['<TR><TD COLSPAN="2"><B>legend</B></TD></TR>']
    for kind, (style, text) in EDGE_STYLE.items():
        color = style.split('"')[1]
        arrow = "- - -&gt;" if "dash" in style or "dot" in style else "——&gt;"
        rows.append(f'<TR><TD><FONT COLOR="{color}">{arrow}'
                    f'</FONT></TD><TD ALIGN="LEFT">{escape(text)}</TD></TR>')
    for badge, text in arch.legend:
        rows.append(f'<TR><TD><FONT COLOR="#2e7d32">KMS {escape(badge)}</FONT></TD>'
                    f'<TD ALIGN="LEFT">{escape(text)}</TD></TR>')
    if arch.notes:
        rows.append(f'<TR><TD>not drawn</TD><TD ALIGN="LEFT">{escape(", ".join(arch.notes))} '
                    f'(see --view dependencies)</TD></TR>')
    table = '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">' + "".join(rows) + "</TABLE>"
    return ["  subgraph cluster_legend {", '    id="cluster_legend"; label=""; style=invis;',
            f'    legend [id="legend" shape=plaintext label=<{table}>];', "  }"]


def to_dot(arch: Architecture) -> str:
    lines = ["digraph aiinfra {",
             f'  graph [label={_quote(arch.title + ": architecture")} labelloc=t fontsize=16 rankdir=TB '
             'compound=true newrank=true nodesep=0.3 ranksep=0.7 fontname="Helvetica"];',
             '  node [fontname="Helvetica" fontsize=10 margin="0.12,0.06"];',
             '  edge [fontname="Helvetica" fontsize=9];']
    lines.extend(_nodes(arch, arch.root, 1))
    for group in arch.root.groups:
        lines.extend(_cluster(arch, group, 1))
    lines.extend(_legend(arch))
    for group in arch.root.walk():
        if group.kind == "pool" and len(group.nodes) > 1:
            # The pool's own box heads its column; the pods it runs hang below it.
            lines.extend(f"  {group.nodes[0]} -> {pod} [style=invis];" for pod in group.nodes[1:])
    for i, edge in enumerate(arch.edges):
        attrs = [f'id="edge{i}"', EDGE_STYLE[edge.kind][0]]
        if edge.labels and edge.kind != "image":
            attrs.append(f"label={_quote(chr(10).join(edge.labels))}")
        if edge.tail:
            attrs.append(f"ltail=cluster_{edge.tail}")
        if edge.head:
            attrs.append(f"lhead=cluster_{edge.head}")
        lines.append(f"  {edge.source} -> {edge.target} [{' '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines)
