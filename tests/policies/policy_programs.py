"""Small Pulumi programs built from the real pulumi-aws / pulumi-kubernetes classes, run under the recording
mocks and checked through the offline runner: the same path `python -m aiinfra policy` takes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from aiinfra.engine import run_program
from aiinfra.graph import ResourceGraph
from aiinfra.policy_runner import Finding, evaluate
from aiinfra.stackfile import StackConfig
from policies.rules import ALL_RULES

RULES = {rule.name: rule for rule in ALL_RULES}
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
TAGS = {"environment": "dev", "owner": "ml-platform", "cost-center": "ml", "managed-by": "pulumi"}


def synth(program: Callable[[], Any], stack: str = "dev") -> ResourceGraph:
    return run_program(program, StackConfig("aiinfra", stack, "test", {"aws:region": "us-east-1"}, ()))


def findings(rule: str, program: Callable[[], Any], stack: str = "dev",
             config: Mapping[str, Any] | None = None) -> list[Finding]:
    """What one rule reports for a program, evaluated exactly as the CLI evaluates a stack."""
    return evaluate(synth(program, stack), rules=[RULES[rule]], config=config)


def policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def tagged_provider(environment: str = "dev") -> pulumi.ResourceOptions:
    provider = aws.Provider("aws", region="us-east-1", default_tags={"tags": {**TAGS, "environment": environment}})
    return pulumi.ResourceOptions(provider=provider)
