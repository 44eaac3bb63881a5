"""Account facts every component needs (account id, partition and its DNS names, region), looked up once per
component tree, so the same program serves every account, region and partition (aws, aws-cn, aws-us-gov)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AccountContext:
    """Looked up from the provider, never hard-coded."""

    account_id: pulumi.Output[str]
    partition: pulumi.Output[str]
    dns_suffix: pulumi.Output[str]          # amazonaws.com, amazonaws.com.cn, ...
    reverse_dns_prefix: pulumi.Output[str]  # com.amazonaws, cn.com.amazonaws, ...
    region: str

    @classmethod
    def lookup(cls, region: str, parent: pulumi.Resource) -> AccountContext:
        opts = pulumi.InvokeOutputOptions(parent=parent)
        partition = aws.get_partition_output(opts=opts)
        return cls(
            account_id=aws.get_caller_identity_output(opts=opts).account_id,
            partition=partition.partition,
            dns_suffix=partition.dns_suffix,
            reverse_dns_prefix=partition.reverse_dns_prefix,
            region=region,
        )

    def arn(self, service: str, resource: pulumi.Input[str], *, regional: bool = True) -> pulumi.Output[str]:
        """`arn:<partition>:<service>:<region>:<account>:<resource>`; IAM and S3 ARNs are not regional."""
        region = self.region if regional else ""
        return pulumi.Output.concat("arn:", self.partition, ":", service, ":", region, ":", self.account_id, ":",
                                    resource)

    @property
    def root_principal(self) -> pulumi.Output[str]:
        return self.arn("iam", "root", regional=False)

    def service_principal(self, service: str, *, regional: bool = False) -> pulumi.Output[str]:
        """An AWS service's principal (`ec2.amazonaws.com`; regional ones `logs.<region>.amazonaws.com`)."""
        host = f"{service}.{self.region}" if regional else service
        return pulumi.Output.concat(host, ".", self.dns_suffix)

    def service_host(self, service: str) -> pulumi.Output[str]:
        """A regional service's DNS name (`s3.<region>.amazonaws.com`), as `kms:ViaService` names it."""
        return self.service_principal(service, regional=True)

    def endpoint_service(self, service: str) -> pulumi.Output[str]:
        """A VPC endpoint service name: `com.amazonaws.<region>.<service>` in the partition's spelling."""
        return pulumi.Output.concat(self.reverse_dns_prefix, ".", self.region, ".", service)
