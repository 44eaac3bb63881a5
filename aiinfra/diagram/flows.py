"""The architecture view's edges: what flows between the placed nodes, each read from the recorded resources.

- data: the IAM policies of the role a node assumes (a pod's service account, a model's execution role, a node
  group's node role). S3 grants name bucket and prefix (`contracts/storage.py` spells both sides), Kafka grants
  name topics; reads point from the store to the reader, writes from the writer to the store. A grant on a whole
  bucket is narrowed to the S3 URIs the workload's own command and env use. A role no resource assumes (one a
  launcher passes to SageMaker, say) is drawn as the workload it stands for.
- traffic: an address of one node (Redis or Kafka endpoint) in a workload's env or command.
- peering: security-group rules that name another group; drawn between the nodes holding the groups, with the
  port (named from `contracts/ports.py`). Ingress from anywhere starts at the Internet.
- route: private subnets to their NAT gateway, public ones to the internet gateway.
- image: a container image from one of the platform's repositories.
KMS grants are not edges: keys are a legend and a badge on the nodes they encrypt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiinfra.diagram import model
from aiinfra.diagram.model import Architecture, Edge, Group, Index, Node
from aiinfra.diagram.records import as_list, class_of, display_name, keyed_strings, policy_document
from aiinfra.graph import ResourceRecord
from contracts import ports
from contracts.kubernetes import IRSA_ROLE_ANNOTATION

PORT_NAMES = {value: name for name, value in vars(ports).items() if name.isupper() and isinstance(value, int)}
# Grants that are plumbing, not a data path (keys are badges; logs, metrics and ENI management go everywhere).
NOT_A_FLOW = ("kms:", "logs:", "cloudwatch:", "ec2:", "sts:", "iam:", "xray:", "ssm:")
SERVICE_LABELS = {"ecr": "image", "secretsmanager": "secret", "sns": "notifications", "sqs": "messages"}
READ_VERBS = ("get", "read", "list", "describe", "receive", "query", "scan", "batchget", "subscribe", "select")
WRITE_VERBS = ("put", "write", "send", "publish", "create", "update", "delete", "batchwrite", "abort", "upload")


class _Edges:
    def __init__(self) -> None:
        self.edges: dict[tuple[str, str, str, str, str], Edge] = {}

    def add(self, source: str, target: str, kind: str, label: str = "", tail: str = "", head: str = "") -> None:
        if source == target and not (tail or head):
            return
        edge = self.edges.setdefault((source, target, kind, tail, head), Edge(source, target, kind, [], tail, head))
        if label and label not in edge.labels:
            edge.labels.append(label)


def add_flows(index: Index, arch: Architecture) -> None:
    node_of_urn = {urn: node_id for node_id, node in arch.nodes.items() for urn in node.urns}
    edges = _Edges()
    roles = {str(r.props.get("arn")): r for r in index.records if r.type == "aws:iam/role:Role"}
    assumed = _assumed_roles(index, arch, roles)
    claimed = {role.urn for found in assumed.values() for role in found}
    for role in roles.values():
        if role.urn not in claimed and _accesses(index, role, arch, node_of_urn, ""):
            node_id = _external_workload(index, arch, role)
            assumed[node_id] = [role]
    for node_id, found in assumed.items():
        node = arch.nodes[node_id]
        for role in found:
            if role.urn not in node.urns:
                node.urns.append(role.urn)
            for target, reads, label in _accesses(index, role, arch, node_of_urn, node_id):
                kind = "image" if label == "image" else "data"
                if reads:
                    edges.add(target, node_id, kind, label)
                else:
                    edges.add(node_id, target, kind, label)
    _addresses(index, arch, edges)
    _peerings(index, arch, edges)
    _routes(index, arch, node_of_urn, edges)
    _images(index, arch, edges)
    arch.edges = list(edges.edges.values())


def _members(index: Index, node: Node) -> list[ResourceRecord]:
    return [index.by_urn[u] for u in node.urns if index.category.get(u) != model.IDENTITY]


def _assumed_roles(index: Index, arch: Architecture,
                   roles: Mapping[str, ResourceRecord]) -> dict[str, list[ResourceRecord]]:
    """Node -> the IAM roles it acts as: role ARNs its resources pass (`roleArn`, `executionRoleArn`, ...) and,
    for pods, the role their service account is annotated with (IRSA) or associated with (EKS Pod Identity)."""
    accounts: dict[tuple[str, str], str] = {}
    for record in index.records:
        if record.type.startswith("kubernetes:") and class_of(record.type) == "ServiceAccount":
            metadata = record.props.get("metadata") or {}
            arn = (metadata.get("annotations") or {}).get(IRSA_ROLE_ANNOTATION)
            if arn:
                accounts[(str(metadata.get("namespace", "default")), str(metadata.get("name")))] = str(arn)
        elif record.type == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
            accounts[(str(record.props.get("namespace")), str(record.props.get("serviceAccount")))] = \
                str(record.props.get("roleArn"))
    found: dict[str, list[ResourceRecord]] = {}
    for node_id, node in arch.nodes.items():
        arns: list[str] = []
        for member in _members(index, node):
            if "serviceAccount" in member.props:
                continue            # a pod identity association binds a service account, not its holder
            arns.extend(value for key, value in keyed_strings(member.props)
                        if key.lower().endswith(("rolearn", "role-arn")) and value in roles)
        if node.role == model.WORKLOAD:
            primary = index.by_urn[node.urns[0]]
            namespace = str((primary.props.get("metadata") or {}).get("namespace", "default"))
            account = str(model.pod_spec(primary).get("serviceAccountName") or "default")
            if (namespace, account) in accounts:
                arns.append(accounts[(namespace, account)])
        roles_found = [roles[a] for a in dict.fromkeys(arns) if a in roles]
        if roles_found:
            found[node_id] = roles_found
    return found


def _external_workload(index: Index, arch: Architecture, role: ResourceRecord) -> str:
    """A role that no resource assumes stands for the workload some launcher runs with it."""
    trust = policy_document(role.props.get("assumeRolePolicy"))
    principals = sorted({p for s in as_list(trust.get("Statement")) if isinstance(s, Mapping)
                         for p in as_list((s.get("Principal") or {}).get("Service"))})
    node_id = f"n{len(arch.nodes)}_{re.sub(r'[^A-Za-z0-9]+', '_', role.name)}"
    node = Node(node_id, "workload outside the stack", str(role.props.get("description") or display_name(role)),
                role.type, "external", index.component(role), [role.urn],
                [f"IAM role {role.name}"] + [f"assumed by {p}" for p in principals])
    arch.nodes[node_id] = node
    box_id = f"component_{re.sub(r'[^A-Za-z0-9]', '_', node.component)}"
    box = next((g for g in arch.root.groups if g.id == box_id), None)
    if box is None:
        box = Group(box_id, node.component, "component")
        arch.root.groups.append(box)
    box.nodes.append(node_id)
    return node_id


def _policies(index: Index, role: ResourceRecord) -> list[dict[str, Any]]:
    names = {str(role.props.get(k)) for k in ("name", "arn", "id") if role.props.get(k)} | {Index.pid(role)}
    by_arn = {str(r.props.get("arn")): r for r in index.records if r.type == "aws:iam/policy:Policy"}
    documents = [policy_document(p.get("policy")) for p in as_list(role.props.get("inlinePolicies"))
                 if isinstance(p, Mapping)]
    attached = list(as_list(role.props.get("managedPolicyArns")))
    for record in index.records:
        if str(record.props.get("role", "")) not in names:
            continue
        if record.type == "aws:iam/rolePolicy:RolePolicy":
            documents.append(policy_document(record.props.get("policy")))
        elif record.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
            attached.append(record.props.get("policyArn"))
    documents.extend(policy_document(by_arn[a].props.get("policy")) for a in attached if a in by_arn)
    return documents


def _accesses(index: Index, role: ResourceRecord, arch: Architecture, node_of_urn: Mapping[str, str],
              reader: str) -> list[tuple[str, bool, str]]:
    """(store node, is a read, label) for every grant of the role that reaches a drawn node."""
    stores = _stores(index, arch, node_of_urn)
    uris = _workload_uris(index, arch.nodes[reader]) if reader else []
    found: list[tuple[str, bool, str]] = []
    for document in _policies(index, role):
        for statement in as_list(document.get("Statement")):
            if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
                continue
            actions = [str(a).lower() for a in as_list(statement.get("Action"))]
            actions = [a for a in actions if not a.startswith(NOT_A_FLOW)]
            if not actions:
                continue
            for resource in map(str, as_list(statement.get("Resource"))):
                found.extend(_access(resource, actions, stores, uris))
    return list(dict.fromkeys(found))


def _access(resource: str, actions: list[str], stores: Mapping[str, str],
            uris: list[tuple[str, str]]) -> Iterable[tuple[str, bool, str]]:
    if resource.startswith("arn:") and ":s3:::" in resource:
        bucket, _, key = resource.split(":::", 1)[1].partition("/")
        node_id = stores.get(bucket)
        if node_id is None or not key:
            return           # ListBucket on the bucket itself: the object grants say what flows
        prefix = key.rstrip("*")
        writes = any(a.startswith(("s3:put", "s3:delete", "s3:abort")) or a == "s3:*" for a in actions)
        reads = any(a.startswith("s3:get") or a == "s3:*" for a in actions)
        if not (reads or writes):
            return
        labels = [prefix] if prefix else sorted({_folder(path) for b, path in uris if b == bucket}) or ["all objects"]
        for label in labels:
            yield node_id, not writes, label
        return
    if ":kafka:" in resource and ":topic/" not in resource:
        return               # connecting, describing, consumer groups: the topic grants say what flows
    if ":kafka:" in resource:
        cluster_arn = resource.replace(":topic/", ":cluster/").rsplit("/", 1)[0]
        node_id = stores.get(cluster_arn)
        topic = resource.rsplit("/", 1)[-1]
        label = f"topic {topic}" if topic != "*" else "all topics"
        if node_id is None:
            return
        if any(a.endswith(("readdata", ":*")) for a in actions):
            yield node_id, True, label
        if any(a.endswith(("writedata", ":*")) for a in actions):
            yield node_id, False, label
        return
    node_id = next((n for arn, n in stores.items() if arn.startswith("arn:") and
                    (resource == arn or resource.startswith((arn + "/", arn + ":")))), None)
    if node_id is None:
        return
    service = resource.split(":")[2] if resource.count(":") >= 2 else ""
    service = SERVICE_LABELS.get(service, service)
    verbs = [a.split(":", 1)[-1] for a in actions]
    if any(v.startswith(WRITE_VERBS) or v == "*" for v in verbs):
        yield node_id, False, service
    elif any(v.startswith(READ_VERBS) for v in verbs):
        yield node_id, True, service


def _folder(path: str) -> str:
    path = re.sub(r"\$\(([A-Z_]+)\)", lambda m: f"<{m.group(1).lower().removeprefix('aiinfra_')}>", path)
    return path if path.endswith("/") else path.rsplit("/", 1)[0] + "/"


def _stores(index: Index, arch: Architecture, node_of_urn: Mapping[str, str]) -> dict[str, str]:
    """Bucket names and ARNs -> the node they belong to."""
    found: dict[str, str] = {}
    for urn, node_id in node_of_urn.items():
        record = index.by_urn[urn]
        if index.category.get(urn) in (model.IDENTITY, model.KEY):
            continue
        for key in ("arn", "bucket"):
            value = record.props.get(key)
            if isinstance(value, str) and value:
                found.setdefault(value, node_id)
    return found


def _pod_strings(record: ResourceRecord) -> list[str]:
    """A workload's commands, args and env values, with `$(VAR)` resolved from the container's own env."""
    found = []
    spec = model.pod_spec(record)
    for container in as_list(spec.get("initContainers")) + as_list(spec.get("containers")):
        if not isinstance(container, Mapping):
            continue
        env = {str(e.get("name")): str(e["value"]) for e in as_list(container.get("env"))
               if isinstance(e, Mapping) and isinstance(e.get("value"), str)}
        for value in as_list(container.get("command")) + as_list(container.get("args")) + list(env.values()):
            found.append(re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)),
                                str(value)))
    return found


def _workload_uris(index: Index, node: Node) -> list[tuple[str, str]]:
    if node.role != model.WORKLOAD:
        return []
    uris = []
    for value in _pod_strings(index.by_urn[node.urns[0]]):
        for bucket, path in re.findall(r"s3://([^/\s]+)/(\S*)", value):
            uris.append((bucket, path))
    return uris


def _port_label(protocol: str, low: Any, high: Any) -> str:
    protocol = str(protocol or "tcp").lower()
    if protocol in ("-1", "all"):
        return "all traffic"
    if low is None:
        return protocol
    low_i, high_i = int(float(low)), int(float(high if high is not None else low))
    name = PORT_NAMES.get(low_i) if low_i == high_i else None
    ports_text = str(low_i) if low_i == high_i else f"{low_i}-{high_i}"
    return f"{protocol} {ports_text}" + (f" ({name.lower().replace('_', ' ')})" if name else "")


def _addresses(index: Index, arch: Architecture, edges: _Edges) -> None:
    hosts: dict[str, tuple[str, str]] = {}
    for node_id, node in arch.nodes.items():
        for member in _members(index, node):
            for key, value in keyed_strings(member.props):
                if key.lower().endswith("endpointaddress") or key.lower().startswith("bootstrapbrokers"):
                    for part in value.split(","):
                        host, _, port = part.partition(":")
                        hosts[host] = (node_id, port)
    for node_id, node in arch.nodes.items():
        if node.role != model.WORKLOAD:
            continue
        for value in _pod_strings(index.by_urn[node.urns[0]]):
            for scheme, host, port in re.findall(r"(?:([a-z]+)://)?([A-Za-z0-9.-]+\.[a-z]{2,}):(\d+)", value):
                if host in hosts and hosts[host][0] != node_id:
                    label = _port_label("tcp", port, port)
                    edges.add(node_id, hosts[host][0], "traffic", f"{scheme} {label}" if scheme else label)


def _holders(index: Index, arch: Architecture) -> dict[str, set[str]]:
    """Security group id -> the (non-pod) nodes whose resources attach it."""
    found: dict[str, set[str]] = {sg: set() for sg in index.security_groups}
    for node_id, node in arch.nodes.items():
        if node.role == model.WORKLOAD:
            continue
        for member in _members(index, node):
            for value in index.strings_of(member) & index.security_groups:
                found[value].add(node_id)
    return found


def _rules(index: Index) -> Iterable[tuple[str, str, str, str]]:
    """(from group or cidr, to group, direction, port label) for every rule naming a peer."""
    for record in index.records:
        props = record.props
        kind = class_of(record.type)
        if kind in ("SecurityGroupIngressRule", "SecurityGroupEgressRule"):
            label = _port_label(props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"))
            mine = str(props.get("securityGroupId", ""))
            peer = str(props.get("referencedSecurityGroupId") or props.get("cidrIpv4") or props.get("cidrIpv6") or "")
            if peer:
                yield (peer, mine, "in", label) if kind.endswith("IngressRule") else (mine, peer, "out", label)
        elif kind == "SecurityGroupRule":
            label = _port_label(props.get("protocol"), props.get("fromPort"), props.get("toPort"))
            mine = str(props.get("securityGroupId", ""))
            peers = [str(props.get("sourceSecurityGroupId") or "")] + [str(c) for c in as_list(props.get("cidrBlocks"))]
            if props.get("self"):
                peers.append(mine)
            for peer in filter(None, peers):
                yield (peer, mine, "in", label) if props.get("type") == "ingress" else (mine, peer, "out", label)
        elif kind in ("SecurityGroup", "DefaultSecurityGroup"):
            mine = Index.pid(record)
            for direction in ("ingress", "egress"):
                for rule in as_list(props.get(direction)):
                    if not isinstance(rule, Mapping):
                        continue
                    label = _port_label(rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"))
                    peers = [str(p) for p in as_list(rule.get("securityGroups")) + as_list(rule.get("cidrBlocks"))]
                    if rule.get("self"):
                        peers.append(mine)
                    for peer in peers:
                        yield (peer, mine, "in", label) if direction == "ingress" else (mine, peer, "out", label)


def _representative(arch: Architecture, members: set[str]) -> str:
    """The group whose machines are exactly these nodes, so one edge can stand for all of them."""
    if len(members) < 2:
        return ""
    best = ""
    for group in arch.root.walk():
        hosts = {n for n in group.all_nodes() if arch.nodes[n].role != model.WORKLOAD}
        if hosts == members:
            best = group.id          # walk is outer first: the last match is the tightest box
    return best


def _peerings(index: Index, arch: Architecture, edges: _Edges) -> None:
    holders = _holders(index, arch)
    for source, target, direction, label in _rules(index):
        targets = holders.get(target, set())
        if source in holders:
            sources = holders[source] - targets
            if not sources or not targets:
                continue              # a group admitting itself: traffic inside one box
        elif source in ("0.0.0.0/0", "::/0") and direction == "in":
            sources = {_internet(arch)}
        else:
            if direction == "in":
                for node_id in targets:
                    _detail(arch.nodes[node_id], f"in: {label} from {source}")
            continue
        _fan(arch, edges, sources, targets, "peering", label)


def _fan(arch: Architecture, edges: _Edges, sources: set[str], targets: set[str], kind: str, label: str) -> None:
    tail, head = _representative(arch, sources), _representative(arch, targets)
    source_ends = [_anchor(arch, tail)] if tail else sorted(sources)
    target_ends = [_anchor(arch, head)] if head else sorted(targets)
    for source in source_ends:
        for target in target_ends:
            edges.add(source, target, kind, label, tail, head)


def _anchor(arch: Architecture, group_id: str) -> str:
    group = arch.group(group_id)
    nodes = group.all_nodes()
    return next((n for n in nodes if arch.nodes[n].role != model.WORKLOAD), nodes[0])


def _detail(node: Node, line: str) -> None:
    if line not in node.details:
        node.details.append(line)


def _internet(arch: Architecture) -> str:
    if "internet" not in arch.nodes:
        arch.nodes["internet"] = Node("internet", "Internet", "", "internet", "external", "")
        arch.root.nodes.append("internet")
    return "internet"


def _routes(index: Index, arch: Architecture, node_of_urn: Mapping[str, str], edges: _Edges) -> None:
    """Default routes: a subnet's box to the NAT gateway or internet gateway its route table sends it to."""
    gateway_node = {Index.pid(index.by_urn[urn]): node_id for urn, node_id in node_of_urn.items()
                    if index.by_urn[urn].type in ("aws:ec2/natGateway:NatGateway",
                                                  "aws:ec2/internetGateway:InternetGateway")}
    tables = {Index.pid(r): r for r in index.records if r.type == "aws:ec2/routeTable:RouteTable"}
    for record in index.records:
        if record.type != "aws:ec2/routeTableAssociation:RouteTableAssociation":
            continue
        table = tables.get(str(record.props.get("routeTableId", "")))
        subnet = index.subnets.get(str(record.props.get("subnetId", "")))
        if table is None or subnet is None:
            continue
        for route in as_list(table.props.get("routes")):
            if not isinstance(route, Mapping):
                continue
            gateway = str(route.get("natGatewayId") or route.get("gatewayId") or "")
            target = gateway_node.get(gateway)
            if target is None:
                continue
            cidr = str(route.get("cidrBlock") or route.get("ipv6CidrBlock") or "")
            zone = str(subnet.props.get("availabilityZone", ""))
            inside = [n for n, node in arch.nodes.items() if Index.pid(subnet) in _subnet_ids(index, node)
                      and n != target]
            if gateway.startswith("igw-"):
                # Public subnets: what sits there (NAT gateways) reaches the internet gateway.
                for node_id in inside:
                    edges.add(node_id, target, "route", cidr)
                continue
            tier = _tier_box(arch, index, subnet)
            if tier is not None and tier.all_nodes():
                edges.add(_anchor(arch, tier.id), target, "route", f"{cidr} from {zone}", tier.id, "")
    for node_id, node in list(arch.nodes.items()):
        if node.type == "aws:ec2/internetGateway:InternetGateway":
            edges.add(node_id, _internet(arch), "route", "")


def _subnet_ids(index: Index, node: Node) -> set[str]:
    return {v for m in _members(index, node) for v in index.strings_of(m)} & index.subnets.keys()


def _tier_box(arch: Architecture, index: Index, subnet: ResourceRecord) -> Group | None:
    vpc = list(index.vpcs).index(subnet.props.get("vpcId")) if subnet.props.get("vpcId") in index.vpcs else -1
    wanted = f"vpc{vpc}_{index.tier(Index.pid(subnet))}"
    return next((g for g in arch.root.walk() if g.id == wanted), None)


def _images(index: Index, arch: Architecture, edges: _Edges) -> None:
    repositories = {str(index.by_urn[n.urns[0]].props["repositoryUrl"]): node_id for node_id, n in arch.nodes.items()
                    if n.urns and index.by_urn[n.urns[0]].props.get("repositoryUrl")}
    for node_id, node in arch.nodes.items():
        for member in _members(index, node):
            for key, value in keyed_strings(member.props):
                if key != "image":
                    continue
                for url, repo in repositories.items():
                    if value.startswith((url + ":", url + "@")) and repo != node_id:
                        edges.add(repo, node_id, "image", "image")
