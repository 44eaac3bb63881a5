"""MSK as declared for each shipped stack: TLS and IAM only, the streaming key, named peers, scoped client policies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from services_graph import MSK, key_arn, only, peers, private_subnet_ids, record, statements

STACKS = ("dev", "staging", "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_encryption_is_tls_everywhere_and_at_rest_with_the_streaming_key(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    info = only(graph, MSK).inputs["encryptionInfo"]
    assert info["encryptionInTransit"] == {"clientBroker": "TLS", "inCluster": True}
    assert info["encryptionAtRestKmsKeyArn"] == key_arn(graph, "streaming")
    assert key_arn(graph, "streaming") != key_arn(graph, "data")


@pytest.mark.parametrize("stack", STACKS)
def test_clients_authenticate_with_iam_and_nothing_else(stack_graph: Callable, stack: str) -> None:
    auth = only(stack_graph(stack), MSK).inputs["clientAuthentication"]
    assert auth == {"sasl": {"iam": True}, "unauthenticated": False}


@pytest.mark.parametrize(("stack", "azs"), [("dev", 2), ("staging", 3), ("prod", 3)])
def test_brokers_are_a_multiple_of_the_azs_in_the_private_subnets(stack_graph: Callable, stack: str,
                                                                   azs: int) -> None:
    graph = stack_graph(stack)
    cluster = only(graph, MSK).inputs
    assert cluster["numberOfBrokerNodes"] % azs == 0 and cluster["numberOfBrokerNodes"] >= azs
    nodes = cluster["brokerNodeGroupInfo"]
    assert sorted(nodes["clientSubnets"]) == private_subnet_ids(graph) and len(nodes["clientSubnets"]) == azs
    assert nodes["securityGroups"] == [record(graph, "aws:ec2/securityGroup:SecurityGroup", "streaming-brokers").id]
    assert len(only(graph, MSK).outputs["bootstrapBrokersSaslIam"].split(",")) == cluster["numberOfBrokerNodes"]
    assert graph.stack_outputs["kafkaBootstrapBrokers"].endswith(":9098")


def test_brokers_per_az_multiplies_by_the_az_count(synth_with: Callable) -> None:
    graph = synth_with({"aiinfra:streaming": {"brokersPerAz": 2}})
    cluster = only(graph, MSK)
    assert cluster.inputs["numberOfBrokerNodes"] == 4
    # With 3+ brokers the configuration switches to replicated writes.
    properties = record(graph, "aws:msk/configuration:Configuration", "streaming-config").inputs["serverProperties"]
    assert "default.replication.factor=3\n" in properties and "min.insync.replicas=2\n" in properties
    disk_alarms = [a for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") if a.name.endswith("-disk")]
    assert sorted(a.inputs["dimensions"]["Broker ID"] for a in disk_alarms) == ["1", "2", "3", "4"]


@pytest.mark.parametrize(("stack", "replication", "insync"), [("dev", 2, 1), ("prod", 3, 2)])
def test_configuration_forbids_auto_created_topics_and_replicates_writes(
        stack_graph: Callable, stack: str, replication: int, insync: int) -> None:
    graph = stack_graph(stack)
    config = record(graph, "aws:msk/configuration:Configuration", "streaming-config")
    lines = dict(line.split("=", 1) for line in config.inputs["serverProperties"].splitlines())
    assert lines["auto.create.topics.enable"] == "false"
    assert lines["default.replication.factor"] == str(replication)
    assert lines["min.insync.replicas"] == str(insync)
    assert lines["unclean.leader.election.enable"] == "false"
    cluster = only(graph, MSK).inputs
    assert cluster["configurationInfo"] == {"arn": config.outputs["arn"], "revision": 1}
    assert config.inputs["kafkaVersions"] == [cluster["kafkaVersion"]]


@pytest.mark.parametrize("stack", STACKS)
def test_broker_logs_enhanced_monitoring_and_storage_autoscaling(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    cluster = only(graph, MSK)
    logs = cluster.inputs["loggingInfo"]["brokerLogs"]["cloudwatchLogs"]
    group = record(graph, "aws:cloudwatch/logGroup:LogGroup", "streaming-broker-logs").inputs
    assert logs == {"enabled": True, "logGroup": group["name"]}
    assert group["kmsKeyId"] == key_arn(graph, "logs")
    assert cluster.inputs["enhancedMonitoring"] != "DEFAULT"
    assert "openMonitoring" not in cluster.inputs  # exporter ports would open a way in besides 9098
    target = record(graph, "aws:appautoscaling/target:Target", "streaming-storage").inputs
    assert target["resourceId"] == cluster.outputs["arn"]
    assert target["scalableDimension"] == "kafka:broker-storage:VolumeSize"
    assert target["maxCapacity"] > cluster.inputs["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]["volumeSize"]
    tracking = record(graph, "aws:appautoscaling/policy:Policy", "streaming-storage").inputs
    config = tracking["targetTrackingScalingPolicyConfiguration"]
    assert config["predefinedMetricSpecification"] == {"predefinedMetricType": "KafkaBrokerStorageUtilization"}
    assert 10 <= config["targetValue"] <= 80 and config["disableScaleIn"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_only_eks_nodes_and_endpoints_reach_the_brokers_and_only_on_the_iam_port(
        stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    group = record(graph, "aws:ec2/securityGroup:SecurityGroup", "streaming-brokers")
    ways_in = peers(graph, group.id)
    expected = {graph.stack_outputs["nodeSecurityGroupId"], graph.stack_outputs["servingSecurityGroupId"]}
    assert {w.get("referencedSecurityGroupId") for w in ways_in} == expected
    for way in ways_in:
        assert (way["ipProtocol"], way["fromPort"], way["toPort"]) == ("tcp", 9098, 9098)
        assert not way.get("cidrIpv4") and not way.get("cidrIpv6") and not way.get("prefixListId")
    assert group.inputs["egress"] == []


def test_client_policies_name_the_cluster_and_its_topics_only(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    cluster_arn = only(graph, MSK).outputs["arn"]
    topic_base = cluster_arn.replace(":cluster/", ":topic/")
    topics = {f"{topic_base}/{t}" for t in ("features", "inference-requests", "inference-results", "user-activity",
                                            "user-activity-dead-letters")}
    producer = {s["Sid"]: s for s in statements(
        record(graph, "aws:iam/policy:Policy", "streaming-producer").inputs["policy"])}
    consumer = {s["Sid"]: s for s in statements(
        record(graph, "aws:iam/policy:Policy", "streaming-consumer").inputs["policy"])}
    assert producer["Connect"]["Resource"] == cluster_arn == consumer["Connect"]["Resource"]
    assert set(producer["WriteTopics"]["Resource"]) == topics
    assert set(consumer["ReadTopics"]["Resource"]) == topics
    assert "kafka-cluster:ReadData" not in producer["WriteTopics"]["Action"]
    assert "kafka-cluster:WriteData" not in consumer["ReadTopics"]["Action"]
    group_base = cluster_arn.replace(":cluster/", ":group/")
    assert consumer["ConsumerGroups"]["Resource"] == f"{group_base}/aiinfra-prod-*"
    every = [*producer.values(), *consumer.values()]
    assert all(s["Effect"] == "Allow" and "*" not in (s["Resource"] if isinstance(s["Resource"], list)
                                                     else [s["Resource"]]) for s in every)
    assert all(a.startswith("kafka-cluster:") and "*" not in a for s in every for a in s["Action"])
    assert graph.stack_outputs["kafkaProducerPolicyArn"].endswith(":policy/aiinfra-prod-kafka-producer")


@pytest.mark.parametrize(("overrides", "base", "expected"), [
    ({"kafkaVersion": "latest"}, "dev",
     "aiinfra:streaming.kafkaVersion = 'latest': not an MSK Kafka version; allowed: e.g. 3.6.0, 3.7.x"),
    ({"brokerInstanceType": "express.m7g.large"}, "dev",
     "aiinfra:streaming.brokerInstanceType = 'express.m7g.large': needs a standard broker"),
    ({"volumeSizeGb": 500, "maxVolumeSizeGb": 500}, "dev",
     "aiinfra:streaming.maxVolumeSizeGb = 500: must exceed volumeSizeGb (500) so storage can grow"),
    ({"topics": ["features", "bad topic"]}, "dev",
     "aiinfra:streaming.topics[1] = 'bad topic': not a Kafka topic name"),
    ({"topics": ["features", "features"]}, "dev", "aiinfra:streaming.topics = [\"features\", \"features\"]: "
                                                  "lists a topic twice"),
    ({"topics": []}, "dev", "aiinfra:streaming.topics = []: out of range; allowed: at least 1 entries"),
    ({"brokerInstanceType": "kafka.t3.small"}, "prod",
     "aiinfra:streaming.brokerInstanceType = 'kafka.t3.small': burstable brokers run out of CPU credits"),
    ({"storageTargetUtilization": 90}, "dev",
     "aiinfra:streaming.storageTargetUtilization = 90: out of range; allowed: 10..80"),
    ({"enhancedMonitoring": "DEFAULT"}, "dev",
     "aiinfra:streaming.enhancedMonitoring = 'DEFAULT': allowed: PER_BROKER, PER_TOPIC_PER_BROKER"),
])
def test_bad_streaming_settings_name_the_file_key_and_allowed_values(
        settings_error: Callable, overrides: dict, base: str, expected: str) -> None:
    message = settings_error({"aiinfra:streaming": overrides}, base=base)
    assert message.startswith(f"Pulumi.{base}.yaml: ") or f"/Pulumi.{base}.yaml: " in message
    assert expected in message
