"""Monthly cost of a stack from its resources and a price table shipped as data.

Pure over the pack's own resource views and part of the pack (the price table ships in `policies/prices/`), so
the `monthly-budget` rule needs nothing outside the pack and `aiinfra cost` imports this very module: both compute
the same estimate. Kinds with a fixed hourly or monthly price are priced; kinds billed only by usage (requests, GB stored,
GB ingested) and kinds this table does not know are listed as unpriced with the reason, never counted as zero.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from . import types as T
from .pools import node_group_instance_types
from .core import Resource, Stack, as_list, items, number
from .operations import endpoint_config

PRICES_DIR = Path(__file__).resolve().parent.parent / "prices"
Pricing = Literal["on-demand", "spot", "fixed"]


@dataclass(frozen=True)
class PriceTable:
    region: str
    date: str
    source: str
    currency: str
    hours: float
    data: Mapping[str, Any]

    def hourly(self, section: str, table: str, key: str) -> float | None:
        value = ((self.data.get(section) or {}).get(table) or {}).get(key)
        return float(value) if value is not None else None


@lru_cache(maxsize=None)
def load_prices(region: str = "us-east-1") -> PriceTable:
    path = PRICES_DIR / f"{region}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRICES_DIR.glob("*.json")))
        raise LookupError(f"no price table for region {region}; have: {known}")
    data = json.loads(path.read_text())
    return PriceTable(data["region"], data["date"], data["source"], data["currency"], float(data["hoursPerMonth"]),
                      data)


@dataclass(frozen=True)
class CostLine:
    resource: Resource
    monthly: float
    pricing: Pricing
    detail: str


@dataclass(frozen=True)
class Unpriced:
    resource: Resource
    reason: str


@dataclass
class Estimate:
    prices: PriceTable
    lines: list[CostLine] = field(default_factory=list)
    unpriced: list[Unpriced] = field(default_factory=list)
    no_charge: int = 0

    @property
    def total(self) -> float:
        return round(sum(line.monthly for line in self.lines), 2)

    def total_by(self, pricing: Pricing) -> float:
        return round(sum(line.monthly for line in self.lines if line.pricing == pricing), 2)


# Kinds AWS does not charge for by themselves (configuration, wiring, identity) - counted, not listed.
NO_CHARGE_PREFIXES = ("aws:iam/", "aws:s3/bucket", "aws:ecr/lifecyclePolicy", "aws:kms/alias", "aws:appautoscaling/",
                      "kubernetes:", "random:")
NO_CHARGE = {
    T.VPC, T.SUBNET, T.ROUTE_TABLE, T.ROUTE, T.ROUTE_TABLE_ASSOCIATION, T.INTERNET_GATEWAY, T.SECURITY_GROUP,
    T.SECURITY_GROUP_RULE, T.SG_INGRESS_RULE, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", T.LAUNCH_TEMPLATE, T.PLACEMENT_GROUP,
    T.SAGEMAKER_MODEL, T.SAGEMAKER_ENDPOINT_CONFIG, T.CACHE_SUBNET_GROUP, "aws:elasticache/parameterGroup:ParameterGroup",
    "aws:msk/configuration:Configuration", "aws:eks/addon:Addon", "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:sns/topicSubscription:TopicSubscription", "aws:sns/topicPolicy:TopicPolicy",
    "aws:cloudwatch/dashboard:Dashboard", "aws:cloudwatch/logResourcePolicy:LogResourcePolicy",
    "aws:secretsmanager/secretVersion:SecretVersion", "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
}
# Kinds billed only by usage: listed as unpriced with what drives their bill.
USAGE_BASED = {
    T.S3_BUCKETS[0]: "storage and requests", T.S3_BUCKETS[1]: "storage and requests",
    T.LOG_GROUP: "GB ingested and stored", T.ECR_REPOSITORY: "GB stored", T.SNS_TOPIC: "messages published",
    T.FLOW_LOG: "GB of flow records delivered", "aws:secretsmanager/secret:Secret": "$0.40/secret + API calls",
}


def estimate(stack: Stack, prices: PriceTable | None = None) -> Estimate:
    """Price every resource of the stack; each is priced, listed as unpriced, or counted as free."""
    table = prices or load_prices()
    result = Estimate(table)
    pricers: Mapping[str, Callable[[Stack, Resource, PriceTable], CostLine | Unpriced]] = {
        T.EKS_NODE_GROUP: _node_group, T.INSTANCE: _instance, "aws:ec2/natGateway:NatGateway": _nat,
        "aws:ec2/eip:Eip": _eip, "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoint, T.EKS_CLUSTER: _eks,
        T.MSK_CLUSTER: _msk, T.REDIS_GROUP: _redis, T.SAGEMAKER_ENDPOINT: _endpoint, T.METRIC_ALARM: _alarm,
        T.KMS_KEY: _kms,
    }
    for resource in stack.resources:
        if resource.type.startswith(("pulumi:", "aiinfra:")) or ":" not in resource.type:
            continue
        pricer = pricers.get(resource.type)
        if pricer is not None:
            outcome = pricer(stack, resource, table)
            (result.lines if isinstance(outcome, CostLine) else result.unpriced).append(outcome)  # type: ignore[arg-type]
        elif resource.type in USAGE_BASED:
            result.unpriced.append(Unpriced(resource, f"usage-based: {USAGE_BASED[resource.type]}"))
        elif resource.type in NO_CHARGE or resource.type.startswith(NO_CHARGE_PREFIXES):
            result.no_charge += 1
        else:
            result.unpriced.append(Unpriced(resource, "no price in the table for this kind"))
    return result


def _hourly(resource: Resource, table: PriceTable, rate: float | None, count: float, what: str,
            pricing: Pricing = "on-demand") -> CostLine | Unpriced:
    if rate is None:
        return Unpriced(resource, f"no {pricing} price for {what} in the {table.region} table")
    # Fixed-rate kinds pass a float; table lookups pass what they found.
    return CostLine(resource, round(rate * count * table.hours, 2), pricing,
                    f"{_count(count)} x {what} at ${rate:g}/h")


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _node_group(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    types = node_group_instance_types(stack, resource)
    desired = number((resource.props.get("scalingConfig") or {}).get("desiredSize"), 0) or 0
    if not types:
        return Unpriced(resource, "no instance type on the node group or its launch template")
    spot = resource.props.get("capacityType") == "SPOT"
    pricing: Pricing = "spot" if spot else "on-demand"
    # Spot groups with several types run on whichever is cheapest; price the first (the preferred) one.
    rate = table.hourly("ec2", "spot" if spot else "onDemand", types[0])
    return _hourly(resource, table, rate, desired, types[0], pricing)


def _instance(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    kind = str(resource.props.get("instanceType") or "")
    return _hourly(resource, table, table.hourly("ec2", "onDemand", kind), 1, kind or "instance")


def _nat(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    return _hourly(resource, table, table.data["vpc"]["natGatewayHourly"], 1,
                   "NAT gateway (+ $/GB processed, unpriced)", "fixed")


def _eip(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    return _hourly(resource, table, table.data["vpc"]["publicIpv4Hourly"], 1, "public IPv4 address", "fixed")


def _vpc_endpoint(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    if resource.props.get("vpcEndpointType", "Gateway") != "Interface":
        return CostLine(resource, 0.0, "fixed", "gateway endpoint: no charge")
    azs = len(as_list(resource.props.get("subnetIds"))) or 1
    return _hourly(resource, table, table.data["vpc"]["interfaceEndpointHourlyPerAz"], azs,
                   "endpoint ENI (+ $/GB, unpriced)", "fixed")


def _eks(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    return _hourly(resource, table, table.data["eks"]["clusterHourly"], 1, "EKS control plane", "fixed")


def _msk(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    brokers = number(resource.props.get("numberOfBrokerNodes"), 0) or 0
    kind = str(resource.get("brokerNodeGroupInfo.instanceType", ""))
    rate = table.hourly("msk", "brokerHourly", kind)
    if rate is None:
        return Unpriced(resource, f"no price for MSK broker {kind or '(unset)'} in the {table.region} table")
    volume = number(resource.get("brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize"), 1000) or 0
    storage = volume * brokers * float(table.data["msk"]["storageGbMonth"])
    compute = rate * brokers * table.hours
    return CostLine(resource, round(compute + storage, 2), "on-demand",
                    f"{_count(brokers)} x {kind} at ${rate:g}/h + {_count(brokers * volume)} GB storage")


def _redis(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    props = resource.props
    if props.get("numNodeGroups") is not None:
        nodes = (number(props.get("numNodeGroups"), 1) or 1) * ((number(props.get("replicasPerNodeGroup"), 0) or 0) + 1)
    else:
        nodes = number(props.get("numCacheClusters"), 1) or 1
    kind = str(props.get("nodeType") or "")
    return _hourly(resource, table, table.hourly("elasticache", "nodeHourly", kind), nodes, kind or "cache node")


def _endpoint(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    config = endpoint_config(stack, resource)
    if config is None:
        return Unpriced(resource, "its endpoint configuration is not in the stack")
    total, parts = 0.0, []
    for variant in items(config.props.get("productionVariants")):
        kind = str(variant.get("instanceType") or "")
        rate = table.hourly("sagemaker", "realTimeInferenceHourly", kind)
        if variant.get("serverlessConfig") or rate is None:
            return Unpriced(resource, f"no price for {kind or 'serverless'} in the {table.region} table")
        count = number(variant.get("initialInstanceCount"), 1) or 1
        total += rate * count * table.hours
        parts.append(f"{_count(count)} x {kind} at ${rate:g}/h")
    return CostLine(resource, round(total, 2), "on-demand", " + ".join(parts) or "no variants")


def _alarm(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    queries = [q for q in items(resource.props.get("metricQueries")) if q.get("metric")]
    metrics = len(queries) or 1
    high = (number(resource.props.get("period"), 60) or 60) < 60
    rate = float(table.data["cloudwatch"]["highResolutionAlarmMonthlyPerMetric" if high
                                          else "standardAlarmMonthlyPerMetric"])
    return CostLine(resource, round(rate * metrics, 2), "fixed",
                    f"{metrics} metric(s) at ${rate:g}/month{' (high resolution)' if high else ''}")


def _kms(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    rate = float(table.data["kms"]["keyMonthly"])
    return CostLine(resource, rate, "fixed", f"customer-managed key at ${rate:g}/month (+ requests, unpriced)")
