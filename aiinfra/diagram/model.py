"""The architecture view's model: which recorded resources become nodes, what folds into them, and where they sit.

Placement comes from the resources' own properties: a resource sits in the subnets whose ids it names (tier from
the subnet's route table: a route to an internet gateway makes it public; AZ from the subnet), inside the VPC
whose id it names, on the EKS cluster it joins (a node group's `clusterName`, a Kubernetes object's provider), and
a pod on the node pool whose labels its `nodeSelector` asks for. Everything else goes in a box named after its
component. Helper resources fold into the resource they serve: IAM roles into whoever assumes them, launch
templates, subnet and parameter groups, bucket settings, alarms and the like into the resource that references
them, that they reference within one cloud service, or that they name. KMS keys become a legend and a badge per
node. No resource name is special: a new component's resources land where their properties put them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiinfra.diagram.records import (
    as_list, class_of, common_prefix_stripped, display_name, keyed_strings, service_of, strings, words)
from aiinfra.graph import ResourceGraph, ResourceRecord
from contracts.instances import POOL_LABEL

# What a recorded resource is to the picture.
KEY, IDENTITY, FIREWALL, VPC, SUBNET, ROUTING, TELEMETRY, HIDDEN = (
    "key", "identity", "firewall", "vpc", "subnet", "routing", "telemetry", "hidden")
PRIMARY, POOL, WORKLOAD, CLUSTER, ADDON, OTHER = "primary", "pool", "workload", "cluster", "addon", "other"

# Resources that are a thing an operator names when asked "what runs here" (others fold into one of these).
PRIMARY_TYPES = {
    "aws:msk/cluster:Cluster", "aws:msk/serverlessCluster:ServerlessCluster",
    "aws:elasticache/replicationGroup:ReplicationGroup", "aws:elasticache/cluster:Cluster",
    "aws:elasticache/serverlessCache:ServerlessCache", "aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2",
    "aws:ecr/repository:Repository", "aws:secretsmanager/secret:Secret", "aws:sns/topic:Topic",
    "aws:sqs/queue:Queue", "aws:sagemaker/endpoint:Endpoint", "aws:ec2/instance:Instance",
    "aws:lambda/function:Function", "aws:rds/cluster:Cluster", "aws:rds/instance:Instance",
    "aws:dynamodb/table:Table", "aws:efs/fileSystem:FileSystem", "aws:ec2/natGateway:NatGateway",
    "aws:ec2/internetGateway:InternetGateway", "aws:ec2/vpcEndpoint:VpcEndpoint",
}
CLUSTER_TYPES = {"aws:eks/cluster:Cluster"}
POOL_TYPES = {"aws:eks/nodeGroup:NodeGroup"}
K8S_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}
ROUTING_PREFIXES = ("aws:ec2/route", "aws:ec2/mainRouteTableAssociation", "aws:ec2/eip", "aws:ec2/networkAcl",
                    "aws:ec2/defaultNetworkAcl", "aws:ec2/defaultRouteTable", "aws:ec2/vpcDhcpOptions")

# Readable kinds; a type not listed reads as its service and class ("sagemaker pipeline").
TITLES = {
    "aws:eks/cluster:Cluster": "EKS control plane", "aws:eks/nodeGroup:NodeGroup": "EKS managed node group",
    "aws:msk/cluster:Cluster": "MSK Kafka", "aws:elasticache/replicationGroup:ReplicationGroup": "ElastiCache",
    "aws:s3/bucket:Bucket": "S3 bucket", "aws:s3/bucketV2:BucketV2": "S3 bucket",
    "aws:ecr/repository:Repository": "ECR repository", "aws:secretsmanager/secret:Secret": "Secrets Manager",
    "aws:sns/topic:Topic": "SNS topic", "aws:sagemaker/endpoint:Endpoint": "SageMaker endpoint",
    "aws:ec2/natGateway:NatGateway": "NAT gateway", "aws:ec2/internetGateway:InternetGateway": "Internet gateway",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "VPC endpoint",
}


@dataclass
class Node:
    """One box in the picture: a primary resource and every helper folded into it."""

    id: str
    title: str
    name: str
    type: str
    role: str
    component: str
    urns: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


@dataclass
class Group:
    """A placement box: a VPC, a subnet tier, an AZ, an EKS cluster, its nodes, one pool, or a component."""

    id: str
    label: str
    kind: str
    nodes: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    def walk(self) -> Iterable[Group]:
        yield self
        for group in self.groups:
            yield from group.walk()

    def all_nodes(self) -> list[str]:
        return [n for group in self.walk() for n in group.nodes]


@dataclass
class Edge:
    """Something flowing from source to target; `tail`/`head` name a group the edge stands for at that end."""

    source: str
    target: str
    kind: str                      # data | traffic | peering | route | image
    labels: list[str] = field(default_factory=list)
    tail: str = ""
    head: str = ""


@dataclass
class Architecture:
    title: str
    root: Group
    nodes: dict[str, Node]
    edges: list[Edge] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)   # (key badge, what the key encrypts)
    notes: list[str] = field(default_factory=list)

    def group(self, group_id: str) -> Group:
        return next(g for g in self.root.walk() if g.id == group_id)

    def group_of(self, node_id: str) -> Group:
        return next(g for g in self.root.walk() if node_id in g.nodes)


def category(record: ResourceRecord) -> str:
    type_token = record.type
    if type_token.startswith("aws:kms/"):
        return KEY
    if type_token.startswith("aws:iam/"):
        return IDENTITY
    if "securitygroup" in type_token.lower():
        return FIREWALL
    if type_token == "aws:ec2/vpc:Vpc":
        return VPC
    if type_token == "aws:ec2/subnet:Subnet":
        return SUBNET
    if type_token.startswith(ROUTING_PREFIXES):
        return ROUTING
    if type_token.startswith(("aws:cloudwatch/", "aws:ec2/flowLog")):
        return TELEMETRY
    if type_token in CLUSTER_TYPES:
        return CLUSTER
    if type_token in POOL_TYPES:
        return POOL
    if type_token in PRIMARY_TYPES:
        return PRIMARY
    if type_token.startswith("kubernetes:"):
        kind = class_of(type_token)
        if kind in K8S_WORKLOADS:
            return WORKLOAD
        if "karpenter.sh/" in type_token and kind == "NodePool":
            return POOL
        if "helm.sh/" in type_token:
            return ADDON
        # Custom resources (Karpenter's EC2NodeClass, a KEDA ScaledObject) fold into the pool or workload
        # naming them; the built-in kinds (namespaces, quotas, policies, services) are cluster configuration.
        group = type_token.split(":")[1].split("/")[0]
        return OTHER if "." in group and not group.endswith(".k8s.io") else HIDDEN
    if type_token.startswith(("random:", "tls:", "command:")):
        return HIDDEN
    return OTHER


def dependencies_of(record: ResourceRecord) -> set[str]:
    """URNs the record takes values from (property dependencies; plain dependencies when reading an export)."""
    deps = {u for urns in record.property_dependencies.values() for u in urns}
    return deps or set(record.dependencies)


def identities(record: ResourceRecord) -> set[str]:
    """Values other resources use to name this one."""
    props = record.props
    found = {record.id} if record.id else set()
    for key in ("arn", "name", "bucket", "replicationGroupId", "clusterName", "repositoryUrl", "endpoint",
                "primaryEndpointAddress", "readerEndpointAddress"):
        value = props.get(key)
        # A value taken from another resource (a node group's `clusterName`) names that one, not this.
        if isinstance(value, str) and len(value) >= 6 and not record.property_dependencies.get(key):
            found.add(value)
    metadata = props.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        found.add(str(metadata["name"]))
    return found


def _tagged(record: ResourceRecord, wanted: Mapping[str, Any]) -> bool:
    tags = {**(record.props.get("tagsAll") or {}), **(record.props.get("tags") or {})}
    return all(key in tags and (value == "*" or tags[key] == value) for key, value in wanted.items())


def _segments(value: str) -> Iterable[str]:
    yield value
    for part in re.split(r"[/,]", value):
        if part:
            yield part
            # AWS names the members of a group `<group>-001`; an alarm on a member watches the group.
            match = re.fullmatch(r"(.+)-\d{3,4}", part)
            if match:
                yield match.group(1)


class Index:
    """Lookups over one graph that placement and flows share."""

    def __init__(self, graph: ResourceGraph) -> None:
        self.graph = graph
        self.by_urn = graph.by_urn
        self.records = [r for r in graph if r.custom and not r.is_provider]
        self._strings: dict[str, set[str]] = {}
        self.category = {r.urn: category(r) for r in self.records}
        self.referrers: dict[str, set[str]] = defaultdict(set)
        for record in self.records:
            for dep in dependencies_of(record):
                self.referrers[dep].add(record.urn)
        self.subnets = {self.pid(r): r for r in self.records if self.category[r.urn] == SUBNET}
        self.vpcs = {self.pid(r): r for r in self.records if self.category[r.urn] == VPC}
        self.public_subnets = self._public_subnets()
        self._groups = {self.pid(r): r for r in self.records if self.category[r.urn] == FIREWALL
                        and class_of(r.type).endswith("SecurityGroup")}
        self.security_groups = set(self._groups)
        for record in self.records:
            for key, value in keyed_strings(record.props):
                if key.lower().endswith("securitygroupid") and value.startswith("sg-"):
                    self.security_groups.add(value)
        self.keys = {r.urn: r for r in self.records if r.type == "aws:kms/key:Key"}
        self.key_of_value: dict[str, str] = {}
        for urn, key in self.keys.items():
            for value in (self.pid(key), key.props.get("arn"), key.props.get("keyId")):
                if isinstance(value, str) and value:
                    self.key_of_value[value] = urn
        for record in self.records:
            if record.type == "aws:kms/alias:Alias" and record.props.get("targetKeyId") in self.key_of_value:
                self.key_of_value[str(record.props.get("name"))] = self.key_of_value[record.props["targetKeyId"]]

    def strings_of(self, record: ResourceRecord) -> set[str]:
        """Every string the record holds, plus the subnet and security-group ids its selector terms pick."""
        if record.urn not in self._strings:
            self._strings[record.urn] = set(strings(record.props)) | self._selected(record.props)
        return self._strings[record.urn]

    def _selected(self, value: Any) -> set[str]:
        """Karpenter-style `subnetSelectorTerms` / `securityGroupSelectorTerms`: by `id`, or by `tags` (`*`
        matches any value) against the subnets and security groups the stack declares."""
        found: set[str] = set()
        if isinstance(value, Mapping):
            for key, item in value.items():
                pool = self.subnets if key == "subnetSelectorTerms" else \
                    self._groups if key == "securityGroupSelectorTerms" else None
                if pool is None:
                    found |= self._selected(item)
                    continue
                for term in as_list(item):
                    if not isinstance(term, Mapping):
                        continue
                    if isinstance(term.get("id"), str):
                        found.add(term["id"])
                    wanted = term.get("tags")
                    if isinstance(wanted, Mapping) and wanted:
                        found |= {pid for pid, record in pool.items() if _tagged(record, wanted)}
        elif isinstance(value, (list, tuple)):
            for item in value:
                found |= self._selected(item)
        return found

    @staticmethod
    def pid(record: ResourceRecord) -> str:
        return record.id or str(record.props.get("id", ""))

    def _public_subnets(self) -> set[str]:
        tables = {self.pid(r): r for r in self.records if r.type == "aws:ec2/routeTable:RouteTable"}
        public = set()
        for record in self.records:
            if record.type != "aws:ec2/routeTableAssociation:RouteTableAssociation":
                continue
            table = tables.get(str(record.props.get("routeTableId", "")))
            routes = as_list(table.props.get("routes")) if table is not None else []
            if any(str(route.get("gatewayId", "")).startswith("igw-")
                   for route in routes if isinstance(route, Mapping)):
                public.add(str(record.props.get("subnetId", "")))
        for subnet_id, subnet in self.subnets.items():
            if subnet.props.get("mapPublicIpOnLaunch") is True:
                public.add(subnet_id)
        return public

    def tier(self, subnet_id: str) -> str:
        return "public" if subnet_id in self.public_subnets else "private"

    def component(self, record: ResourceRecord) -> str:
        component = self.graph.component_of(record)
        return component.type.split(":")[1] if component else "stack"


@dataclass
class _Draft:
    primary: ResourceRecord
    role: str
    members: list[ResourceRecord]


def _fold(index: Index) -> tuple[dict[str, _Draft], dict[str, str]]:
    """Nodes (by primary URN) and, for every folded record, the primary URN it folded into."""
    drafts: dict[str, _Draft] = {}
    owner: dict[str, str] = {}
    for record in index.records:
        role = index.category[record.urn]
        if role in (PRIMARY, POOL, WORKLOAD, CLUSTER):
            drafts[record.urn] = _Draft(record, role, [record])
            owner[record.urn] = record.urn
    clusters = [u for u, d in drafts.items() if d.role == CLUSTER]
    pending = [r for r in index.records if index.category[r.urn] in (OTHER, ADDON, TELEMETRY)]
    while True:
        # References first (to a fixpoint), then names: a SageMaker model belongs to the endpoint whose
        # configuration uses it, not to the bucket its artifact URL happens to name.
        for by_name in (False, True):
            changed = True
            while changed:
                changed = False
                named = _names_index(index, owner) if by_name else {}
                for record in pending:
                    if record.urn in owner:
                        continue
                    target = _anchor(index, record, owner, named, clusters, by_name)
                    if target:
                        owner[record.urn] = target
                        drafts[target].members.append(record)
                        changed = True
                if by_name and changed:
                    break
        left = [r for r in pending if r.urn not in owner and index.category[r.urn] == OTHER]
        if not left:
            break
        # A resource nothing else explains is a node of its own (a new kind of thing the platform runs).
        left_urns = {r.urn for r in left}
        roots = [r for r in left if not any(d in left_urns and service_of(index.by_urn[d].type) == service_of(r.type)
                                            for d in dependencies_of(r))] or left[:1]
        for record in roots:
            drafts[record.urn] = _Draft(record, PRIMARY, [record])
            owner[record.urn] = record.urn
    return drafts, owner


def _names_index(index: Index, owner: Mapping[str, str]) -> dict[str, str]:
    """Identity value -> the node owning the record it identifies (values naming two nodes are dropped)."""
    found: dict[str, set[str]] = defaultdict(set)
    for urn, target in owner.items():
        for value in identities(index.by_urn[urn]):
            found[value].add(target)
    return {value: next(iter(targets)) for value, targets in found.items() if len(targets) == 1}


def _anchor(index: Index, record: ResourceRecord, owner: Mapping[str, str], named: Mapping[str, str],
            clusters: list[str], by_name: bool) -> str:
    if index.category[record.urn] == ADDON:
        return _cluster_of_provider(index, record, clusters)
    if not by_name:
        # A dashboard or alarm that refers to something watches it; it does not own it.
        referrers = {owner[u] for u in index.referrers.get(record.urn, ())
                     if u in owner and index.category[u] != TELEMETRY}
        if len(referrers) == 1:
            return next(iter(referrers))
        same_service = set() if index.category[record.urn] == TELEMETRY else {
            owner[d] for d in dependencies_of(record)
            if d in owner and service_of(index.by_urn[d].type) == service_of(record.type)}
        if len(same_service) > 1:
            # Built on several (an add-on waiting for the cluster and its node groups): the one the others
            # build on is where it belongs.
            same_service = {c for c in same_service
                            if not any(o in dependencies_of(index.by_urn[c]) for o in same_service - {c})}
        return next(iter(same_service)) if len(same_service) == 1 else ""
    # Names are short tokens: a document (a dashboard body, a policy) mentions many things and names none.
    targets = {named[part] for key, value in keyed_strings(record.props)
               if not key.endswith("Actions") and len(value) <= 256 and not any(c.isspace() for c in value)
               for part in _segments(value) if part in named}
    if len(targets) == 1:
        return next(iter(targets))
    mine = identities(record)
    namers = {owner[r.urn] for r in index.records if r.urn in owner and r.urn != record.urn
              and mine & index.strings_of(r)}
    return next(iter(namers)) if len(namers) == 1 else ""


def _cluster_of_provider(index: Index, record: ResourceRecord, clusters: list[str]) -> str:
    """The EKS cluster a Kubernetes object goes to: the one its provider's kubeconfig names."""
    provider = index.by_urn.get(record.provider.rsplit("::", 1)[0])
    text = " ".join(strings(provider.inputs)) if provider is not None else ""
    for urn in clusters:
        cluster = index.by_urn[urn]
        if any(value in text for value in (cluster.props.get("endpoint"), cluster.props.get("name")) if value):
            return urn
    return clusters[0] if len(clusters) == 1 else ""


