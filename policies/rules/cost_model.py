"""Monthly cost of a stack from its resources and a price table shipped as data.

Pure over the pack's own resource views and part of the pack (the price table ships in `policies/prices/`), so
the `monthly-budget` rule needs nothing outside the pack and `aiinfra cost` imports this very module: both compute
the same estimate. Kinds with a fixed hourly or monthly price are priced; kinds billed only by usage (requests, GB stored,
GB ingested) and kinds this table does not know are listed as unpriced with the reason, never counted as zero.

Scaled capacity has two figures, and each line says which basis gives which: the floor (managed node groups at
minSize, SageMaker variants at their initial count, Karpenter NodePools at zero nodes: Karpenter launches nodes
only for pending pods) and the ceiling (node groups at maxSize, variants at their scaling target's maxCapacity,
NodePools at the nodes their spec.limits allow on the priciest type they may launch). EBS root volumes are priced
per GiB-month for every node the pool runs at each basis.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from contracts.instances import INSTANCE_TYPES

from . import types as T
from .core import Resource, Stack, as_list, items, number
from .operations import endpoint_config, scaling_targets
from .pools import (ON_DEMAND, RESERVED, Pool, name_of, node_class_name, node_group_instance_types, node_pool_view,
                    quantity)

PRICES_DIR = Path(__file__).resolve().parent.parent / "prices"
Pricing = Literal["on-demand", "spot", "fixed"]
Basis = Literal["floor", "ceiling"]
BASES: tuple[Basis, ...] = ("floor", "ceiling")


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
    """One priced resource: `monthly` at the floor, `ceiling` where it scales (else the same)."""

    resource: Resource
    monthly: float
    pricing: Pricing
    detail: str
    ceiling: float | None = None

    def at(self, basis: Basis) -> float:
        return self.ceiling if basis == "ceiling" and self.ceiling is not None else self.monthly


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
        """At the floor: what the stack costs with every scaled pool at its minimum."""
        return self.total_at("floor")

    @property
    def ceiling(self) -> float:
        """What the stack costs with every scaled pool at its limit."""
        return self.total_at("ceiling")

    def total_at(self, basis: Basis) -> float:
        return round(sum(line.at(basis) for line in self.lines), 2)

    def total_by(self, pricing: Pricing, basis: Basis = "floor") -> float:
        return round(sum(line.at(basis) for line in self.lines if line.pricing == pricing), 2)


# Kinds AWS does not charge for by themselves (configuration, wiring, identity) - counted, not listed.
NO_CHARGE_PREFIXES = ("aws:iam/", "aws:s3/bucket", "aws:ecr/lifecyclePolicy", "aws:kms/alias", "aws:appautoscaling/",
                      "kubernetes:", "random:")
NO_CHARGE = {
    T.VPC, T.SUBNET, T.ROUTE_TABLE, T.ROUTE, T.ROUTE_TABLE_ASSOCIATION, T.INTERNET_GATEWAY, T.SECURITY_GROUP,
    T.SECURITY_GROUP_RULE, T.SG_INGRESS_RULE, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", T.PLACEMENT_GROUP,
    T.SAGEMAKER_MODEL, T.SAGEMAKER_ENDPOINT_CONFIG, T.CACHE_SUBNET_GROUP, "aws:elasticache/parameterGroup:ParameterGroup",
    "aws:msk/configuration:Configuration", "aws:eks/addon:Addon", "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:sns/topicSubscription:TopicSubscription", "aws:sns/topicPolicy:TopicPolicy",
    "aws:cloudwatch/dashboard:Dashboard", "aws:cloudwatch/logResourcePolicy:LogResourcePolicy",
    "aws:secretsmanager/secretVersion:SecretVersion", "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    # EventBridge rules matching AWS service events on the default bus (Karpenter's interruption events) are free.
    "aws:cloudwatch/eventRule:EventRule", "aws:cloudwatch/eventTarget:EventTarget", "aws:sqs/queuePolicy:QueuePolicy",
}
# Kinds billed only by usage: listed as unpriced with what drives their bill.
USAGE_BASED = {
    T.S3_BUCKETS[0]: "storage and requests", T.S3_BUCKETS[1]: "storage and requests",
    T.LOG_GROUP: "GB ingested and stored", T.ECR_REPOSITORY: "GB stored", T.SNS_TOPIC: "messages published",
    T.FLOW_LOG: "GB of flow records delivered", "aws:secretsmanager/secret:Secret": "$0.40/secret + API calls",
    "aws:sqs/queue:Queue": "requests",
}


def estimate(stack: Stack, prices: PriceTable | None = None) -> Estimate:
    """Price every resource of the stack; each is priced, listed as unpriced, or counted as free."""
    table = prices or load_prices()
    result = Estimate(table)
    pricers: Mapping[str, Callable[[Stack, Resource, PriceTable], CostLine | Unpriced | None]] = {
        T.EKS_NODE_GROUP: _node_group, T.INSTANCE: _instance, "aws:ec2/natGateway:NatGateway": _nat,
        "aws:ec2/eip:Eip": _eip, "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoint, T.EKS_CLUSTER: _eks,
        T.MSK_CLUSTER: _msk, T.REDIS_GROUP: _redis, T.SAGEMAKER_ENDPOINT: _endpoint, T.METRIC_ALARM: _alarm,
        T.KMS_KEY: _kms, T.LAUNCH_TEMPLATE: _launch_template_volumes, T.KARPENTER_NODE_POOL: _node_pool,
        T.KARPENTER_NODE_CLASS: _node_class_volumes,
    }
    for resource in stack.resources:
        if resource.type.startswith(("pulumi:", "aiinfra:")) or ":" not in resource.type:
            continue
        pricer = pricers.get(resource.type)
        if pricer is not None:
            outcome = pricer(stack, resource, table)
            if outcome is None:
                result.no_charge += 1
                continue
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


def _rate(table: PriceTable, instance_type: str, pricing: Pricing) -> float | None:
    return table.hourly("ec2", "spot" if pricing == "spot" else "onDemand", instance_type)


def _node_group(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    types = node_group_instance_types(stack, resource)
    if not types:
        return Unpriced(resource, "no instance type on the node group or its launch template")
    low, high = _group_size(resource)
    pricing: Pricing = "spot" if resource.props.get("capacityType") == "SPOT" else "on-demand"
    rates = {t: _rate(table, t, pricing) for t in types}
    missing = [t for t, rate in rates.items() if rate is None]
    if missing:
        return Unpriced(resource, f"no {pricing} price for {missing[0]} in the {table.region} table")
    # The floor runs the first (preferred) type; at the ceiling the group may run its priciest.
    priciest = max(types, key=lambda t: rates[t] or 0.0)
    floor, ceiling = rates[types[0]] or 0.0, rates[priciest] or 0.0
    return CostLine(resource, round(floor * low * table.hours, 2), pricing,
                    f"min {_count(low)} .. max {_count(high)} x {types[0]} at ${floor:g}/h"
                    + (f" (ceiling on {priciest} at ${ceiling:g}/h)" if priciest != types[0] else ""),
                    round(ceiling * high * table.hours, 2))


def _group_size(group: Resource) -> tuple[float, float]:
    """A managed group's floor and ceiling in nodes: minSize and maxSize (the desired size is a creation-time
    value the autoscaler moves between them)."""
    scaling = group.props.get("scalingConfig") or {}
    desired = number(scaling.get("desiredSize"), 0) or 0
    low = number(scaling.get("minSize"), desired)
    high = number(scaling.get("maxSize"), desired)
    return (low if low is not None else desired), max(high if high is not None else desired, desired)


def _volume_monthly(ebs: Mapping[str, Any], table: PriceTable, size_gib: float) -> float | str:
    """One EBS volume's monthly price, or why it has none."""
    prices = table.data.get("ebs") or {}
    kind = str(ebs.get("volumeType") or "gp3")
    rate = (prices.get("gbMonth") or {}).get(kind)
    if rate is None:
        return f"no price for EBS {kind} volumes in the {table.region} table"
    monthly = float(rate) * size_gib
    if kind == "gp3":
        iops = number(ebs.get("iops"), 0) or 0
        throughput = number(ebs.get("throughput"), 0) or 0
        monthly += max(0.0, iops - float(prices["gp3IncludedIops"])) * float(prices["gp3IopsMonth"])
        monthly += max(0.0, throughput - float(prices["gp3IncludedThroughputMbs"])) * float(prices["gp3ThroughputMbsMonth"])
    return monthly


