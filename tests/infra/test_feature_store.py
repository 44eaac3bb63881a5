"""The Redis/Valkey feature store: encrypted both ways, token only in Secrets Manager, private, named peers only."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from compute_graph import one
from services_graph import REDIS, key_arn, only, peers, private_subnet_ids, record

from aiinfra.export import export_document

STACKS = ("dev", "staging", "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_encrypted_at_rest_with_the_data_key_and_in_transit_always(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    group = only(graph, REDIS).inputs
    assert group["atRestEncryptionEnabled"] is True
    assert group["kmsKeyId"] == key_arn(graph, "data")
    assert group["transitEncryptionEnabled"] is True and group["transitEncryptionMode"] == "required"


@pytest.mark.parametrize("stack", STACKS)
def test_auth_token_is_generated_secret_and_only_readable_through_secrets_manager(
        stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    group = only(graph, REDIS)
    password = one(graph, "random:index/randomPassword:RandomPassword", "feature-store-auth-token")
    assert group.inputs["authToken"] == "[secret]" and password.outputs["result"] == "[secret]"
    assert password.inputs["length"] >= 32
    assert password.urn in group.property_dependencies["authToken"]
    secret = one(graph, "aws:secretsmanager/secret:Secret", "feature-store-auth")
    assert secret.inputs["kmsKeyId"] == key_arn(graph, "data")
    version = one(graph, "aws:secretsmanager/secretVersion:SecretVersion", "feature-store-auth")
    assert version.inputs["secretString"] == "[secret]" and version.inputs["secretId"] == secret.id
    assert password.urn in version.property_dependencies["secretString"]
    assert graph.stack_outputs["featureStoreSecretArn"] == secret.outputs["arn"]
    # Neither the stack config nor any output carries the token in the clear.
    assert not any("authToken" in str(k) or "token" in str(k).lower() for k in graph.config)
    # Any output derived from the token would be a secret output: the program exports none.
    assert "[secret]" not in json.dumps(graph.stack_outputs)


def test_export_marks_the_token_secret_and_never_writes_it(stack_graph: Callable) -> None:
    document = export_document(stack_graph("prod"))
    resources = {r["urn"]: r for r in document["deployment"]["resources"]}
    group = next(r for r in resources.values() if r["type"] == REDIS)
    assert group["inputs"]["authToken"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    password = next(r for r in resources.values() if r["type"] == "random:index/randomPassword:RandomPassword"
                    and r["urn"].endswith("::feature-store-auth-token"))
    plain = one(stack_graph("prod"), "random:index/randomPassword:RandomPassword", "feature-store-auth-token")
    assert plain.outputs["result"] == "[secret]"
    # The mock's generated token starts with "MockPassword"; it must appear nowhere in the export.
    assert json.dumps(document).count("MockPassword") == 0
    assert password["outputs"]["result"]["ciphertext"]


@pytest.mark.parametrize(("stack", "nodes", "ha", "snapshots"),
                         [("dev", 1, False, 0), ("staging", 2, True, 1), ("prod", 3, True, 7)])
def test_availability_and_snapshots_follow_the_environment(stack_graph: Callable, stack: str, nodes: int, ha: bool,
                                                          snapshots: int) -> None:
    graph = stack_graph(stack)
    group = only(graph, REDIS).inputs
    assert group["numCacheClusters"] == nodes
    assert group["automaticFailoverEnabled"] is ha and group["multiAzEnabled"] is ha
    assert group["snapshotRetentionLimit"] == snapshots
    assert ("finalSnapshotIdentifier" in group) is (snapshots > 0)
    zones = group["preferredCacheClusterAzs"]
    assert len(zones) == nodes and len(set(zones)) == nodes  # each node in its own AZ


@pytest.mark.parametrize("stack", STACKS)
def test_private_subnets_and_a_feature_store_parameter_group(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    group = only(graph, REDIS).inputs
    subnets = record(graph, "aws:elasticache/subnetGroup:SubnetGroup", "feature-store-subnets").inputs
    assert sorted(subnets["subnetIds"]) == private_subnet_ids(graph) and group["subnetGroupName"] == subnets["name"]
    params = record(graph, "aws:elasticache/parameterGroup:ParameterGroup", "feature-store-params").inputs
    assert group["parameterGroupName"] == params["name"]
    assert (group["engine"], params["family"]) == ("valkey", "valkey7")
    values = {p["name"]: p["value"] for p in params["parameters"]}
    assert values["maxmemory-policy"] == "volatile-lru" and values["timeout"] == "300"
    slow_log = group["logDeliveryConfigurations"][0]
    log_group = record(graph, "aws:cloudwatch/logGroup:LogGroup", "feature-store-slow-log").inputs
    assert slow_log["destination"] == log_group["name"] and log_group["kmsKeyId"] == key_arn(graph, "logs")


def test_redis_engine_picks_its_own_parameter_family(synth_with: Callable) -> None:
    graph = synth_with({"aiinfra:featureStore": {"engine": "redis", "engineVersion": "7.1"}})
    group = only(graph, REDIS).inputs
    params = record(graph, "aws:elasticache/parameterGroup:ParameterGroup", "feature-store-params").inputs
    assert (group["engine"], group["engineVersion"], params["family"]) == ("redis", "7.1", "redis7")


@pytest.mark.parametrize("stack", STACKS)
def test_only_eks_nodes_and_endpoints_reach_redis_and_only_on_its_port(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    group = record(graph, "aws:ec2/securityGroup:SecurityGroup", "feature-store-redis")
    assert only(graph, REDIS).inputs["securityGroupIds"] == [group.id]
    ways_in = peers(graph, group.id)
    expected = {graph.stack_outputs["nodeSecurityGroupId"], graph.stack_outputs["servingSecurityGroupId"]}
    assert {w.get("referencedSecurityGroupId") for w in ways_in} == expected and len(ways_in) == 2
    for way in ways_in:
        assert (way["ipProtocol"], way["fromPort"], way["toPort"]) == ("tcp", 6379, 6379)
        assert not way.get("cidrIpv4") and not way.get("cidrIpv6") and not way.get("prefixListId")
    assert group.inputs["egress"] == []
    assert graph.stack_outputs["featureStoreEndpoint"] == only(graph, REDIS).outputs["primaryEndpointAddress"]


@pytest.mark.parametrize(("overrides", "base", "expected"), [
    ({"replicas": 0}, "staging",
     "aiinfra:featureStore.replicas = 0: staging needs Multi-AZ with automatic failover, which needs a replica; "
     "allowed: 1..5"),
    ({"replicas": 0}, "prod", "aiinfra:featureStore.replicas = 0: prod needs Multi-AZ"),
    ({"snapshotRetentionDays": 0}, "prod",
     "aiinfra:featureStore.snapshotRetentionDays = 0: prod keeps daily snapshots; allowed: 1..35"),
    ({"engineVersion": "7.1"}, "dev",
     "aiinfra:featureStore.engineVersion = '7.1': not a supported valkey version; allowed: 7.2, 8.0, 8.1"),
    ({"engine": "memcached"}, "dev", "aiinfra:featureStore.engine = 'memcached': allowed: redis, valkey"),
    ({"nodeType": "r7g.large"}, "dev",
     "aiinfra:featureStore.nodeType = 'r7g.large': not an ElastiCache node type; allowed: cache.*"),
    ({"maxmemoryPolicy": "allkeys-random"}, "dev", "aiinfra:featureStore.maxmemoryPolicy = 'allkeys-random': "
                                                   "allowed: volatile-lru, allkeys-lru, volatile-ttl, noeviction"),
    ({"authToken": "hunter2hunter2hunter2"}, "dev", "aiinfra:featureStore.authToken: unknown key"),
])
def test_bad_feature_store_settings_name_the_file_key_and_allowed_values(
        settings_error: Callable, overrides: dict, base: str, expected: str) -> None:
    message = settings_error({"aiinfra:featureStore": overrides}, base=base)
    assert f"Pulumi.{base}.yaml: " in message
    assert expected in message
