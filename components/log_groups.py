"""The one way this platform declares a CloudWatch log group: KMS-encrypted, with bounded retention."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def encrypted_log_group(resource_name: str, *, log_group_name: pulumi.Input[str], retention_days: int,
                        kms_key_arn: pulumi.Input[str], parent: pulumi.Resource) -> aws.cloudwatch.LogGroup:
    """Log groups hold request data and identifiers, so they use the logs key and expire on schedule."""
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=log_group_name,
        retention_in_days=retention_days,
        kms_key_id=kms_key_arn,
        opts=pulumi.ResourceOptions(parent=parent),
    )
