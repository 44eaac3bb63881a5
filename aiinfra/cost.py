"""`aiinfra cost`: the stack's estimated monthly cost per resource and per component, from the shipped price
table, at two bases: the floor (scaled pools at their minimum) and the ceiling (scaled pools at their limits:
node groups at maxSize, Karpenter NodePools at spec.limits, endpoint variants at maxCapacity). The policy pack's
`monthly-budget` rule uses the same estimate on the basis its config states."""

from __future__ import annotations

import argparse
import json
import sys
from html import escape
from collections import defaultdict
from typing import Any

from aiinfra.diagram.render import render as render_picture
from aiinfra.diagram.render import require_dot
from aiinfra.errors import UsageError
from policies.rules.cost_model import BASES, Basis, Estimate, estimate, load_prices
from aiinfra.graph import ResourceGraph
from aiinfra.policy_runner import resource_views
from aiinfra.stack_args import add_stack_arguments, synthesize_from_args
from policies.rules import Stack


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("cost", help="estimate a stack's monthly cost from the shipped price table")
    add_stack_arguments(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the estimate as JSON")
    output.add_argument("--chart", action="store_true",
                        help="print an SVG bar chart of the monthly cost by component (floor and ceiling), the "
                             "unpriced kinds beside it; needs Graphviz `dot`")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.chart:
        require_dot("svg")
    graph = synthesize_from_args(args)
    result = estimate_graph(graph)
    if args.chart:
        sys.stdout.flush()
        sys.stdout.buffer.write(render_picture(chart(graph, result), "svg"))
        return 0
    print(json.dumps(as_json(graph, result), indent=2) if args.json else render(graph, result))
    return 0


def estimate_graph(graph: ResourceGraph) -> Estimate:
    region = str(graph.config.get("aws:region", "us-east-1"))
    try:
        prices = load_prices(region)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    return estimate(Stack(resource_views(graph)), prices)


def _component(graph: ResourceGraph, urn: str) -> str:
    record = graph.by_urn.get(urn)
    component = graph.component_of(record) if record is not None else None
    return component.type.removeprefix("aiinfra:") if component else "(no component)"


def by_component(graph: ResourceGraph, result: Estimate, basis: Basis = "floor") -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for line in result.lines:
        totals[_component(graph, line.resource.urn)] += line.at(basis)
    return {k: round(v, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def render(graph: ResourceGraph, result: Estimate) -> str:
    prices = result.prices
    lines = [f"Estimated monthly cost of {graph.project}/{graph.stack}: ${result.total:,.2f} {prices.currency}/month "
             f"at the floor (scaled pools at their minimum), up to ${result.ceiling:,.2f} at the ceiling "
             f"(node groups at maxSize, Karpenter NodePools at spec.limits, endpoint variants at maxCapacity)"]
    for basis in BASES:
        lines.append(f"  {basis + ':':<8} on-demand ${result.total_by('on-demand', basis):,.2f}, "
                     f"spot ${result.total_by('spot', basis):,.2f}, fixed-rate ${result.total_by('fixed', basis):,.2f}")
    lines.append("")
    rows = sorted(result.lines, key=lambda line: (_component(graph, line.resource.urn), -line.at("ceiling")))
    width = max((len(line.resource.name) for line in rows), default=8)
    floors, ceilings = by_component(graph, result), by_component(graph, result, "ceiling")
    lines.append(f"    {'':<{width}}  {'':<22} {'':<9} {'floor':>12}  {'ceiling':>12}")
    current = None
    for line in rows:
        component = _component(graph, line.resource.urn)
        if component != current:
            lines.append(f"{component}  ${floors[component]:,.2f} .. ${ceilings[component]:,.2f}")
            current = component
        kind = line.resource.type.split(":")[-1]
        lines.append(f"    {line.resource.name:<{width}}  {kind:<22} {line.pricing:<9} ${line.monthly:>11,.2f}  "
                     f"${line.at('ceiling'):>11,.2f}  {line.detail}")
    lines.append("")
    lines.append(f"Unpriced ({len(result.unpriced)}; not included in either total):")
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in result.unpriced:
        groups[(item.resource.type, item.reason)].append(item.resource.name)
    for (type_token, reason), names in sorted(groups.items()):
        lines.append(f"    {len(names):>3} x {type_token}: {reason} ({', '.join(sorted(names)[:4])}"
                     f"{', ...' if len(names) > 4 else ''})")
    lines.append(f"No charge by themselves: {result.no_charge} resources (IAM, routing, configuration).")
    lines.append(f"Prices: {prices.region}, {prices.date}, {prices.hours:g} h/month. Source: {prices.source}")
    ebs = prices.data.get("ebs") or {}
    if ebs.get("source"):
        lines.append(f"EBS prices: {ebs.get('date')}. Source: {ebs['source']}")
    return "\n".join(lines)


def as_json(graph: ResourceGraph, result: Estimate) -> dict[str, Any]:
    return {
        "stack": graph.stack, "currency": result.prices.currency, "total": result.total, "ceiling": result.ceiling,
        "bases": {"floor": "scaled pools at their minimum (node group minSize, NodePools 0 nodes, endpoint "
                           "variants at their initial count)",
                  "ceiling": "scaled pools at their limits (node group maxSize, NodePool spec.limits on the "
                             "priciest type, endpoint variants at maxCapacity)"},
        "totals": {p: result.total_by(p) for p in ("on-demand", "spot", "fixed")},
        "ceilingTotals": {p: result.total_by(p, "ceiling") for p in ("on-demand", "spot", "fixed")},
        "byComponent": by_component(graph, result),
        "byComponentCeiling": by_component(graph, result, "ceiling"),
        "prices": {"region": result.prices.region, "date": result.prices.date, "source": result.prices.source},
        "resources": [{"urn": line.resource.urn, "type": line.resource.type, "name": line.resource.name,
                       "component": _component(graph, line.resource.urn), "monthly": line.monthly,
                       "ceiling": line.at("ceiling"),
                       "pricing": line.pricing, "detail": line.detail} for line in result.lines],
        "unpriced": [{"urn": u.resource.urn, "type": u.resource.type, "name": u.resource.name, "reason": u.reason}
                     for u in result.unpriced],
    }


BAR_WIDTH = 420     # points for the largest ceiling
FLOOR_COLOR, CEILING_COLOR = "#1565c0", "#90caf9"


def chart(graph: ResourceGraph, result: Estimate) -> str:
    """DOT for the monthly cost by component as horizontal bars (floor solid, ceiling behind it, both labelled),
    with the unpriced kinds in a table beside: Graphviz draws it, so the cost chart and the architecture
    picture come from one renderer."""
    floors, ceilings = by_component(graph, result), by_component(graph, result, "ceiling")
    top = max(ceilings.values(), default=0.0) or 1.0
    rows = [f'<TR><TD COLSPAN="3"><B>{escape(graph.project)}/{escape(graph.stack)}: estimated monthly cost '
            f'({escape(result.prices.currency)})</B></TD></TR>',
            f'<TR><TD COLSPAN="3"><FONT POINT-SIZE="9">floor ${result.total:,.0f} (scaled pools at their minimum) '
            f'.. ceiling ${result.ceiling:,.0f} (at their limits); prices {escape(result.prices.region)} '
            f'{escape(str(result.prices.date))}: <FONT COLOR="{FLOOR_COLOR}">&#9632; floor</FONT> '
            f'<FONT COLOR="{CEILING_COLOR}">&#9632; ceiling</FONT></FONT></TD></TR>']
    for component in sorted(ceilings, key=lambda c: -ceilings[c]):
        floor, ceiling = floors.get(component, 0.0), ceilings[component]
        rows.append(f'<TR><TD ALIGN="RIGHT">{escape(component)}</TD><TD ALIGN="LEFT">{_bars(floor, ceiling, top)}'
                    f'</TD><TD ALIGN="LEFT">${floor:,.0f} .. ${ceiling:,.0f}</TD></TR>')
    bars = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2">' + "".join(rows) + "</TABLE>"
    groups: dict[str, int] = defaultdict(int)
    reasons: dict[str, str] = {}
    for item in result.unpriced:
        groups[item.resource.type] += 1
        reasons.setdefault(item.resource.type, item.reason)
    unpriced = ['<TR><TD COLSPAN="2"><B>unpriced (not in either total)</B></TD></TR>']
    unpriced += [f'<TR><TD ALIGN="RIGHT">{count} x {escape(type_token.rsplit(":", 1)[-1])}</TD>'
                 f'<TD ALIGN="LEFT"><FONT POINT-SIZE="9">{escape(reasons[type_token])}</FONT></TD></TR>'
                 for type_token, count in sorted(groups.items())]
    side = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2">' + "".join(unpriced) + "</TABLE>"
    return "\n".join([
        "digraph cost {", '  graph [rankdir=LR fontname="Helvetica"];',
        '  node [shape=plaintext fontname="Helvetica" fontsize=10];',
        f'  bars [id="bars" label=<{bars}>];', f'  unpriced [id="unpriced" label=<{side}>];',
        "  bars -> unpriced [style=invis];", "}"])


def _bars(floor: float, ceiling: float, top: float) -> str:
    """One floor bar over one ceiling bar, widths proportional to the largest ceiling."""
    def bar(value: float, color: str) -> str:
        width = max(1, round(BAR_WIDTH * value / top))
        rest = BAR_WIDTH - width
        cells = f'<TD WIDTH="{width}" HEIGHT="8" FIXEDSIZE="TRUE" BGCOLOR="{color}"></TD>'
        if rest > 0:
            cells += f'<TD WIDTH="{rest}" HEIGHT="8" FIXEDSIZE="TRUE"></TD>'
        return f'<TR><TD><TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>{cells}</TR></TABLE></TD></TR>'
    return ('<TABLE BORDER="0" CELLSPACING="1" CELLPADDING="0">' + bar(floor, FLOOR_COLOR) + bar(ceiling, CEILING_COLOR)
            + "</TABLE>")