@dataclass
class Layout:
    """The placed nodes before edges are drawn, with what `flows` and `finish` need to go on."""

    index: Index
    arch: Architecture
    drafts: dict[str, _Draft]
    owner: dict[str, str]


def layout(graph: ResourceGraph) -> Layout:
    """Nodes with what folded into them, placed in their boxes; `flows.add_flows` then draws the edges."""
    index = Index(graph)
    drafts, owner = _fold(index)
    nodes = {_node_id(draft.primary, i): draft for i, draft in enumerate(drafts.values())}
    legend, badge_of_key = _legend(index)
    arch = Architecture(f"{graph.project}/{graph.stack}", Group("root", f"{graph.project}/{graph.stack}", "root"),
                        {}, legend=legend)
    for node_id, draft in nodes.items():
        arch.nodes[node_id] = _describe(index, node_id, draft, badge_of_key)
    _place(index, arch, nodes)
    return Layout(index, arch, nodes, owner)


def finish(placed: Layout) -> Architecture:
    """Collapse look-alikes (once the edges are known) and count what the picture leaves out."""
    _collapse(placed.arch)
    placed.arch.notes = _notes(placed.index, placed.owner)
    return placed.arch


def _node_id(record: ResourceRecord, position: int) -> str:
    return f"n{position}_" + re.sub(r"[^A-Za-z0-9]+", "_", record.name).strip("_")


