"""Exposure: nothing reachable from the internet that should not be, and data services only inside the VPC."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core import Resource, RuleSet, Stack, Violation, as_list, block, find_all, items, strings, truthy
from .types import (EKS_CLUSTER, EKS_NODE_GROUP, INSTANCE, INTERNET_GATEWAY, LAUNCH_TEMPLATE, MSK_CLUSTER,
                    REDIS_GROUP, CACHE_SUBNET_GROUP, ROUTE, ROUTE_TABLE, ROUTE_TABLE_ASSOCIATION,
                    S3_ACCOUNT_PUBLIC_ACCESS_BLOCK, S3_ACLS, S3_BUCKETS, S3_PUBLIC_ACCESS_BLOCK, SAGEMAKER_MODEL,
                    SAGEMAKER_NOTEBOOK, SECURITY_GROUP, SECURITY_GROUP_RULE, SG_INGRESS_RULE, SUBNET)

rules = RuleSet("exposure")

WORLD = {"0.0.0.0/0", "::/0"}
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers",
                   "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")


def _port_range(rule: Mapping[str, Any]) -> str:
    protocol = str(rule.get("protocol", rule.get("ipProtocol", "")))
    low, high = rule.get("fromPort"), rule.get("toPort")
    if protocol in ("-1", "all") or low is None:
        return "all ports"
    first, last = int(float(low)), int(float(high if high is not None else low))
    if first <= 0 and last in (0, 65535):
        return "all ports"
    return f"port {first}" if first == last else f"ports {first}-{last}"


@rules.resource(
    "security-group-no-world-ingress", types=(SECURITY_GROUP, SECURITY_GROUP_RULE, SG_INGRESS_RULE),
    severity="critical",
    description="No security group accepts traffic from 0.0.0.0/0 or ::/0; groups name their peers.",
    remediation="Replace the CIDR with the peer's security group (sourceSecurityGroupId / "
                "referencedSecurityGroupId) or the VPC CIDR.")
def world_ingress(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    if resource.type == SECURITY_GROUP:
        for rule in items(props.get("ingress")):
            world = WORLD & set(as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks")))
            if world:
                yield f"ingress on {_port_range(rule)} is open to {', '.join(sorted(world))}"
    elif resource.type == SECURITY_GROUP_RULE:
        world = WORLD & set(as_list(props.get("cidrBlocks")) + as_list(props.get("ipv6CidrBlocks")))
        if props.get("type") == "ingress" and world:
            yield f"ingress rule on {_port_range(props)} is open to {', '.join(sorted(world))}"
    else:
        world = WORLD & {props.get("cidrIpv4"), props.get("cidrIpv6")}
        if world:
            yield f"ingress rule on {_port_range(props)} is open to {', '.join(sorted(world))}"


@rules.resource(
    "eks-endpoint-private", types=(EKS_CLUSTER,), severity="critical",
    description="The EKS API endpoint is private, or public only to named CIDRs (never 0.0.0.0/0).",
    remediation="Set vpcConfig.endpointPrivateAccess=true and endpointPublicAccess=false (or publicAccessCidrs to "
                "the operators' ranges).")
def eks_endpoint(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    vpc = block(resource.props.get("vpcConfig"))
    # AWS defaults to a public endpoint when endpointPublicAccess is not set.
    if vpc.get("endpointPublicAccess") is not False:
        cidrs = set(as_list(vpc.get("publicAccessCidrs")))
        if not cidrs or cidrs & WORLD:
            yield "the Kubernetes API endpoint is public to the whole internet (vpcConfig.endpointPublicAccess)"
    if not truthy(vpc.get("endpointPrivateAccess")):
        yield "nodes reach the API through the internet: vpcConfig.endpointPrivateAccess is not true"


@rules.resource(
    "no-public-ip-on-instances", types=(LAUNCH_TEMPLATE, INSTANCE), severity="high",
    description="Launch templates and instances never attach a public IP address.",
    remediation="Set associatePublicIpAddress to 'false' (launch templates) / false, and place nodes in private "
                "subnets.")
def public_ip(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.type == INSTANCE and truthy(resource.props.get("associatePublicIpAddress")):
        yield "instance gets a public IP address (associatePublicIpAddress)"
    for interface in items(resource.props.get("networkInterfaces")):
        if truthy(interface.get("associatePublicIpAddress")):
            yield f"network interface {int(float(interface.get('deviceIndex') or 0))} gets a public IP address"


@rules.resource(
    "s3-no-public-acl", types=S3_BUCKETS + S3_ACLS, severity="critical",
    description="No bucket ACL or grant gives access to AllUsers or AuthenticatedUsers.",
    remediation="Remove the canned ACL / grant; use BucketOwnershipControls BucketOwnerEnforced (ACLs disabled).")
def s3_public_acl(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    acl = resource.props.get("acl")
    if acl in PUBLIC_ACLS:
        yield f"canned ACL {acl!r} makes objects public"
    for uri in find_all({k: resource.props.get(k) for k in ("grants", "accessControlPolicy")}, "uri"):
        if uri in PUBLIC_GRANTEES:
            yield f"grant to {uri.rsplit('/', 1)[-1]} makes the bucket public"


PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


@rules.resource(
    "s3-public-access-block-strict", types=(S3_PUBLIC_ACCESS_BLOCK, S3_ACCOUNT_PUBLIC_ACCESS_BLOCK),
    severity="critical",
    description="Public access blocks turn on all four protections.",
    remediation="Set blockPublicAcls, blockPublicPolicy, ignorePublicAcls and restrictPublicBuckets to true.")
def s3_pab(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    off = [flag for flag in PAB_FLAGS if not truthy(resource.props.get(flag))]
    if off:
        yield f"public access block leaves {', '.join(off)} off"


@rules.resource(
    "msk-no-public-access", types=(MSK_CLUSTER,), severity="critical",
    description="MSK brokers are reachable only inside the VPC (no public access).",
    remediation="Remove brokerNodeGroupInfo.connectivityInfo.publicAccess or set its type to 'DISABLED'.")
def msk_public(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    kind = resource.get("brokerNodeGroupInfo.connectivityInfo.publicAccess.type", "DISABLED")
    if kind != "DISABLED":
        yield f"brokers have public access ({kind})"


@rules.resource(
    "msk-authenticated-clients", types=(MSK_CLUSTER,), severity="critical",
    description="MSK clients must authenticate (IAM, SCRAM or mutual TLS); unauthenticated access is off.",
    remediation="Set clientAuthentication={sasl: {iam: true}} and leave unauthenticated unset or false.")
def msk_auth(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    auth = resource.props.get("clientAuthentication") or {}
    if truthy(auth.get("unauthenticated")):
        yield "unauthenticated client access is enabled (clientAuthentication.unauthenticated)"
    sasl = auth.get("sasl") or {}
    tls = auth.get("tls") or {}
    if not (truthy(sasl.get("iam")) or truthy(sasl.get("scram")) or tls.get("certificateAuthorityArns")):
        yield "no client authentication is configured (clientAuthentication.sasl.iam, scram or tls)"


@rules.resource(
    "data-services-named-security-groups", types=(REDIS_GROUP, MSK_CLUSTER), severity="high",
    description="Data services declare their own security groups and subnet placement instead of the VPC "
                "defaults.",
    remediation="Pass securityGroupIds and subnetGroupName (ElastiCache) / brokerNodeGroupInfo.securityGroups "
                "(MSK) naming groups that admit only the client groups.")
def data_service_groups(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.type == REDIS_GROUP:
        if not as_list(resource.props.get("securityGroupIds")):
            yield "uses the VPC's default security group (securityGroupIds is empty)"
        if not resource.props.get("subnetGroupName"):
            yield "has no subnet group, so it lands in the default VPC's subnets (subnetGroupName)"
    elif not as_list(resource.get("brokerNodeGroupInfo.securityGroups")):
        yield "brokers have no security group (brokerNodeGroupInfo.securityGroups)"


def _public_subnets(stack: Stack) -> list[Resource]:
    """Subnets that map public IPs or route to an internet gateway."""
    gateways = stack.of_type(INTERNET_GATEWAY)
    to_internet = []
    for table in stack.of_type(ROUTE_TABLE):
        inline = [r for r in items(table.props.get("routes")) if str(r.get("gatewayId", "")).startswith("igw-")]
        routes = [r for r in stack.referrers(table, [ROUTE], "routeTableId")
                  if str(r.props.get("gatewayId", "")).startswith("igw-")
                  or any(stack.references(r, g, "gatewayId") for g in gateways)]
        if inline or routes or any(stack.references(table, g, "routes") for g in gateways):
            to_internet.append(table)
    public = []
    for subnet in stack.of_type(SUBNET):
        associations = stack.referrers(subnet, [ROUTE_TABLE_ASSOCIATION], "subnetId")
        routed = any(stack.references(a, t, "routeTableId") for a in associations for t in to_internet)
        if truthy(subnet.props.get("mapPublicIpOnLaunch")) or routed:
            public.append(subnet)
    return public


SUBNET_PROPS = {
    MSK_CLUSTER: "brokerNodeGroupInfo", CACHE_SUBNET_GROUP: "subnetIds", SAGEMAKER_MODEL: "vpcConfig",
    SAGEMAKER_NOTEBOOK: "subnetId", EKS_NODE_GROUP: "subnetIds",
}


@rules.stack(
    "data-services-private-subnets", severity="critical",
    description="MSK brokers, Redis subnet groups, SageMaker models and notebooks, and node groups sit only in "
                "private subnets (no public IP mapping, no route to an internet gateway).",
    remediation="Pass the network's private subnet ids (network.private_subnet_ids).")
def private_subnets(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    public = _public_subnets(stack)
    if not public:
        return
    for resource in stack.of_type(*SUBNET_PROPS):
        prop = SUBNET_PROPS[resource.type]
        hits = [s for s in public if stack.references(resource, s, prop)]
        if hits:
            names = ", ".join(s.name for s in hits)
            yield Violation(f"{resource.name} is placed in public subnet(s) {names}", resource.urn)


@rules.resource(
    "sagemaker-notebook-private", types=(SAGEMAKER_NOTEBOOK,), severity="high",
    description="SageMaker notebooks run inside the VPC without direct internet access.",
    remediation="Set directInternetAccess='Disabled' and subnetId/securityGroups to private ones.")
def notebook_private(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.props.get("directInternetAccess", "Enabled") != "Disabled":
        yield "notebook has direct internet access (directInternetAccess must be 'Disabled')"
    if not resource.props.get("subnetId"):
        yield "notebook runs outside the VPC (no subnetId)"


@rules.resource(
    "sagemaker-model-isolated", types=(SAGEMAKER_MODEL,), severity="high",
    description="SageMaker models run inside the VPC (vpcConfig) or with network isolation, never with open "
                "internet access.",
    remediation="Set vpcConfig={subnets: <private subnet ids>, securityGroupIds: [<endpoint group>]} or "
                "enableNetworkIsolation=true.")
def model_isolated(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    vpc = resource.props.get("vpcConfig") or {}
    in_vpc = bool(as_list(vpc.get("subnets"))) and bool(as_list(vpc.get("securityGroupIds")))
    if not in_vpc and not truthy(resource.props.get("enableNetworkIsolation")):
        yield "model containers have direct internet access: no vpcConfig and no enableNetworkIsolation"


@rules.resource(
    "elasticache-auth", types=(REDIS_GROUP,), severity="medium", enforcement="advisory",
    description="Redis clients authenticate (AUTH token or RBAC user groups), not only by network position.",
    remediation="Set authToken from a secret, or userGroupIds with an RBAC user group.")
def redis_auth(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if not (resource.props.get("authToken") or as_list(resource.props.get("userGroupIds"))
            or strings(resource.props.get("authTokenWo"))):
        yield "clients connect without authentication (no authToken and no userGroupIds)"