def _volumes_per_node(resource: Resource, mappings: list[Mapping[str, Any]], table: PriceTable,
                      size_of: Callable[[Any], float | None]) -> tuple[float, str] | Unpriced:
    total, sizes = 0.0, []
    for mapping in mappings:
        ebs = mapping.get("ebs") or {}
        if not ebs:
            continue
        size = size_of(ebs.get("volumeSize"))
        if size is None:
            return Unpriced(resource, f"EBS volume {mapping.get('deviceName', '?')} leaves its size to the AMI")
        monthly = _volume_monthly(ebs, table, size)
        if isinstance(monthly, str):
            return Unpriced(resource, monthly)
        total += monthly
        sizes.append(f"{_count(size)} GiB {ebs.get('volumeType') or 'gp3'}")
    return total, " + ".join(sizes)


def _launch_template_volumes(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced | None:
    """The EBS volumes of every node its node groups run: floor at their minSize, ceiling at their maxSize."""
    groups = stack.referrers(resource, [T.EKS_NODE_GROUP], "launchTemplate")
    mappings = items(resource.props.get("blockDeviceMappings"))
    if not groups or not mappings:
        return None  # a template no group launches, or no EBS volumes of its own (the AMI's: priced by EC2)
    per_node = _volumes_per_node(resource, mappings, table, lambda v: number(v))
    if isinstance(per_node, Unpriced):
        return per_node
    monthly, sizes = per_node
    low = sum(_group_size(g)[0] for g in groups)
    high = sum(_group_size(g)[1] for g in groups)
    return CostLine(resource, round(monthly * low, 2), "fixed",
                    f"EBS {sizes} per node, min {_count(low)} .. max {_count(high)} nodes "
                    f"({', '.join(g.name for g in groups)}) at ${monthly:,.2f}/node-month", round(monthly * high, 2))


def _capacity_pricing(pool: Pool) -> Pricing:
    return "on-demand" if pool.capacity_types & {ON_DEMAND, RESERVED} else "spot"


def _karpenter_ceiling(pool: Pool, table: PriceTable) -> tuple[float, str, float] | str:
    """The nodes a NodePool reaches at its limits on the priciest type it may launch: (nodes, type, $/h), or
    why that cannot be told."""
    if pool.families_only or pool.unrestricted or not pool.instance_types:
        return "it names no instance types, so the nodes its limits allow are unknown"
    best: tuple[float, str, float] | None = None
    for name in pool.instance_types:
        instance = INSTANCE_TYPES.get(name)
        if instance is None:
            return f"{name} is not in the instance catalog, so the nodes its limits allow are unknown"
        nodes = pool.nodes_at_limit(instance)
        if nodes is None:
            return "no spec.limits bound it"
        rate = _rate(table, name, _capacity_pricing(pool))
        if rate is None:
            return f"no {_capacity_pricing(pool)} price for {name} in the {table.region} table"
        if best is None or nodes * rate > best[0] * best[2]:
            best = (nodes, name, rate)
    assert best is not None
    return best


def _node_pool(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced:
    pool = node_pool_view(resource)
    ceiling = _karpenter_ceiling(pool, table)
    if isinstance(ceiling, str):
        return Unpriced(resource, f"Karpenter NodePool {name_of(resource)}: {ceiling}")
    nodes, name, rate = ceiling
    pricing = _capacity_pricing(pool)
    note = " (reserved capacity billed by its reservation; priced at on-demand)" if RESERVED in pool.capacity_types else ""
    return CostLine(resource, 0.0, pricing,
                    f"0 nodes at rest .. up to {_count(nodes)} x {name} at limit at ${rate:g}/h{note}",
                    round(nodes * rate * table.hours, 2))


def _node_class_volumes(stack: Stack, resource: Resource, table: PriceTable) -> CostLine | Unpriced | None:
    """The EBS volumes of the nodes its NodePools reach at their limits (none at rest)."""
    name = str((resource.props.get("metadata") or {}).get("name") or "")
    users = [node_pool_view(p) for p in stack.of_type(T.KARPENTER_NODE_POOL) if node_class_name(p) == name]
    mappings = items((resource.props.get("spec") or {}).get("blockDeviceMappings"))
    if not users:
        return None
    if not mappings:
        return Unpriced(resource, "root volume left to the AMI's default size")
    per_node = _volumes_per_node(resource, mappings, table, lambda v: (q / 2**30) if (q := quantity(v)) else None)
    if isinstance(per_node, Unpriced):
        return per_node
    monthly, sizes = per_node
    nodes = 0.0
    for pool in users:
        ceiling = _karpenter_ceiling(pool, table)
        if isinstance(ceiling, str):
            return Unpriced(resource, f"volumes of NodePool {name_of(pool.resource)}: {ceiling}")
        nodes += ceiling[0]
    return CostLine(resource, 0.0, "fixed",
                    f"EBS {sizes} per node, 0 at rest .. up to {_count(nodes)} nodes at limit "
                    f"({', '.join(name_of(p.resource) for p in users)}) at ${monthly:,.2f}/node-month",
                    round(monthly * nodes, 2))


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
    total, ceiling, parts = 0.0, 0.0, []
    targets = scaling_targets(stack, resource)
    for variant in items(config.props.get("productionVariants")):
        kind = str(variant.get("instanceType") or "")
        rate = table.hourly("sagemaker", "realTimeInferenceHourly", kind)
        if variant.get("serverlessConfig") or rate is None:
            return Unpriced(resource, f"no price for {kind or 'serverless'} in the {table.region} table")
        count = number(variant.get("initialInstanceCount"), 1) or 1
        suffix = f"/variant/{variant.get('variantName')}"
        highest = max([number(t.props.get("maxCapacity"), count) or count for t in targets
                       if str(t.props.get("resourceId", "")).endswith(suffix) or len(targets) == 1] + [count])
        total += rate * count * table.hours
        ceiling += rate * highest * table.hours
        parts.append(f"{_count(count)}{f' .. {_count(highest)}' if highest != count else ''} x {kind} at ${rate:g}/h")
    return CostLine(resource, round(total, 2), "on-demand", " + ".join(parts) or "no variants", round(ceiling, 2))


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
