"""Pulumi mocks that answer like a real AWS account, so the offline synth looks like a real preview.

Provider calls (AZs, caller identity, region, partition, EKS-optimized AMI parameters) get realistic answers,
and every resource gets a realistic id and ARN plus the computed outputs that downstream resources read
(endpoints, URLs, OIDC issuers). Ids are derived from the resource's type and name, so two runs of the same
stack produce the same graph, and diffs between exports show real changes only.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

TEST_ACCOUNT_ID = "123456789012"

# Zone-id prefixes for the regions the fixtures and stacks use; others fall back to a derived prefix.
_ZONE_ID_PREFIX = {"us-east-1": "use1", "us-east-2": "use2", "us-west-2": "usw2", "eu-west-1": "euw1"}


def zone_prefix(region: str) -> str:
    """The short region code AWS uses in zone ids and ElastiCache host names (`use1` for us-east-1)."""
    return _ZONE_ID_PREFIX.get(region, re.sub(r"[^a-z0-9]", "", region)[:4])


def digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


@dataclass
class ResourceContext:
    """What an output builder needs to invent a resource's computed values."""

    typ: str
    name: str
    inputs: Mapping[str, Any]
    region: str
    account: str
    resource_id: str
    physical_name: str

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (f"arn:aws:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")


# Id prefixes AWS uses, by resource type token.
_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc-", "aws:ec2/subnet:Subnet": "subnet-", "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/internetGateway:InternetGateway": "igw-", "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-", "aws:ec2/routeTable:RouteTable": "rtb-", "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
    "aws:ec2/flowLog:FlowLog": "fl-", "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
    "aws:ec2/placementGroup:PlacementGroup": "pg-", "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc-",
    "aws:ec2/route:Route": "r-", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr-",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr-",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "sgrule-",
}

# The input that holds a resource's physical name, where it is not `name`.
_NAME_INPUT = {
    "aws:s3/bucket:Bucket": "bucket", "aws:s3/bucketV2:BucketV2": "bucket",
    "aws:elasticache/replicationGroup:ReplicationGroup": "replicationGroupId",
    "aws:msk/cluster:Cluster": "clusterName", "aws:sagemaker/endpoint:Endpoint": "name",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "name", "aws:cloudwatch/dashboard:Dashboard": "dashboardName",
    "aws:eks/nodeGroup:NodeGroup": "nodeGroupName", "aws:eks/addon:Addon": "addonName",
}

# Types whose physical name is auto-generated into a `name` output when the program does not set one.
_AUTONAMED = {
    "aws:iam/role:Role", "aws:iam/policy:Policy", "aws:cloudwatch/logGroup:LogGroup", "aws:ec2/securityGroup:SecurityGroup",
    "aws:ecr/repository:Repository", "aws:sns/topic:Topic", "aws:secretsmanager/secret:Secret", "aws:eks/cluster:Cluster",
    "aws:sagemaker/model:Model", "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
    "aws:elasticache/parameterGroup:ParameterGroup", "aws:elasticache/subnetGroup:SubnetGroup",
    "aws:msk/configuration:Configuration", "aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/placementGroup:PlacementGroup",
    "aws:iam/rolePolicy:RolePolicy", "aws:kms/alias:Alias", "aws:iam/instanceProfile:InstanceProfile",
} | set(_NAME_INPUT)

OutputBuilder = Callable[[ResourceContext], dict[str, Any]]


