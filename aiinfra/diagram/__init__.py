"""`aiinfra graph`: the platform drawn from the recorded resource graph.

The default view (`--view architecture`) nests resources by placement (VPC, subnet tier, AZ, EKS cluster, node
pool) and draws what flows between them (`model`, `flows`); `--view dependencies` keeps the plain "takes an
output of" graph grouped by component (`dependencies`). Both print as Mermaid or DOT text; `--format svg|png`
renders the DOT with Graphviz (`render`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aiinfra.diagram import dependencies, dot, flows, mermaid, model
from aiinfra.diagram.dependencies import build, to_dot, to_mermaid
from aiinfra.diagram.model import Architecture
from aiinfra.diagram.render import FORMATS, render, require_dot
from aiinfra.errors import UsageError
from aiinfra.graph import ResourceGraph
from aiinfra.stack_args import add_stack_arguments, synthesize_from_args

VIEWS = ("architecture", "dependencies")

__all__ = ["Architecture", "build", "build_architecture", "draw", "to_dot", "to_mermaid"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("graph", help="draw the platform: placement and data flow, or dependencies")
    add_stack_arguments(parser)
    parser.add_argument("--view", choices=VIEWS, default="architecture",
                        help="architecture: nested by placement, edges are data flow, connections, peerings "
                             "(default); dependencies: which resource takes which one's output")
    parser.add_argument("--format", choices=("mermaid", "dot", *FORMATS), default="mermaid",
                        help="mermaid or dot print text; svg and png are rendered by Graphviz `dot`")
    parser.add_argument("--output", "-o", default=None, help="write here instead of stdout (needed for png on a tty)")
    parser.set_defaults(run=run)


def build_architecture(graph: ResourceGraph) -> Architecture:
    """The architecture view of one graph: placed nodes (`model`), then what flows between them (`flows`)."""
    placed = model.layout(graph)
    flows.add_flows(placed.index, placed.arch)
    return model.finish(placed)


def draw(graph: ResourceGraph, view: str, fmt: str) -> bytes:
    """The picture of one graph in one view and format."""
    if view == "dependencies":
        diagram = dependencies.build(graph)
        text = dependencies.to_mermaid(diagram) if fmt == "mermaid" else dependencies.to_dot(diagram)
    else:
        arch = build_architecture(graph)
        text = mermaid.to_mermaid(arch) if fmt == "mermaid" else dot.to_dot(arch)
    return render(text, fmt) if fmt in FORMATS else (text + "\n").encode()


def run(args: argparse.Namespace) -> int:
    if args.format == "png" and args.output is None and sys.stdout.isatty():
        raise UsageError("--format png is binary: give --output FILE or redirect stdout")
    if args.format in FORMATS:
        require_dot(args.format)
    picture = draw(synthesize_from_args(args), args.view, args.format)
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(picture)
        sys.stdout.buffer.flush()
        return 0
    try:
        with open(args.output, "wb") as handle:
            handle.write(picture)
    except OSError as exc:
        raise UsageError(f"--output {args.output}: {exc.strerror}") from None
    return 0
