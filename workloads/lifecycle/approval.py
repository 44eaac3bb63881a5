"""`approve` and `reject`: move a model package version out of PendingManualApproval, approval behind a gate.

The gate is the stack's `approvalGate` ({metric: minimum}, from the stack settings) or `--gate` flags; each
gated metric must be registered on the version (`register` writes them) and at least its minimum. A refusal is
one line and exit 2, and leaves the version as it was. Approving is what lets staging and prod endpoints
deploy the version, so there is no flag that skips the gate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from contracts import lifecycle as lc
from contracts.outputs import REGION
from workloads.common.cli import UsageError, number_pairs
from workloads.lifecycle import stack
from workloads.lifecycle.register import METRIC_PREFIX


def add_parsers(sub: Any) -> None:
    for name, helptext in (("approve", "approve a version whose registered metrics pass the gate"),
                           ("reject", "reject a version (with a reason)")):
        p = sub.add_parser(name, help=helptext, description=__doc__.split("\n")[0])
        p.add_argument("--model-package-arn", required=True, help="the version (register printed it)")
        p.add_argument("--stack-outputs", type=Path,
                       help=f"JSON from `pulumi stack output --json` (its {lc.OUTPUT_APPROVAL_GATE})")
        p.add_argument("--description", default="", help="why (recorded as the approval description)")
        p.add_argument("--region", help="AWS region (default: stack output 'region', else the AWS config)")
        if name == "approve":
            p.add_argument("--gate", action="append", default=[], metavar="METRIC=MIN",
                           help=f"a gate threshold (repeatable; replaces the stack's {lc.OUTPUT_APPROVAL_GATE})")
            p.set_defaults(run=approve)
        else:
            p.set_defaults(run=reject)


def gate_from(args: argparse.Namespace, outputs: stack.StackOutputs) -> dict[str, float]:
    """--gate flags when given, else the stack's approvalGate; an empty gate is refused, never 'no checks'."""
    if args.gate:
        return number_pairs(args.gate, "--gate", "METRIC=MINIMUM")
    if outputs.path is None:
        raise UsageError(f"no approval gate: pass --stack-outputs (its {lc.OUTPUT_APPROVAL_GATE}) or --gate METRIC=MIN")
    gate = outputs.numbers(lc.OUTPUT_APPROVAL_GATE, why="the metric minimums approval checks")
    if not gate:
        raise UsageError(f"{outputs.path}: stack output '{lc.OUTPUT_APPROVAL_GATE}' is empty; a gate needs a metric")
    return gate


def registered_metrics(package: dict[str, Any]) -> dict[str, float]:
    props = package.get("CustomerMetadataProperties") or {}
    found = {}
    for key, value in props.items():
        if key.startswith(METRIC_PREFIX):
            try:
                found[key[len(METRIC_PREFIX):]] = float(value)
            except ValueError:
                continue
    return found


def check_gate(gate: dict[str, float], metrics: dict[str, float], arn: str) -> list[str]:
    """Every gated metric present and at least its minimum; raises with the first miss, returns the passes."""
    passed = []
    for name, minimum in sorted(gate.items()):
        if name not in metrics:
            raise UsageError(f"approval refused: {arn} has no registered metric '{name}' (registered: "
                             f"{', '.join(sorted(metrics)) or 'none'})")
        if metrics[name] < minimum:
            raise UsageError(f"approval refused: {name} {metrics[name]:g} is below the gate's {minimum:g} ({arn})")
        passed.append(f"{name} {metrics[name]:g} >= {minimum:g}")
    return passed


def _describe(client: Any, arn: str) -> dict[str, Any]:
    try:
        return client.describe_model_package(ModelPackageName=arn)
    except Exception as exc:  # noqa: BLE001 - botocore's ClientError
        raise UsageError(f"--model-package-arn {arn}: {exc}") from None


def _update(client: Any, package: dict[str, Any], status: str, description: str) -> None:
    # The lineage is sent back unchanged: UpdateModelPackage only adds or replaces keys on AWS, and moto drops
    # the properties an update leaves out, so a test would otherwise lose what AWS keeps.
    client.update_model_package(ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus=status,
                                ApprovalDescription=description[:1024],
                                CustomerMetadataProperties=package.get("CustomerMetadataProperties") or {})


def approve(args: argparse.Namespace) -> int:
    import boto3

    outputs = stack.load(args.stack_outputs)
    gate = gate_from(args, outputs)
    client = boto3.client("sagemaker", region_name=args.region or outputs.values.get(REGION) or None)
    package = _describe(client, args.model_package_arn)
    if package.get("ModelApprovalStatus") == lc.APPROVED:
        print(json.dumps({"event": "unchanged", "ModelPackageArn": args.model_package_arn,
                          "ModelApprovalStatus": lc.APPROVED}), flush=True)
        return 0
    passed = check_gate(gate, registered_metrics(package), args.model_package_arn)
    description = "; ".join(filter(None, [args.description, "gate passed: " + ", ".join(passed)]))
    _update(client, package, lc.APPROVED, description)
    print(json.dumps({"event": "approved", "ModelPackageArn": args.model_package_arn,
                      "ModelApprovalStatus": lc.APPROVED, "gate": passed}), flush=True)
    return 0


def reject(args: argparse.Namespace) -> int:
    import boto3

    if not args.description:
        raise UsageError("reject needs --description (the reason is kept on the version)")
    outputs = stack.load(args.stack_outputs)
    client = boto3.client("sagemaker", region_name=args.region or outputs.values.get(REGION) or None)
    package = _describe(client, args.model_package_arn)
    _update(client, package, lc.REJECTED, args.description)
    print(json.dumps({"event": "rejected", "ModelPackageArn": args.model_package_arn,
                      "ModelApprovalStatus": lc.REJECTED}), flush=True)
    return 0
