"""The VPC: private subnets for everything that holds data, NAT for egress, endpoints so AWS calls stay private."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.context import AccountContext
from components.iam import policy_document, service_assume_role_policy
from components.log_groups import encrypted_log_group
from components.settings import NetworkSettings, StackIdentity
from contracts.ports import HTTPS


@dataclass(frozen=True)
class VpcNetwork:
    """What the components placed in the VPC need from it: ids, the address block, subnets and zones in AZ
    order, and the S3 gateway endpoint's prefix list (for egress rules that name S3, not a CIDR)."""

    vpc_id: pulumi.Output[str]
    cidr: str
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    availability_zones: list[pulumi.Output[str]]
    s3_prefix_list_id: pulumi.Output[str]


class Network(pulumi.ComponentResource):
    """Public and private subnets per AZ, NAT, flow logs, and gateway/interface VPC endpoints."""

    vpc: aws.ec2.Vpc
    private_subnets: list[aws.ec2.Subnet]
    public_subnets: list[aws.ec2.Subnet]
    private_route_tables: list[aws.ec2.RouteTable]
    endpoint_security_group: aws.ec2.SecurityGroup
    interface_endpoints: dict[str, aws.ec2.VpcEndpoint]

    outputs: VpcNetwork

    def __init__(self, name: str, settings: NetworkSettings, *, stack: StackIdentity,
                 logs_key_arn: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:network:Network", name, None, opts)
        config = settings
        self._stack = stack
        self._child = pulumi.ResourceOptions(parent=self)
        self.cidr = config.cidr
        zones = aws.get_availability_zones_output(
            state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=pulumi.InvokeOutputOptions(parent=self))
        self.availability_zones = [zones.names[i] for i in range(config.az_count)]

        self.vpc = aws.ec2.Vpc(
            name, cidr_block=config.cidr, enable_dns_hostnames=True, enable_dns_support=True,
            tags={"Name": stack.name("vpc")}, opts=self._child)
        # The default security group admits all traffic between its members; leave it with no rules at all.
        aws.ec2.DefaultSecurityGroup(f"{name}-default", vpc_id=self.vpc.id, ingress=[], egress=[],
                                     tags={"Name": stack.name("default-deny")}, opts=self._child)
        self._subnets(name, config)
        self._routing(name, config)
        ctx = AccountContext.lookup(stack.region, self)
        self._flow_logs(name, config, ctx, logs_key_arn)
        self._endpoints(name, config, ctx)
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.outputs = VpcNetwork(
            vpc_id=self.vpc.id, cidr=config.cidr, private_subnet_ids=self.private_subnet_ids,
            public_subnet_ids=self.public_subnet_ids, availability_zones=self.availability_zones,
            s3_prefix_list_id=self.s3_endpoint.prefix_list_id)
        self.register_outputs({
            "vpcId": self.vpc.id,
            "privateSubnetIds": self.private_subnet_ids,
            "publicSubnetIds": self.public_subnet_ids,
            "endpointSecurityGroupId": self.endpoint_security_group.id,
        })

    def _subnets(self, name: str, config: NetworkSettings) -> None:
        stack = self._stack
        private_cidrs, public_cidrs = config.subnet_layout
        self.private_subnets, self.public_subnets = [], []
        for i, zone in enumerate(self.availability_zones):
            suffix = chr(ord("a") + i)
            # The role tags tell the AWS Load Balancer Controller where internal and internet-facing LBs go.
            self.public_subnets.append(aws.ec2.Subnet(
                f"{name}-public-{suffix}", vpc_id=self.vpc.id, cidr_block=public_cidrs[i], availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": stack.name(f"public-{suffix}"), "kubernetes.io/role/elb": "1", "tier": "public"},
                opts=self._child))
            self.private_subnets.append(aws.ec2.Subnet(
                f"{name}-private-{suffix}", vpc_id=self.vpc.id, cidr_block=private_cidrs[i], availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": stack.name(f"private-{suffix}"), "kubernetes.io/role/internal-elb": "1",
                      "tier": "private"},
                opts=self._child))

    def _routing(self, name: str, config: NetworkSettings) -> None:
        stack = self._stack
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags={"Name": stack.name("igw")},
                                      opts=self._child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id, routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={"Name": stack.name("public")}, opts=self._child)
        for i, subnet in enumerate(self.public_subnets):
            aws.ec2.RouteTableAssociation(f"{name}-public-{chr(ord('a') + i)}", subnet_id=subnet.id,
                                          route_table_id=public_rt.id, opts=self._child)
        nat_count = config.az_count if config.nat_gateways == "per-az" else 1
        self.nat_gateways = []
        for i in range(nat_count):
            suffix = chr(ord("a") + i)
            eip = aws.ec2.Eip(f"{name}-nat-{suffix}", domain="vpc", tags={"Name": stack.name(f"nat-{suffix}")},
                              opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]))
            self.nat_gateways.append(aws.ec2.NatGateway(
                f"{name}-nat-{suffix}", allocation_id=eip.id, subnet_id=self.public_subnets[i].id,
                connectivity_type="public", tags={"Name": stack.name(f"nat-{suffix}")}, opts=self._child))
        self.private_route_tables = []
        for i, subnet in enumerate(self.private_subnets):
            suffix = chr(ord("a") + i)
            nat = self.nat_gateways[i % nat_count]
            table = aws.ec2.RouteTable(
                f"{name}-private-{suffix}", vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags={"Name": stack.name(f"private-{suffix}")}, opts=self._child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{suffix}", subnet_id=subnet.id, route_table_id=table.id,
                                          opts=self._child)
            self.private_route_tables.append(table)

    def _flow_logs(self, name: str, config: NetworkSettings, ctx: AccountContext,
                   logs_key_arn: pulumi.Input[str]) -> None:
        stack = self._stack
        self.flow_log_group = encrypted_log_group(
            f"{name}-flow-logs", log_group_name=f"/aiinfra/{stack.stack}/vpc-flow-logs",
            retention_days=config.flow_log_retention_days, kms_key_arn=logs_key_arn, parent=self)
        role = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=service_assume_role_policy(
                ctx.service_principal("vpc-flow-logs"),
                conditions={"StringEquals": {"aws:SourceAccount": ctx.account_id}}),
            description="VPC flow logs delivery to CloudWatch Logs", opts=self._child)
        aws.iam.RolePolicy(
            f"{name}-flow-logs", role=role.id,
            policy=policy_document([{
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [self.flow_log_group.arn, pulumi.Output.concat(self.flow_log_group.arn, ":*")],
            }]), opts=self._child)
        self.flow_log = aws.ec2.FlowLog(
            f"{name}-flow-log", vpc_id=self.vpc.id, traffic_type="ALL", log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn, iam_role_arn=role.arn, max_aggregation_interval=60,
            tags={"Name": stack.name("flow-log")}, opts=self._child)

    def _endpoints(self, name: str, config: NetworkSettings, ctx: AccountContext) -> None:
        stack = self._stack
        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints", vpc_id=self.vpc.id, name=stack.name("vpc-endpoints"),
            description="Interface VPC endpoints: HTTPS from inside the VPC only",
            ingress=[{"protocol": "tcp", "from_port": HTTPS, "to_port": HTTPS, "cidr_blocks": [config.cidr],
                      "description": "HTTPS from the VPC"}],
            egress=[], tags={"Name": stack.name("vpc-endpoints")}, opts=self._child)
        # Gateway endpoint: S3 traffic (datasets, checkpoints, models, ECR layers) stays off the NAT gateways.
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=self.vpc.id, service_name=ctx.endpoint_service("s3"),
            vpc_endpoint_type="Gateway", route_table_ids=[t.id for t in self.private_route_tables],
            tags={"Name": stack.name("s3")}, opts=self._child)
        self.interface_endpoints = {}
        for service in config.interface_endpoints:
            self.interface_endpoints[service] = aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}", vpc_id=self.vpc.id,
                service_name=ctx.endpoint_service(service), vpc_endpoint_type="Interface",
                private_dns_enabled=True, subnet_ids=[s.id for s in self.private_subnets],
                security_group_ids=[self.endpoint_security_group.id],
                tags={"Name": stack.name(service.replace(".", "-"))}, opts=self._child)
