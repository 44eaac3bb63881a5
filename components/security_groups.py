"""Security groups for data services: one port, admitted only from the named client security groups."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws


def peer_only_security_group(
    resource_name: str, *, rule_prefix: str, vpc_id: pulumi.Input[str], group_name: str, description: str,
    port: int, clients: Sequence[pulumi.Input[str]], rule_description: str, parent: pulumi.Resource,
) -> tuple[aws.ec2.SecurityGroup, list[aws.vpc.SecurityGroupIngressRule]]:
    """A group with no inline rules and no egress, plus one ingress rule per client group on `port`.

    Peers are named by security group, never by CIDR, so nothing outside the platform's own workloads can
    reach the service even from inside the VPC.
    """
    child = pulumi.ResourceOptions(parent=parent)
    group = aws.ec2.SecurityGroup(
        resource_name, vpc_id=vpc_id, name=group_name, description=description, ingress=[], egress=[],
        tags={"Name": group_name}, opts=child)
    rules = [
        aws.vpc.SecurityGroupIngressRule(
            f"{rule_prefix}-{i}", security_group_id=group.id, referenced_security_group_id=peer,
            ip_protocol="tcp", from_port=port, to_port=port, description=rule_description, opts=child)
        for i, peer in enumerate(clients)
    ]
    return group, rules
