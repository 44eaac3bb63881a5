"""Customer-managed KMS keys, one per data domain, so access to each kind of data is granted separately."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.context import AccountContext
from components.iam import policy_document
from components.settings import EncryptionSettings, StackIdentity

KEY_USE_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


def _logs_service(ctx: AccountContext) -> list[dict[str, Any]]:
    """CloudWatch Logs encrypts log groups itself, limited to this account's log groups."""
    return [{
        "Sid": "AllowCloudWatchLogs",
        "Effect": "Allow",
        "Principal": {"Service": ctx.service_principal("logs", regional=True)},
        "Action": KEY_USE_ACTIONS,
        "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": ctx.arn("logs", "log-group:*")}},
    }]


def _autoscaling_service(ctx: AccountContext) -> list[dict[str, Any]]:
    """EBS volumes of node groups are created by the Auto Scaling service-linked role, which needs the key.

    Without this, nodes with encrypted root volumes fail to launch ("Client.InternalError").
    """
    role = ctx.arn("iam", pulumi.Output.concat("role/aws-service-role/", ctx.service_principal("autoscaling"),
                                               "/AWSServiceRoleForAutoScaling"), regional=False)
    return [
        {"Sid": "AllowAutoScalingUse", "Effect": "Allow", "Principal": {"AWS": role},
         "Action": KEY_USE_ACTIONS, "Resource": "*"},
        {"Sid": "AllowAutoScalingGrants", "Effect": "Allow", "Principal": {"AWS": role},
         "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    ]


def _alarm_publishers(ctx: AccountContext) -> list[dict[str, Any]]:
    """CloudWatch alarms publish to the encrypted SNS topic, so CloudWatch must use the topic's key."""
    return [{
        "Sid": "AllowCloudWatchAlarms",
        "Effect": "Allow",
        "Principal": {"Service": ctx.service_principal("cloudwatch")},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
    }]


# Data domains and the AWS services (beyond this account's IAM principals) that must use each key.
DOMAINS: Mapping[str, tuple[str, Callable[[AccountContext], list[dict[str, Any]]] | None]] = {
    "data": ("datasets, feature store, data capture and node volumes", _autoscaling_service),
    "models": ("model artifacts, images and endpoint volumes", None),
    "logs": ("CloudWatch log groups and the logs bucket", _logs_service),
    "cluster": ("EKS Kubernetes secrets (envelope encryption)", None),
    "streaming": ("MSK data at rest", None),
    "monitoring": ("the alarm SNS topic", _alarm_publishers),
}


def key_policy(ctx: AccountContext, services: Callable[[AccountContext], list[dict[str, Any]]] | None
               ) -> pulumi.Output[str]:
    """Account root administers the key (so IAM policies decide who uses it); named services may use it."""
    statements: list[dict[str, Any]] = [{
        "Sid": "EnableIamPolicies",
        "Effect": "Allow",
        "Principal": {"AWS": ctx.root_principal},
        "Action": "kms:*",
        "Resource": "*",
    }]
    if services is not None:
        statements.extend(services(ctx))
    return policy_document(statements)


@dataclass(frozen=True)
class KeyArns:
    """The ARN of each domain's key: what other components encrypt with."""

    data: pulumi.Input[str]
    models: pulumi.Input[str]
    logs: pulumi.Input[str]
    cluster: pulumi.Input[str]
    streaming: pulumi.Input[str]
    monitoring: pulumi.Input[str]


class EncryptionKeys(pulumi.ComponentResource):
    """One rotating customer-managed key and alias per data domain."""

    keys: dict[str, aws.kms.Key]
    aliases: dict[str, aws.kms.Alias]
    arns: KeyArns

    def __init__(self, name: str, settings: EncryptionSettings, *, stack: StackIdentity,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:encryption:EncryptionKeys", name, None, opts)
        config = settings
        ctx = AccountContext.lookup(stack.region, self)
        self.keys, self.aliases = {}, {}
        for domain, (purpose, services) in DOMAINS.items():
            key = aws.kms.Key(
                f"{name}-{domain}",
                description=f"{stack.name(domain)}: {purpose}",
                enable_key_rotation=True,
                deletion_window_in_days=config.deletion_window_days,
                key_usage="ENCRYPT_DECRYPT",
                customer_master_key_spec="SYMMETRIC_DEFAULT",
                policy=key_policy(ctx, services),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.keys[domain] = key
            self.aliases[domain] = aws.kms.Alias(
                f"{name}-{domain}",
                name=f"alias/{stack.name(domain)}",
                target_key_id=key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.arns = KeyArns(**{domain: key.arn for domain, key in self.keys.items()})
        self.register_outputs({f"{domain}KeyArn": key.arn for domain, key in self.keys.items()})