def _arn_builders() -> dict[str, OutputBuilder]:
    """ARN formats per type: the shapes AWS really uses, so policies that parse ARNs see real ones."""
    return {
        "aws:s3/bucket:Bucket": lambda c: {"arn": c.arn("s3", c.physical_name, region=False, account=False)},
        "aws:s3/bucketV2:BucketV2": lambda c: {"arn": c.arn("s3", c.physical_name, region=False, account=False)},
        "aws:iam/role:Role": lambda c: {"arn": c.arn("iam", f"role/{c.physical_name}", region=False)},
        "aws:iam/policy:Policy": lambda c: {"arn": c.arn("iam", f"policy/{c.physical_name}", region=False)},
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider": lambda c: {
            "arn": c.arn("iam", "oidc-provider/" + str(c.inputs.get("url", "")).removeprefix("https://"),
                         region=False)},
        "aws:kms/key:Key": lambda c: {"arn": c.arn("kms", f"key/{c.resource_id}"), "keyId": c.resource_id},
        "aws:kms/alias:Alias": lambda c: {"arn": c.arn("kms", c.physical_name),
                                          "targetKeyArn": c.inputs.get("targetKeyId", "")},
        "aws:cloudwatch/logGroup:LogGroup": lambda c: {"arn": c.arn("logs", f"log-group:{c.physical_name}")},
        "aws:ecr/repository:Repository": lambda c: {
            "arn": c.arn("ecr", f"repository/{c.physical_name}"), "registryId": c.account,
            "repositoryUrl": f"{c.account}.dkr.ecr.{c.region}.amazonaws.com/{c.physical_name}"},
        "aws:sns/topic:Topic": lambda c: {"arn": c.arn("sns", c.physical_name)},
        "aws:cloudwatch/metricAlarm:MetricAlarm": lambda c: {"arn": c.arn("cloudwatch", f"alarm:{c.physical_name}")},
        "aws:secretsmanager/secret:Secret": lambda c: {
            "arn": c.arn("secretsmanager", f"secret:{c.physical_name}-{digest(c.name, length=6)}")},
        "aws:eks/cluster:Cluster": lambda c: {
            "arn": c.arn("eks", f"cluster/{c.physical_name}"),
            "endpoint": f"https://{digest(c.name, length=32).upper()}.gr7.{c.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": "TU9DSy1DQS1EQVRB"},
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{c.region}.amazonaws.com/id/"
                                                 f"{digest(c.name, length=32).upper()}"}]}],
            "clusterSecurityGroupId": "sg-" + digest(c.name, "cluster-sg"),
            "vpcConfig": {**dict(c.inputs.get("vpcConfig") or {}),
                          "clusterSecurityGroupId": "sg-" + digest(c.name, "cluster-sg")},
            "status": "ACTIVE", "platformVersion": "eks.1"},
        "aws:msk/cluster:Cluster": lambda c: {
            "arn": c.arn("kafka", f"cluster/{c.physical_name}/{c.resource_id}"), "clusterUuid": c.resource_id,
            "bootstrapBrokersSaslIam": ",".join(
                f"b-{i}.{c.physical_name}.{digest(c.name, length=6)}.c2.kafka.{c.region}.amazonaws.com:9098"
                for i in range(1, int(c.inputs.get("numberOfBrokerNodes") or 3) + 1)),
            "currentVersion": "K3AEGXETSR30VB", "zookeeperConnectString": ""},
        "aws:msk/configuration:Configuration": lambda c: {
            "arn": c.arn("kafka", f"configuration/{c.physical_name}/{c.resource_id}"), "latestRevision": 1},
        "aws:ec2/vpcEndpoint:VpcEndpoint": lambda c: {
            "arn": c.arn("ec2", f"vpc-endpoint/{c.resource_id}"),
            **({"prefixListId": "pl-" + digest(c.name, length=8)}
               if c.inputs.get("vpcEndpointType") == "Gateway" else {})},
        "random:index/randomPassword:RandomPassword": lambda c: {
            "result": "MockPassword" + digest(c.name, "password", length=int(c.inputs.get("length") or 16) - 12),
            "bcryptHash": "$2a$10$" + digest(c.name, "bcrypt", length=53)},
        "aws:elasticache/replicationGroup:ReplicationGroup": lambda c: {
            "arn": c.arn("elasticache", f"replicationgroup:{c.physical_name}"),
            "primaryEndpointAddress": f"master.{c.physical_name}.{digest(c.name, length=6)}.{zone_prefix(c.region)}"
                                      ".cache.amazonaws.com",
            "readerEndpointAddress": f"replica.{c.physical_name}.{digest(c.name, length=6)}.{zone_prefix(c.region)}"
                                     ".cache.amazonaws.com"},
        "aws:sagemaker/endpoint:Endpoint": lambda c: {"arn": c.arn("sagemaker", f"endpoint/{c.physical_name}")},
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration": lambda c: {
            "arn": c.arn("sagemaker", f"endpoint-config/{c.physical_name}")},
        "aws:sagemaker/model:Model": lambda c: {"arn": c.arn("sagemaker", f"model/{c.physical_name}")},
        "aws:eks/nodeGroup:NodeGroup": lambda c: {
            "arn": c.arn("eks", f"nodegroup/{c.inputs.get('clusterName', 'cluster')}/{c.physical_name}/{c.resource_id}"),
            "resources": [{"autoscalingGroups": [{"name": f"eks-{c.physical_name}-{c.resource_id}"}]}],
            "status": "ACTIVE"},
        "aws:ec2/launchTemplate:LaunchTemplate": lambda c: {
            "arn": c.arn("ec2", f"launch-template/{c.resource_id}"), "latestVersion": 1, "defaultVersion": 1},
    }


