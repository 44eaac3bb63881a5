"""IAM policy documents as JSON built from Outputs: no provider call, so they render the same offline and live."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi


def policy_document(statements: Sequence[Mapping[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document; statements may hold Outputs (ARNs, account ids) anywhere inside."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_assume_role_policy(*services: pulumi.Input[str],
                               conditions: Mapping[str, Any] | None = None) -> pulumi.Output[str]:
    """Trust policy letting the named AWS service principals (`AccountContext.service_principal`) assume a role."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": list(services) if len(services) > 1 else services[0]},
        "Action": "sts:AssumeRole",
    }
    if conditions:
        statement["Condition"] = dict(conditions)
    return policy_document([statement])
