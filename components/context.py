"""Account facts every component needs (account id, partition, region), looked up once per component tree."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AccountContext:
    """Looked up from the provider, never hard-coded: the same program serves every account and region."""

    account_id: pulumi.Output[str]
    partition: pulumi.Output[str]
    region: str

    @classmethod
    def lookup(cls, region: str, parent: pulumi.Resource) -> AccountContext:
        opts = pulumi.InvokeOutputOptions(parent=parent)
        return cls(
            account_id=aws.get_caller_identity_output(opts=opts).account_id,
            partition=aws.get_partition_output(opts=opts).partition,
            region=region,
        )

    def arn(self, service: str, resource: str, *, regional: bool = True) -> pulumi.Output[str]:
        """`arn:<partition>:<service>:<region>:<account>:<resource>`; IAM and S3 ARNs are not regional."""
        region = self.region if regional else ""
        return pulumi.Output.concat("arn:", self.partition, ":", service, ":", region, ":", self.account_id, ":",
                                    resource)

    @property
    def root_principal(self) -> pulumi.Output[str]:
        return self.arn("iam", "root", regional=False)