def _legend(index: Index) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Each KMS key once: a short badge (the part of its name that differs) and what it encrypts."""
    names, descriptions = [], []
    for key in index.keys.values():
        description = str(key.props.get("description", "")) or display_name(key)
        name, _, rest = description.partition(": ")
        names.append(name if rest else key.name)
        descriptions.append(rest or description)
    badges = common_prefix_stripped(names)
    return list(zip(badges, descriptions)), dict(zip(index.keys, badges))


def _describe(index: Index, node_id: str, draft: _Draft, badge_of_key: Mapping[str, str]) -> Node:
    record = draft.primary
    node = Node(node_id, TITLES.get(record.type) or _title(record), display_name(record), record.type, draft.role,
                index.component(record), [m.urn for m in draft.members])
    props = record.props
    kind = record.type
    if kind == "aws:eks/cluster:Cluster":
        vpc = props.get("vpcConfig") or {}
        node.details.append(f"Kubernetes {props.get('version', '?')}, API endpoint "
                            + ("private only" if vpc.get("endpointPublicAccess") is False else "public"))
        addons = sorted(display_name(m) for m in draft.members
                        if m.type == "aws:eks/addon:Addon" or index.category[m.urn] == ADDON)
        if addons:
            node.details.append("add-ons: " + ", ".join(addons))
    elif kind == "aws:eks/nodeGroup:NodeGroup":
        scaling = props.get("scalingConfig") or {}
        node.details.append(f"{', '.join(as_list(props.get('instanceTypes')))} x {_n(scaling.get('minSize'))}.."
                            f"{_n(scaling.get('maxSize'))} {str(props.get('capacityType', '')).lower()}".strip())
        if props.get("taints"):
            node.details.append("tainted: " + ", ".join(sorted({t.get("key", "") for t in props["taints"]})))
    elif index.category[record.urn] == POOL:
        node.details.extend(_karpenter_details(props))
    elif kind == "aws:msk/cluster:Cluster":
        brokers = props.get("brokerNodeGroupInfo") or {}
        node.details.append(f"Kafka {props.get('kafkaVersion', '?')}, {_n(props.get('numberOfBrokerNodes'))} x "
                            f"{brokers.get('instanceType', '?')}")
    elif kind == "aws:elasticache/replicationGroup:ReplicationGroup":
        node.details.append(f"{props.get('engine', 'redis')} {_n(props.get('numCacheClusters'))} x "
                            f"{props.get('nodeType', '?')}"
                            + (", TLS" if props.get("transitEncryptionEnabled") else ""))
    elif kind == "aws:sagemaker/endpoint:Endpoint":
        for member in draft.members:
            for variant in as_list(member.props.get("productionVariants")):
                node.details.append(f"{variant.get('variantName', 'variant')}: {variant.get('instanceType', '?')} x "
                                    f"{_n(variant.get('initialInstanceCount'))}")
    elif draft.role == WORKLOAD:
        spec = props.get("spec") or {}
        count = spec.get("replicas") or spec.get("completions") or spec.get("parallelism")
        node.details.append(f"{class_of(kind)} in {(props.get('metadata') or {}).get('namespace', 'default')}"
                            + (f", x {_n(count)}" if count else ""))
    alarms = sum(1 for m in draft.members if m.type == "aws:cloudwatch/metricAlarm:MetricAlarm")
    if alarms:
        node.details.append(f"{alarms} alarm{'s' if alarms > 1 else ''}")
    if draft.role != WORKLOAD:      # a pod names keys to write with; what is encrypted at rest is the store
        keys = {index.key_of_value[value] for member in draft.members for value in index.strings_of(member)
                if value in index.key_of_value}
        node.keys = sorted(badge_of_key[k] for k in keys)
    return node


def _title(record: ResourceRecord) -> str:
    if record.type.startswith("kubernetes:"):
        return f"Kubernetes {class_of(record.type)}"
    service = record.type.split(":")[1].split("/")[0]
    return f"{service} {words(class_of(record.type))}" if record.type.startswith("aws:") \
        else words(class_of(record.type))


def _n(value: Any) -> str:
    return str(int(value)) if isinstance(value, (int, float)) else str(value if value is not None else "?")


def _karpenter_details(props: Mapping[str, Any]) -> list[str]:
    spec = (props.get("spec") or {}).get("template", {}).get("spec", {}) if isinstance(props.get("spec"), Mapping) \
        else {}
    lines = []
    for requirement in as_list(spec.get("requirements")):
        if isinstance(requirement, Mapping) and requirement.get("key", "").endswith(
                ("instance-type", "instance-family", "capacity-type")):
            lines.append(f"{requirement['key'].rsplit('/', 1)[-1]}: {', '.join(as_list(requirement.get('values')))}")
    limits = (props.get("spec") or {}).get("limits") if isinstance(props.get("spec"), Mapping) else None
    if isinstance(limits, Mapping) and limits:
        lines.append("limits: " + ", ".join(f"{k} {v}" for k, v in sorted(limits.items())))
    return lines


def pool_labels(record: ResourceRecord) -> dict[str, str]:
    """The node labels a pool's nodes carry (managed node group `labels`, NodePool template labels)."""
    props = record.props
    labels = props.get("labels")
    if not isinstance(labels, Mapping):
        spec = props.get("spec") if isinstance(props.get("spec"), Mapping) else {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def pod_spec(record: ResourceRecord) -> Mapping[str, Any]:
    """A workload's pod spec (Pod, a controller's template, a CronJob's job template)."""
    spec = record.props.get("spec") or {}
    if class_of(record.type) == "Pod":
        return spec
    if class_of(record.type) == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _place(index: Index, arch: Architecture, drafts: Mapping[str, _Draft]) -> None:
    groups: dict[str, Group] = {}

    def group(group_id: str, label: str, kind: str, parent: Group) -> Group:
        if group_id not in groups:
            groups[group_id] = Group(group_id, label, kind)
            parent.groups.append(groups[group_id])
        return groups[group_id]

    vpc_group = {}
    for i, (vpc_id, vpc) in enumerate(index.vpcs.items()):
        vpc_group[vpc_id] = group(f"vpc{i}", f"VPC {display_name(vpc)}  {vpc.props.get('cidrBlock', '')}", "vpc",
                                  arch.root)

    def tier_group(subnet_ids: set[str]) -> Group | None:
        subnets = [index.subnets[s] for s in subnet_ids]
        vpcs = {str(s.props.get("vpcId", "")) for s in subnets}
        if len(vpcs) != 1 or next(iter(vpcs)) not in vpc_group:
            return None
        parent = vpc_group[next(iter(vpcs))]
        tiers = {index.tier(s) for s in subnet_ids}
        if len(tiers) != 1:
            return parent
        tier = next(iter(tiers))
        members = sorted((s for s in index.subnets.items() if index.tier(s[0]) == tier
                          and s[1].props.get("vpcId") == next(iter(vpcs))),
                         key=lambda s: str(s[1].props.get("availabilityZone", "")))
        label = f"{tier} subnets: " + "  ".join(
            f"{s.props.get('availabilityZone', '?')} {s.props.get('cidrBlock', '')}" for _, s in members)
        tier_box = group(f"{parent.id}_{tier}", label, "tier", parent)
        zones = {str(index.subnets[s].props.get("availabilityZone", "")) for s in subnet_ids}
        all_zones = {str(s.props.get("availabilityZone", "")) for _, s in members}
        if len(zones) == 1 and len(all_zones) > 1:
            zone = next(iter(zones))
            return group(f"{tier_box.id}_{re.sub(r'[^a-z0-9]', '', zone)}", f"{zone} only", "az", tier_box)
        return tier_box

    def placement(draft: _Draft) -> tuple[set[str], set[str]]:
        found = {value for member in draft.members for value in index.strings_of(member)}
        return found & index.subnets.keys(), found & index.vpcs.keys()

    def component_box(node: Node) -> Group:
        return group(f"component_{re.sub(r'[^A-Za-z0-9]', '_', node.component)}", node.component, "component",
                     arch.root)

    # EKS clusters first: their pools and pods go inside them.
    eks_nodes: dict[str, tuple[Group, Group]] = {}
    for node_id, draft in drafts.items():
        if draft.role != CLUSTER:
            continue
        subnets, vpcs = placement(draft)
        parent = tier_group(subnets) if subnets else (vpc_group.get(next(iter(vpcs))) if vpcs else None)
        node = arch.nodes[node_id]
        box = group(f"eks_{node_id}", f"EKS cluster {node.name}", "eks", parent or component_box(node))
        box.nodes.append(node_id)
        eks_nodes[draft.primary.urn] = (box, group(f"{box.id}_nodes", "worker nodes", "nodes", box))
    cluster_of_name = {str(index.by_urn[urn].props.get("name")): urn for urn in eks_nodes}
    pool_box: dict[str, Group] = {}
    for node_id, draft in drafts.items():
        if draft.role != POOL:
            continue
        urn = cluster_of_name.get(str(draft.primary.props.get("clusterName"))) or \
            _cluster_of_provider(index, draft.primary, list(eks_nodes))
        node = arch.nodes[node_id]
        subnets, _ = placement(draft)
        zones = sorted({str(index.subnets[s].props.get("availabilityZone", "")) for s in subnets})
        if zones:
            node.details.append(("AZ " if len(zones) == 1 else "AZs ") + ", ".join(zones))
        if urn is None or urn not in eks_nodes:
            component_box(node).nodes.append(node_id)
            continue
        box = group(f"pool_{node_id}", f"pool {pool_labels(draft.primary).get(POOL_LABEL, node.name)}", "pool",
                    eks_nodes[urn][1])
        box.nodes.append(node_id)
        pool_box[node_id] = box
    for node_id, draft in drafts.items():
        node = arch.nodes[node_id]
        if draft.role in (CLUSTER, POOL):
            continue
        if draft.role == WORKLOAD:
            urn = _cluster_of_provider(index, draft.primary, list(eks_nodes))
            selector = pod_spec(draft.primary).get("nodeSelector") or {}
            pools = [pid for pid, box in pool_box.items() if urn in eks_nodes and box in eks_nodes[urn][1].groups
                     and selector and all(pool_labels(drafts[pid].primary).get(k) == v for k, v in selector.items())]
            if pools:
                pool_box[pools[0]].nodes.append(node_id)
            elif urn in eks_nodes:
                eks_nodes[urn][0].nodes.append(node_id)
            else:
                component_box(node).nodes.append(node_id)
            continue
        subnets, vpcs = placement(draft)
        box = tier_group(subnets) if subnets else None
        if box is None and len(vpcs) == 1:
            box = vpc_group[next(iter(vpcs))]
        (box or component_box(node)).nodes.append(node_id)


def _collapse(arch: Architecture) -> None:
    """Three or more alike nodes with nothing flowing through them become one counted node."""
    touched = {end for edge in arch.edges for end in (edge.source, edge.target)}
    for group in arch.root.walk():
        alike: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for node_id in group.nodes:
            node = arch.nodes[node_id]
            if node_id not in touched and node.role == PRIMARY:
                alike[(node.type, node.component, ",".join(node.keys))].append(node_id)
        for members in alike.values():
            if len(members) < 3:
                continue
            first = arch.nodes[members[0]]
            names = common_prefix_stripped([arch.nodes[m].name for m in members])
            first.name = f"{len(members)} x"
            first.title = first.title + "s" if not first.title.endswith("s") else first.title
            first.details = [", ".join(names[i:i + 5]) for i in range(0, len(names), 5)]
            for other in members[1:]:
                first.urns.extend(arch.nodes.pop(other).urns)
                group.nodes.remove(other)


def _notes(index: Index, owner: Mapping[str, str]) -> list[str]:
    """What the picture leaves out, counted, so nothing is silently missing."""
    left: dict[str, int] = defaultdict(int)
    for record in index.records:
        if record.urn not in owner and index.category[record.urn] == TELEMETRY:
            left[words(class_of(record.type))] += 1
    return [f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in sorted(left.items())]
