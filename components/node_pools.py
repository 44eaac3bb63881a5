"""EKS managed node groups by accelerator profile: the right AMI, taint, labels, launch template and EFA wiring.

Everything a pool's nodes carry (AMI type, taint, labels) comes from `components.accelerators`, the same place
pod specs and device plugins take their tolerations and selectors from.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.accelerators import PROFILE_SPECS, Taint, ami_parameter, pool_labels
from components.cluster import NodeBootstrap
from components.network import VpcNetwork
from components.settings import NodePoolSettings, StackIdentity

CAPACITY_TYPES = {"on-demand": "ON_DEMAND", "spot": "SPOT", "capacity-block": "CAPACITY_BLOCK"}
ROOT_DEVICE = "/dev/xvda"  # the AL2023 EKS-optimized AMIs' root volume


# IMDSv2 response hop limit: containers sit one network hop behind the node, so a limit of 1 keeps every pod
# from reading the node role's credentials through instance metadata; pods get AWS access through IRSA. The
# settings refuse `podInstanceMetadata: true`, and the mandatory policy imdsv2-hop-limit-1 checks the result.
IMDS_HOP_LIMIT = 1


def pool_taints(pool: NodePoolSettings) -> list[Taint]:
    """The profile's accelerator taint (if any) and the pool's own extras."""
    spec = PROFILE_SPECS[pool.profile]
    taints = [spec.taint] if spec.taint else []
    return taints + [Taint(t.key, t.value, t.effect) for t in pool.taints]


class NodePools(pulumi.ComponentResource):
    """One launch template and managed node group per configured pool, plus EFA placement where it applies."""

    node_groups: dict[str, aws.eks.NodeGroup]
    launch_templates: dict[str, aws.ec2.LaunchTemplate]
    placement_groups: dict[str, aws.ec2.PlacementGroup]
    efa_security_groups: dict[str, aws.ec2.SecurityGroup]

    def __init__(self, name: str, settings: Sequence[NodePoolSettings], *, stack: StackIdentity,
                 cluster: NodeBootstrap, network: VpcNetwork, data_key_arn: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:node_pools:NodePools", name, None, opts)
        self._name = name
        self._stack = stack
        self._cluster = cluster
        self._network = network
        self._data_key_arn = data_key_arn
        self._child = pulumi.ResourceOptions(parent=self)
        self._release_versions: dict[str, pulumi.Output[str]] = {}
        self.node_groups, self.launch_templates = {}, {}
        self.placement_groups, self.efa_security_groups = {}, {}
        for pool in settings:
            self._pool(pool)
        self.summary = {pool.name: self._summary(pool) for pool in settings}
        self.register_outputs({
            "nodeGroups": {n: g.node_group_name for n, g in self.node_groups.items()},
            "placementGroups": {n: g.name for n, g in self.placement_groups.items()},
        })

    def _release_version(self, profile: str) -> pulumi.Output[str]:
        """The latest EKS-optimized AMI release for the profile's variant, read from AWS's public SSM parameter."""
        variant = PROFILE_SPECS[profile].ssm_variant
        if variant not in self._release_versions:
            parameter = aws.ssm.get_parameter_output(
                name=ami_parameter(self._cluster.kubernetes_version, profile, "release_version"),
                opts=pulumi.InvokeOutputOptions(parent=self))
            self._release_versions[variant] = parameter.value
        return self._release_versions[variant]

    def _pool(self, pool: NodePoolSettings) -> None:
        rid = f"{self._name}-{pool.name}"
        stack, spec = self._stack, PROFILE_SPECS[pool.profile]
        security_groups: list[pulumi.Input[str]] = [
            self._cluster.cluster_security_group_id, self._cluster.node_security_group_id]
        subnet_ids: list[pulumi.Input[str]] = list(self._network.private_subnet_ids)
        placement = None
        network_interfaces = None
        if pool.efa_enabled:
            efa_group = self._efa_security_group(rid, pool)
            security_groups.append(efa_group.id)
            group = aws.ec2.PlacementGroup(
                rid, name=stack.name(f"{pool.name}-cluster"), strategy="cluster",
                tags={"Name": stack.name(f"{pool.name}-cluster")}, opts=self._child)
            self.placement_groups[pool.name] = group
            placement = {"group_name": group.name}
            # A cluster placement group lives in one AZ: pin the pool to that AZ's private subnet.
            subnet_ids = [self._network.private_subnet_ids[pool.efa_availability_zone]]
            # One EFA interface per network card; the primary (card 0) is device 0, the others device 1.
            cards = pool.catalog[0].network_cards
            network_interfaces = [
                {"device_index": 0 if card == 0 else 1, "network_card_index": card, "interface_type": "efa",
                 "security_groups": security_groups, "delete_on_termination": "true",
                 "description": f"{pool.name} EFA card {card}"}
                for card in range(cards)]
        template = aws.ec2.LaunchTemplate(
            rid,
            name=stack.name(f"{pool.name}-nodes"),
            description=f"{pool.name} ({pool.profile}) nodes of {self._cluster.physical_name}",
            update_default_version=True,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",  # IMDSv2 only
                "http_put_response_hop_limit": IMDS_HOP_LIMIT,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[{
                "device_name": ROOT_DEVICE,
                "ebs": {"volume_size": pool.disk_size_gib, "volume_type": "gp3", "encrypted": "true",
                        "kms_key_id": self._data_key_arn, "delete_on_termination": "true",
                        "iops": 3000, "throughput": 250 if pool.disk_size_gib >= 500 else 125},
            }],
            # With explicit network interfaces, the groups go on each interface instead.
            vpc_security_group_ids=None if network_interfaces else security_groups,
            network_interfaces=network_interfaces,
            placement=placement,
            **self._capacity_block(pool),
            tag_specifications=[
                {"resource_type": kind, "tags": {"Name": stack.name(pool.name), "node-pool": pool.name}}
                for kind in ("instance", "volume", "network-interface")],
            tags={"Name": stack.name(f"{pool.name}-nodes")},
            opts=self._child)
        self.launch_templates[pool.name] = template
        self.node_groups[pool.name] = aws.eks.NodeGroup(
            rid,
            cluster_name=self._cluster.cluster_name,
            node_group_name=stack.name(pool.name),
            node_role_arn=self._cluster.node_role_arn,
            subnet_ids=subnet_ids,
            version=self._cluster.kubernetes_version,
            ami_type=spec.ami_type,
            release_version=self._release_version(pool.profile),
            capacity_type=CAPACITY_TYPES[pool.capacity_type],
            instance_types=list(pool.instance_types),
            scaling_config={"min_size": pool.min_size, "desired_size": pool.desired, "max_size": pool.max_size},
            # Training nodes hold one gang-scheduled job: replace them one at a time.
            update_config={"max_unavailable": 1} if pool.efa_enabled else {"max_unavailable_percentage": 33},
            labels=pool_labels(pool.name, pool.profile, pool.efa_enabled, pool.labels),
            taints=[t.node_group_taint() for t in pool_taints(pool)],
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            tags={"Name": stack.name(pool.name)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self._cluster.control_plane_addons)))

    def _summary(self, pool: NodePoolSettings) -> pulumi.Output[str]:
        """One line an operator reads in a preview: AMI, types, size, capacity, taint, EFA placement."""
        taints = ", ".join(f"{t.key}={t.value}:{t.effect}" for t in pool_taints(pool)) or "no taint"
        text = (f"{PROFILE_SPECS[pool.profile].ami_type} {'/'.join(pool.instance_types)} "
                f"x{pool.min_size}-{pool.max_size} {pool.capacity_type}, {taints}")
        if not pool.efa_enabled:
            return pulumi.Output.from_input(text)
        zone = self._network.availability_zones[pool.efa_availability_zone]
        return pulumi.Output.concat(text, f", EFA x{pool.catalog[0].network_cards} in ", zone,
                                    " (placement group ", self.placement_groups[pool.name].name, ")")

    @staticmethod
    def _capacity_block(pool: NodePoolSettings) -> dict[str, object]:
        """A Capacity Block pool launches only into its reservation."""
        if pool.capacity_type != "capacity-block":
            return {}
        return {
            "instance_market_options": {"market_type": "capacity-block"},
            "capacity_reservation_specification": {
                "capacity_reservation_target": {"capacity_reservation_id": pool.capacity_reservation_id}},
        }

    def _efa_security_group(self, rid: str, pool: NodePoolSettings) -> aws.ec2.SecurityGroup:
        """EFA traffic must be allowed to and from the group itself, all protocols; nothing else is opened."""
        name = self._stack.name(f"{pool.name}-efa")
        group = aws.ec2.SecurityGroup(
            f"{rid}-efa", vpc_id=self._network.vpc_id, name=name,
            description=f"EFA traffic between {pool.name} nodes", tags={"Name": name}, opts=self._child)
        aws.vpc.SecurityGroupIngressRule(
            f"{rid}-efa-in", security_group_id=group.id, referenced_security_group_id=group.id, ip_protocol="-1",
            description="EFA from pool members", opts=self._child)
        aws.vpc.SecurityGroupEgressRule(
            f"{rid}-efa-out", security_group_id=group.id, referenced_security_group_id=group.id, ip_protocol="-1",
            description="EFA to pool members", opts=self._child)
        self.efa_security_groups[pool.name] = group
        return group
