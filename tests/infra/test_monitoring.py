"""Alarms, their topic and the dashboard; and that prod differs from dev in these services only through settings."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from services_graph import ALARM, MSK, REDIS, alarm_dimensions, key_arn, only, statements

from aiinfra.stackfile import load_stack_config
from contracts.config import camel
from components.settings import parse_settings

STACKS = ("dev", "staging", "prod")
ROOT = Path(__file__).resolve().parents[2]
SERVICE_COMPONENTS = ("aiinfra:streaming:", "aiinfra:feature_store:", "aiinfra:inference:", "aiinfra:monitoring:")


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_notifies_the_encrypted_topic(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    topic = only(graph, "aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"] == key_arn(graph, "monitoring")
    alarms = graph.of_type(ALARM)
    assert alarms
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic.outputs["arn"]], alarm.name
        assert alarm.inputs["okActions"] == [topic.outputs["arn"]], alarm.name
        assert alarm.inputs["actionsEnabled"] is True
    policy = {s["Sid"]: s for s in statements(only(graph, "aws:sns/topicPolicy:TopicPolicy").inputs["policy"])}
    publish = policy["CloudWatchAlarmsPublish"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert policy["DenyInsecureTransport"]["Effect"] == "Deny"


@pytest.mark.parametrize(("stack", "subscribers"), [("dev", 1), ("staging", 1), ("prod", 2)])
def test_subscriptions_come_from_settings(stack_graph: Callable, stack: str, subscribers: int) -> None:
    graph = stack_graph(stack)
    subs = graph.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert len(subs) == subscribers
    assert all(s.inputs["topic"] == only(graph, "aws:sns/topic:Topic").outputs["arn"] for s in subs)
    assert any(s.inputs["protocol"] == "email" and s.inputs["endpoint"].endswith("@example.com") for s in subs)


@pytest.mark.parametrize(("stack", "brokers", "redis", "accelerators"), [
    ("dev", 2, 3, ("neuron", "nvidia")), ("staging", 3, 4, ("neuron",)), ("prod", 3, 4, ("neuron",))])
def test_alarm_set_per_endpoint_broker_cache_and_cluster(stack_graph: Callable, stack: str, brokers: int,
                                                         redis: int, accelerators: tuple[str, ...]) -> None:
    graph = stack_graph(stack)
    names = {a.inputs["name"].removeprefix(f"aiinfra-{stack}-") for a in graph.of_type(ALARM)}
    endpoints = {e.inputs["name"].removeprefix(f"aiinfra-{stack}-") for e in
                 graph.of_type("aws:sagemaker/endpoint:Endpoint")}
    expected = {f"{e}-{kind}" for e in endpoints for kind in ("latency-p99", "5xx-rate", "4xx-spike",
                                                              "no-invocations")}
    expected |= {"kafka-active-controller", "kafka-offline-partitions"}
    expected |= {f"kafka-broker-{b}-{kind}" for b in range(1, brokers + 1) for kind in ("disk", "under-replicated")}
    expected |= {"redis-engine-cpu", "redis-memory", "redis-evictions"} | (
        {"redis-replication-lag"} if redis == 4 else set())
    expected |= {"eks-training-trainer-pending", "eks-training-compiler-pending", "eks-serving-model-server-pending",
                 "eks-nodes-not-ready", "eks-serving-latency-p99", "eks-serving-5xx-rate"}
    expected |= {f"eks-{kind}-{state}" for kind in accelerators for state in ("idle", "saturated")}
    expected |= {"user-activity-consumer-lag"}  # the feature pipeline's, on its materializer's consumer group
    assert names == expected


def test_endpoint_alarm_thresholds_follow_settings(stack_graph: Callable) -> None:
    alarms = {a.inputs["name"]: a.inputs for a in stack_graph("prod").of_type(ALARM)}
    latency = alarms["aiinfra-prod-text-classifier-latency-p99"]
    assert (latency["metricName"], latency["extendedStatistic"]) == ("ModelLatency", "p99")
    assert latency["threshold"] == 200 * 1000  # 200 ms SLA; ModelLatency is in microseconds
    assert alarms["aiinfra-prod-text-embedder-latency-p99"]["threshold"] == 100 * 1000
    errors = alarms["aiinfra-prod-text-classifier-5xx-rate"]
    assert errors["threshold"] == 0.1 and errors["comparisonOperator"] == "GreaterThanThreshold"
    queries = {q["id"]: q for q in errors["metricQueries"]}
    assert queries["errors"]["metric"]["metricName"] == "Invocation5XXErrors"
    assert queries["invocations"]["metric"]["metricName"] == "Invocations"
    assert queries["rate"]["expression"] == "IF(invocations > 0, 100 * errors / invocations, 0)"
    assert [q["id"] for q in errors["metricQueries"] if q["returnData"]] == ["rate"]
    spike = alarms["aiinfra-prod-text-classifier-4xx-spike"]
    assert spike["threshold"] == 5 and {q["id"]: q for q in spike["metricQueries"]}["errors"]["metric"][
        "metricName"] == "Invocation4XXErrors"
    idle = alarms["aiinfra-prod-text-classifier-no-invocations"]
    assert (idle["comparisonOperator"], idle["threshold"], idle["treatMissingData"]) == (
        "LessThanThreshold", 1, "breaching")


@pytest.mark.parametrize("stack", STACKS)
def test_kafka_and_redis_alarms_watch_this_stacks_cluster_and_nodes(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    cluster = only(graph, MSK).inputs["clusterName"]
    group = only(graph, REDIS).inputs
    members = {f"{group['replicationGroupId']}-{i:03d}" for i in range(1, int(group["numCacheClusters"]) + 1)}
    for alarm in graph.of_type(ALARM):
        dims = list(alarm_dimensions(alarm.inputs))
        assert dims, alarm.name
        if "-kafka-" in alarm.name:
            assert all(d["Cluster Name"] == cluster for d in dims), alarm.name
        elif "-redis-" in alarm.name:
            assert {d["CacheClusterId"] for d in dims} == members, alarm.name
    disk = [a.inputs for a in graph.of_type(ALARM) if a.name.endswith("-disk")]
    assert {a["threshold"] for a in disk} == {80} and {a["metricName"] for a in disk} == {"KafkaDataLogsDiskUsed"}
    controller = next(a.inputs for a in graph.of_type(ALARM) if a.name.endswith("kafka-active-controller"))
    assert {q["id"]: q for q in controller["metricQueries"]}["off_by"]["expression"] == "ABS(controllers - 1)"
    assert controller["treatMissingData"] == "breaching"


def test_one_dashboard_with_every_endpoint_and_every_alarm(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    [dashboard] = [d for d in graph.of_type("aws:cloudwatch/dashboard:Dashboard")
                   if d.inputs["dashboardName"] == "aiinfra-prod-platform"]
    assert graph.stack_outputs["dashboardName"] == "aiinfra-prod-platform"
    body = json.loads(dashboard.inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert any(t.startswith("text-classifier:") for t in titles) and any(t.startswith("text-embedder:") for t in titles)
    assert any(t.startswith("MSK:") for t in titles) and any(t.startswith("Redis:") for t in titles)
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    # The feature pipeline's consumer-lag alarm is declared after monitoring (it notifies monitoring's topic), so
    # the dashboard lists the alarms monitoring declares.
    index = graph.by_urn
    own = {a.outputs["arn"] for a in graph.of_type(ALARM) if index[a.parent].type == "aiinfra:monitoring:Monitoring"
           and "-eks-" not in a.inputs["name"]}  # the EKS alarms are on the cluster dashboard
    assert own and set(alarm_widget["properties"]["alarms"]) == own


@pytest.mark.parametrize(("overrides", "base", "expected"), [
    ({"subscriptions": []}, "prod",
     "aiinfra:monitoring.subscriptions = []: prod alarms must reach someone; add at least one"),
    ({"subscriptions": [{"protocol": "email", "endpoint": "not-an-address"}]}, "dev",
     "aiinfra:monitoring.subscriptions[0].endpoint = 'not-an-address': not a valid email endpoint"),
    ({"subscriptions": [{"protocol": "https", "endpoint": "http://hooks.example.com/x"}]}, "dev",
     "aiinfra:monitoring.subscriptions[0].endpoint = 'http://hooks.example.com/x': not a valid https endpoint"),
    ({"subscriptions": [{"protocol": "sms", "endpoint": "+15550100"}]}, "dev",
     "aiinfra:monitoring.subscriptions[0].protocol = 'sms': allowed: email, https, sqs, lambda"),
    ({"kafkaDiskUsedPercent": 120}, "dev",
     "aiinfra:monitoring.kafkaDiskUsedPercent = 120.0: out of range; allowed: 1..100"),
    ({"redisEvictions": -1}, "dev", "aiinfra:monitoring.redisEvictions = -1: out of range; allowed: at least 0"),
])
def test_bad_monitoring_settings_name_the_file_key_and_allowed_values(
        settings_error: Callable, overrides: dict, base: str, expected: str) -> None:
    message = settings_error({"aiinfra:monitoring": overrides}, base=base)
    assert f"Pulumi.{base}.yaml: " in message
    assert expected in message


# --- prod differs from dev exactly where settings say ------------------------------------------------------------
def service_inputs(graph: Any) -> dict[str, str]:
    """Inputs of every resource in the four service components (the EKS alarms aside), by logical name, with the
    stack name neutralised."""
    index = graph.by_urn
    found: dict[str, str] = {}
    for record in graph:
        parent = index.get(record.parent)
        if not record.custom or parent is None or not parent.type.startswith(SERVICE_COMPONENTS):
            continue
        if "-eks-" in record.name or "cluster-dashboard" in record.name:
            continue  # the cluster's alarms follow its node pools (compute settings): test_telemetry covers them
        text = json.dumps(record.inputs, sort_keys=True)
        # Setting values may name a stack themselves (a prod webhook URL), so both names are neutralised.
        found[f"{record.type}::{record.name}"] = re.sub(r"\b(dev|prod)\b", "STACK", text)
    return found


def as_config(value: Any) -> Any:
    """A resolved settings value written back as stack config: camelCase keys, lists, plain mappings."""
    if dataclasses.is_dataclass(value):
        return {camel(f.name): as_config(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [as_config(v) for v in value]
    if isinstance(value, Mapping):
        return {k: as_config(v) for k, v in value.items()}
    return value


def test_dev_given_prods_service_settings_declares_exactly_prods_services(stack_graph: Callable,
                                                                          synth_with: Callable) -> None:
    config = load_stack_config("prod", ROOT)
    prod_settings = parse_settings(config.values, project=config.project, stack=config.stack, source=config.source)
    # Every field of prod's resolved sections, prod's environment defaults included, written into dev's file.
    sections = ("network", "streaming", "feature_store", "endpoints", "monitoring")
    dev_as_prod = synth_with({f"aiinfra:{camel(key)}": as_config(getattr(prod_settings, key)) for key in sections})
    prod = service_inputs(stack_graph("prod"))
    same = service_inputs(dev_as_prod)
    assert sorted(same) == sorted(prod)
    differing = [name for name in prod if prod[name] != same[name]]
    assert differing == []
    # ...while the shipped dev stack, with its own settings, really is smaller and cheaper.
    dev = service_inputs(stack_graph("dev"))
    assert len(dev) < len(prod)


# --- EKS ------------------------------------------------------------------------------------------------------

def eks_alarms(graph: Any) -> dict[str, Mapping[str, Any]]:
    stack = graph.stack_outputs["environment"]
    return {a.inputs["name"].removeprefix(f"aiinfra-{stack}-eks-"): a.inputs for a in graph.of_type(ALARM)
            if "-eks-" in a.inputs["name"]}


@pytest.mark.parametrize(("stack", "pending", "p99", "errors", "idle_hours", "busy_periods"), [
    ("dev", 60, 2000, 5.0, 1, 6), ("staging", 30, 1000, 2.0, 3, 6), ("prod", 10, 250, 0.5, 3, 3)])
def test_eks_alarm_thresholds_follow_each_environments_defaults(stack_graph: Callable, stack: str, pending: int,
                                                                p99: float, errors: float, idle_hours: int,
                                                                busy_periods: int) -> None:
    alarms = eks_alarms(stack_graph(stack))
    waiting = alarms["serving-model-server-pending"]
    assert (waiting["metricName"], waiting["statistic"], waiting["threshold"]) == ("pod_status_pending", "Maximum", 0)
    assert waiting["period"] * waiting["evaluationPeriods"] == pending * 60
    assert waiting["datapointsToAlarm"] == waiting["evaluationPeriods"]  # pending the whole time, not once
    assert waiting["dimensions"] == {"ClusterName": f"aiinfra-{stack}-eks", "Namespace": "serving",
                                     "PodName": "model-server"}
    nodes = alarms["nodes-not-ready"]
    assert (nodes["metricName"], nodes["statistic"], nodes["comparisonOperator"], nodes["threshold"]) == (
        "node_status_condition_ready", "Minimum", "LessThanThreshold", 1)
    latency = alarms["serving-latency-p99"]
    assert (latency["extendedStatistic"], latency["threshold"]) == ("p99", p99)
    rate = alarms["serving-5xx-rate"]
    assert rate["threshold"] == errors
    assert {q["id"]: q for q in rate["metricQueries"]}["rate"]["expression"] == \
        "IF(requests > 0, 100 * errors / requests, 0)"
    idle, busy = alarms["neuron-idle"], alarms["neuron-saturated"]
    assert (idle["metricName"], idle["comparisonOperator"], idle["threshold"]) == (
        "node_neuroncore_utilization", "LessThanThreshold", 5)
    assert idle["period"] * idle["evaluationPeriods"] == idle_hours * 3600
    assert (busy["comparisonOperator"], busy["threshold"], busy["evaluationPeriods"]) == (
        "GreaterThanThreshold", 95, busy_periods)
    # No nodes, no data: a pool scaled to zero costs nothing and pages no one.
    assert all(a["treatMissingData"] == "notBreaching" for a in alarms.values())


def test_eks_thresholds_come_from_the_monitoring_settings(synth_with: Callable) -> None:
    alarms = eks_alarms(synth_with({"aiinfra:monitoring": {
        "pendingPodMinutes": 7, "servingLatencyP99Ms": 123, "acceleratorIdlePercent": 2,
        "acceleratorIdleHours": 4, "acceleratorSaturatedPercent": 90, "acceleratorSaturatedMinutes": 12}}))
    assert alarms["training-trainer-pending"]["evaluationPeriods"] == 7
    assert alarms["serving-latency-p99"]["threshold"] == 123
    assert (alarms["nvidia-idle"]["threshold"], alarms["nvidia-idle"]["evaluationPeriods"]) == (2, 4)
    assert (alarms["nvidia-saturated"]["threshold"], alarms["nvidia-saturated"]["evaluationPeriods"]) == (90, 3)


def test_accelerator_alarms_only_for_kinds_the_pools_carry(stack_graph: Callable) -> None:
    assert {n for n in eks_alarms(stack_graph("dev")) if n.endswith(("-idle", "-saturated"))} == {
        "neuron-idle", "neuron-saturated", "nvidia-idle", "nvidia-saturated"}
    assert not any(n.startswith("nvidia") for n in eks_alarms(stack_graph("prod")))


def test_idle_must_stay_below_saturated(settings_error: Callable) -> None:
    message = settings_error({"aiinfra:monitoring": {"acceleratorIdlePercent": 50, "acceleratorSaturatedPercent": 50}})
    assert "\n" not in message
    assert message.endswith("aiinfra:monitoring.acceleratorIdlePercent = 50.0: must be below "
                            "acceleratorSaturatedPercent (50)")
