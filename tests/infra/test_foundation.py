"""Keys, network and storage as declared for each shipped stack: the security-relevant inputs, per environment."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

import pytest

from components.settings import DEFAULT_INTERFACE_ENDPOINTS

STACKS = ("dev", "staging", "prod")


def inputs(graph, type_token: str) -> list[dict]:
    return [dict(r.inputs) for r in graph.of_type(type_token)]


def statements(policy: str) -> list[dict]:
    return json.loads(policy)["Statement"]


# --- encryption ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_one_rotating_key_and_alias_per_domain(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    keys = graph.of_type("aws:kms/key:Key")
    domains = {k.name.removeprefix("keys-") for k in keys}
    assert {"data", "models", "logs", "cluster", "streaming"} <= domains
    assert all(k.inputs["enableKeyRotation"] is True for k in keys)
    window = 7 if stack == "dev" else 30
    assert {k.inputs["deletionWindowInDays"] for k in keys} == {window}
    aliases = {a.inputs["name"] for a in graph.of_type("aws:kms/alias:Alias")}
    assert aliases == {f"alias/aiinfra-{stack}-{d}" for d in domains}


def test_key_policies_grant_only_the_services_that_need_them(stack_graph: Callable) -> None:
    keys = {k.name.removeprefix("keys-"): statements(k.inputs["policy"]) for k in stack_graph("prod").of_type(
        "aws:kms/key:Key")}
    for domain, stmts in keys.items():
        root = stmts[0]
        assert root["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}, domain
        assert all(s.get("Principal") != "*" and s.get("Principal") != {"AWS": "*"} for s in stmts), domain
    logs = {s["Sid"]: s for s in keys["logs"]}["AllowCloudWatchLogs"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == \
        "arn:aws:logs:us-east-1:123456789012:log-group:*"
    assert [s["Sid"] for s in keys["models"]] == ["EnableIamPolicies"]
    data_sids = {s["Sid"] for s in keys["data"]}
    assert {"AllowAutoScalingUse", "AllowAutoScalingGrants"} <= data_sids


# --- network ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stack", "azs", "nats"), [("dev", 2, 1), ("staging", 3, 1), ("prod", 3, 3)])
def test_subnets_spread_over_azs_and_nat_layout(stack_graph: Callable, stack: str, azs: int, nats: int) -> None:
    graph = stack_graph(stack)
    subnets = inputs(graph, "aws:ec2/subnet:Subnet")
    private = [s for s in subnets if s["tags"]["tier"] == "private"]
    public = [s for s in subnets if s["tags"]["tier"] == "public"]
    assert len(private) == len(public) == azs
    assert len({s["availabilityZone"] for s in private}) == azs
    assert all(s["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)
    assert all(s["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert not any(s["mapPublicIpOnLaunch"] for s in subnets)
    vpc = ipaddress.ip_network(graph.of_type("aws:ec2/vpc:Vpc")[0].inputs["cidrBlock"])
    nets = [ipaddress.ip_network(s["cidrBlock"]) for s in subnets]
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert len(graph.of_type("aws:ec2/natGateway:NatGateway")) == nats


def test_private_route_tables_send_egress_through_nat_in_their_own_az(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    by_id = {r.id: r for r in graph}
    tables = [r for r in graph.of_type("aws:ec2/routeTable:RouteTable") if "private" in r.name]
    assert len(tables) == 3
    for table in tables:
        (route,) = table.inputs["routes"]
        nat = by_id[route["natGatewayId"]]
        assert nat.name.rsplit("-", 1)[1] == table.name.rsplit("-", 1)[1]


def test_flow_logs_go_to_an_encrypted_log_group_with_retention(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    (flow,) = inputs(graph, "aws:ec2/flowLog:FlowLog")
    (group,) = [r for r in graph.of_type("aws:cloudwatch/logGroup:LogGroup") if r.name == "network-flow-logs"]
    logs_key = next(k for k in graph.of_type("aws:kms/key:Key") if k.name == "keys-logs")
    assert flow["trafficType"] == "ALL" and flow["logDestination"] == group.outputs["arn"]
    assert flow["vpcId"] == graph.of_type("aws:ec2/vpc:Vpc")[0].id
    assert group.inputs["kmsKeyId"] == logs_key.outputs["arn"]
    assert group.inputs["retentionInDays"] == 365


def test_interface_endpoints_are_private_and_guarded(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    endpoints = inputs(graph, "aws:ec2/vpcEndpoint:VpcEndpoint")
    interface = {e["serviceName"].removeprefix("com.amazonaws.us-east-1."): e for e in endpoints
                 if e["vpcEndpointType"] == "Interface"}
    required = {"sts", "ecr.api", "ecr.dkr", "logs", "monitoring", "kms", "ec2", "elasticloadbalancing",
                "autoscaling", "ssm", "secretsmanager", "sagemaker.api", "sagemaker.runtime"}
    assert required <= set(interface) and set(interface) == set(DEFAULT_INTERFACE_ENDPOINTS)
    private_ids = {r.id for r in graph.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == "private"}
    (sg,) = [r for r in graph.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "network-endpoints"]
    for name, endpoint in interface.items():
        assert endpoint["privateDnsEnabled"] is True, name
        assert set(endpoint["subnetIds"]) == private_ids, name
        assert endpoint["securityGroupIds"] == [sg.id], name
    (ingress,) = sg.inputs["ingress"]
    assert (ingress["fromPort"], ingress["toPort"], ingress["protocol"]) == (443, 443, "tcp")
    assert ingress["cidrBlocks"] == ["10.30.0.0/16"]
    assert sg.inputs.get("egress", []) == []
    (gateway,) = [e for e in endpoints if e["vpcEndpointType"] == "Gateway"]
    assert gateway["serviceName"] == "com.amazonaws.us-east-1.s3" and len(gateway["routeTableIds"]) == 3


def test_default_security_group_has_no_rules(stack_graph: Callable) -> None:
    (default,) = inputs(stack_graph("dev"), "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.get("ingress", []) == [] and default.get("egress", []) == []


# --- storage ---------------------------------------------------------------------------------------------------
def by_bucket(graph, type_token: str) -> dict[str, dict]:
    return {r.name.removeprefix("storage-"): dict(r.inputs) for r in graph.of_type(type_token)}


@pytest.mark.parametrize("stack", STACKS)
def test_buckets_are_private_versioned_kms_encrypted_and_tls_only(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    keys = {k.name.removeprefix("keys-"): k.outputs["arn"] for k in graph.of_type("aws:kms/key:Key")}
    buckets = {r.name.removeprefix("storage-"): r for r in graph.of_type("aws:s3/bucket:Bucket")}
    assert set(buckets) == {"datasets", "models", "logs"}
    sse = by_bucket(graph, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    pab = by_bucket(graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    versioning = by_bucket(graph, "aws:s3/bucketVersioning:BucketVersioning")
    policies = by_bucket(graph, "aws:s3/bucketPolicy:BucketPolicy")
    lifecycle = by_bucket(graph, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    expected_key = {"datasets": "data", "models": "models", "logs": "logs"}
    for role, bucket in buckets.items():
        assert bucket.inputs["bucket"] == f"aiinfra-{stack}-{role}-123456789012-us-east-1"
        assert bucket.inputs["forceDestroy"] is (stack == "dev")
        (rule,) = sse[role]["rules"]
        assert rule["bucketKeyEnabled"] is True
        assert rule["applyServerSideEncryptionByDefault"] == {
            "sseAlgorithm": "aws:kms", "kmsMasterKeyId": keys[expected_key[role]]}
        assert all(pab[role][flag] is True for flag in (
            "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
        assert versioning[role]["versioningConfiguration"] == {"status": "Enabled"}
        deny = {s["Sid"]: s for s in statements(policies[role]["policy"])}
        assert deny["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["DenyInsecureTransport"]["Effect"] == "Deny"
        assert bucket.outputs["arn"] in deny["DenyInsecureTransport"]["Resource"]
        rule_ids = {r["id"] for r in lifecycle[role]["rules"]}
        assert {"abort-incomplete-uploads", "expire-noncurrent-versions"} <= rule_ids
    logs_rules = {r["id"]: r for r in lifecycle["logs"]["rules"]}
    assert logs_rules["expire-logs"]["expiration"]["days"] == {"dev": 30, "staging": 90, "prod": 365}[stack]


@pytest.mark.parametrize("stack", STACKS)
def test_image_repositories_are_immutable_scanned_and_kms_encrypted(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    models_key = next(k.outputs["arn"] for k in graph.of_type("aws:kms/key:Key") if k.name == "keys-models")
    repos = {r.inputs["name"]: r.inputs for r in graph.of_type("aws:ecr/repository:Repository")}
    assert set(repos) == {f"aiinfra/{stack}/{name}" for name in ("training", "compilation", "serving")}
    for repo in repos.values():
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": models_key}]
    assert len(graph.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")) == 3


def test_every_aws_resource_gets_the_required_tags_from_the_one_tagging_provider(stack_graph: Callable) -> None:
    # The program's choice: one AWS provider whose default tags are the settings' tags, used by every AWS
    # resource, and no resource overriding a required tag itself (tagsAll is the mocks' merge, not checked).
    graph = stack_graph("staging")
    (provider,) = graph.of_type("pulumi:providers:aws")
    assert json.loads(provider.inputs["defaultTags"])["tags"] == {
        "environment": "staging", "owner": "ml-platform", "cost-center": "ml-platform", "managed-by": "pulumi",
        "project": "aiinfra"}
    aws_resources = [r for r in graph if r.custom and r.type.startswith("aws:")]
    assert len(aws_resources) > 40
    for record in aws_resources:
        assert record.provider.startswith(provider.urn + "::"), record.urn
        own = record.inputs.get("tags") or {}
        assert not {"environment", "owner", "cost-center", "managed-by"} & set(own), record.urn


def test_children_are_parented_to_their_component(stack_graph: Callable) -> None:
    graph = stack_graph("dev")
    index = graph.by_urn
    for record in graph:
        if record.custom and not record.is_provider:
            parent = index[record.parent]
            assert parent.type.startswith("aiinfra:"), record.urn
