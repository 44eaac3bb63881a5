"""`aiinfra policy`: the pack's rules over the offline synth of a stack (`--stack`) or a stack export
(`--state`). Exit 1 when a mandatory policy is violated, 0 otherwise, 2 for bad usage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aiinfra.errors import UsageError
from aiinfra.graph import ResourceGraph
from aiinfra.policy_runner import PolicyConfigError, evaluate, load_policy_config, mandatory, render_report
from aiinfra.stack_args import synthesize_from_args
from aiinfra.state import StateError, load_state
from policies.rules import ALL_RULES


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="check a stack or a stack export against the policy pack")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="stack name: check the offline synth of stacks/Pulumi.<stack>.yaml")
    source.add_argument("--state", type=Path, help="check a stack-export document (pulumi stack export / aiinfra export)")
    parser.add_argument("--stack-file", type=Path, default=None,
                        help="with --stack: read config from this file instead of stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--config", type=Path, default=None,
                        help="policy config in --policy-pack-config format (overrides the schema defaults)")
    parser.add_argument("--json", action="store_true", help="print findings as a JSON list")
    parser.set_defaults(run=run)


def load_graph(args: argparse.Namespace) -> ResourceGraph:
    """The graph to check: a stack export when --state is given, else the offline synth of --stack."""
    if getattr(args, "state", None) is not None:
        if args.stack_file is not None:
            raise UsageError("--stack-file goes with --stack, not --state")
        try:
            return load_state(args.state)
        except StateError as exc:
            raise UsageError(str(exc)) from None
    return synthesize_from_args(args)


def policy_section(graph: ResourceGraph) -> tuple[str, bool]:
    """The policy report `aiinfra preview` prints under its summary, and whether a mandatory policy failed
    (preview then fails, as `pulumi preview --policy-pack` does)."""
    findings = evaluate(graph)
    report = render_report(findings, title="Policies (policies/, as `pulumi preview --policy-pack policies`)",
                           rule_count=len(ALL_RULES), resource_count=sum(1 for r in graph if r.custom))
    return report, bool(mandatory(findings))


def run(args: argparse.Namespace) -> int:
    try:
        config = load_policy_config(args.config) if args.config is not None else {}
    except PolicyConfigError as exc:
        raise UsageError(str(exc)) from None
    graph = load_graph(args)
    findings = evaluate(graph, config=config)
    if args.json:
        print(json.dumps([f.as_json() for f in findings], indent=2))
    else:
        title = f"Policy report for {graph.project}/{graph.stack}" + (f" ({args.state})" if args.state else "")
        print(render_report(findings, title=title, rule_count=len(ALL_RULES),
                            resource_count=sum(1 for r in graph if r.custom)))
    return 1 if mandatory(findings) else 0
