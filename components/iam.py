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


ENI_WRITES = ("ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
              "ec2:DeleteNetworkInterfacePermission")
ENI_READS = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets",
             "ec2:DescribeSecurityGroups")


def vpc_interface_statements(sid: str, vpc_arn: pulumi.Input[str]) -> list[dict[str, Any]]:
    """What SageMaker needs to attach a job's or an endpoint's ENIs on a role's behalf: the Describe calls
    (which have no resource scope) anywhere, and creating or deleting interfaces only inside the platform's VPC
    (`ec2:Vpc` holds for the interface, its subnet and its security groups)."""
    return [
        {"Sid": f"{sid}Describe", "Effect": "Allow", "Action": list(ENI_READS), "Resource": "*"},
        {"Sid": f"{sid}InPlatformVpc", "Effect": "Allow", "Action": list(ENI_WRITES), "Resource": "*",
         "Condition": {"ArnEquals": {"ec2:Vpc": vpc_arn}}},
    ]


def secret_read_statements(what: str, secret_arn: pulumi.Input[str], key_arn: pulumi.Input[str],
                           secretsmanager_host: str) -> list[dict[str, Any]]:
    """Read one secret: that secret only, its key usable only through Secrets Manager (`secretsmanager_host`,
    `AccountContext.service_host("secretsmanager")`). `what` names the statements (`Read<what>`, `Decrypt<what>`)."""
    return [
        {"Sid": f"Read{what}", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": secret_arn},
        {"Sid": f"Decrypt{what}", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": secretsmanager_host}}},
    ]