class PlatformMocks(pulumi.runtime.Mocks):
    """Answers provider calls and invents resource state the way AWS would, for one region and account."""

    def __init__(self, region: str, account: str = TEST_ACCOUNT_ID) -> None:
        self.region = region
        self.account = account
        self._arns = _arn_builders()
        self._default_tags: dict[str, dict[str, str]] = {}

    # --- provider functions -------------------------------------------------------------------------------
    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        handler = self._calls().get(args.token)
        if handler is None:
            raise NotImplementedError(f"the offline mocks do not answer {args.token}; add it to aiinfra/mocks.py")
        return handler(dict(args.args))

    def _calls(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "aws:index/getAvailabilityZones:getAvailabilityZones": self._availability_zones,
            "aws:index/getCallerIdentity:getCallerIdentity": lambda _: {
                "accountId": self.account, "arn": f"arn:aws:iam::{self.account}:role/platform-deployer",
                "userId": "AROAOFFLINEDEPLOYER", "id": self.account},
            "aws:index/getRegion:getRegion": lambda _: {
                "name": self.region, "region": self.region, "id": self.region,
                "endpoint": f"ec2.{self.region}.amazonaws.com", "description": self.region},
            "aws:index/getPartition:getPartition": lambda _: {
                "partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"},
            "aws:ssm/getParameter:getParameter": self._ssm_parameter,
        }

    def _availability_zones(self, _: dict[str, Any]) -> dict[str, Any]:
        prefix = zone_prefix(self.region)
        letters = "abcdef"
        return {"id": self.region, "state": "available", "groupNames": [self.region],
                "names": [f"{self.region}{letter}" for letter in letters],
                "zoneIds": [f"{prefix}-az{i + 1}" for i in range(len(letters))]}

    def _ssm_parameter(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name", ""))
        ami = re.fullmatch(r"/aws/service/eks/optimized-ami/(\d+\.\d+)/amazon-linux-2023/(x86_64|arm64)/"
                           r"(standard|nvidia|neuron)/recommended/(release_version|image_id)", name)
        if ami is None:
            raise KeyError(f"the offline mocks know no SSM parameter {name}")
        version, arch, variant, what = ami.groups()
        value = (f"{version}.7-20251108" if what == "release_version"
                 else "ami-" + digest(version, arch, variant))
        return {"id": name, "name": name, "type": "String", "value": value, "insecureValue": value,
                "arn": f"arn:aws:ssm:{self.region}::parameter{name}", "version": 1}

    # --- resources ----------------------------------------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        if args.typ.startswith("pulumi:providers:"):
            # Providers receive nested config as JSON text, as the engine passes it.
            defaults = inputs.get("defaultTags") or {}
            defaults = json.loads(defaults) if isinstance(defaults, str) else defaults
            tags = defaults.get("tags") or {}
            provider_id = "provider-" + digest(args.typ, args.name)
            self._default_tags[provider_id] = dict(tags)
            return provider_id, inputs
        resource_id = self._resource_id(args.typ, args.name, inputs)
        physical = self._physical_name(args.typ, args.name, inputs)
        ctx = ResourceContext(args.typ, args.name, inputs, self.region, self.account, resource_id, physical)
        state: dict[str, Any] = {**inputs}
        if args.typ in _AUTONAMED:
            state.setdefault(_NAME_INPUT.get(args.typ, "name"), physical)
        builder = self._arns.get(args.typ)
        if builder is not None:
            state.update(builder(ctx))
        elif args.typ.startswith("aws:"):
            module, kind = args.typ.split(":")[1].split("/")
            state.setdefault("arn", ctx.arn(module.split("/")[0], f"{kind}/{resource_id}"))
        if "tags" in inputs or args.typ.startswith("aws:"):
            provider_id = (args.provider or "").rsplit("::", 1)[-1]
            default_tags = self._default_tags.get(provider_id, {})
            if default_tags or inputs.get("tags"):
                state["tagsAll"] = {**default_tags, **(inputs.get("tags") or {})}
        return resource_id, state

    def _resource_id(self, typ: str, name: str, inputs: Mapping[str, Any]) -> str:
        if typ in _ID_PREFIX:
            return _ID_PREFIX[typ] + digest(typ, name)
        if typ in ("aws:kms/key:Key", "aws:msk/cluster:Cluster"):
            return str(uuid.UUID(digest(typ, name, length=32)))
        return self._physical_name(typ, name, inputs)

    @staticmethod
    def _physical_name(typ: str, name: str, inputs: Mapping[str, Any]) -> str:
        explicit = inputs.get(_NAME_INPUT.get(typ, "name"))
        if isinstance(explicit, str) and explicit:
            return explicit
        # Pulumi's auto-naming: the logical name plus a random-looking suffix.
        return f"{name}-{digest(typ, name, length=7)}"

