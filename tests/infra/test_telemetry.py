"""Telemetry and the serving autoscaler as rendered: metrics-server and the CloudWatch Observability add-on,
the scrape of the model servers (port and path from contracts), the access-log metric filters, KEDA and the
ScaledObject, the roles they run with, and that every EKS alarm watches a metric this telemetry produces."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from compute_graph import one, policy, role_by_arn, statements_of
from services_graph import ALARM

from components.settings import TelemetrySettings
from contracts import ports, telemetry

STACKS = ("dev", "staging", "prod")
ADDON = "aws:eks/addon:Addon"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
HELM = "kubernetes:helm.sh/v3:Release"
# What Container Insights publishes with enhanced observability and accelerated compute metrics on, in the
# ContainerInsights namespace (the agent's own metric declarations, amazon-cloudwatch-agent
# translator/translate/otel/exporter/awsemf/kubernetes.go): the names the alarms and dashboard may use.
CONTAINER_INSIGHTS_ENHANCED = {"pod_status_pending", "node_status_condition_ready", "cluster_node_count",
                               "cluster_failed_node_count"}
CONTAINER_INSIGHTS_ACCELERATED = {"node_neuroncore_utilization", "node_gpu_utilization", "node_neuroncore_limit",
                                  "node_gpu_limit", "node_neuroncore_reserved_capacity",
                                  "node_gpu_reserved_capacity"}


def addon(graph: Any, name: str) -> Any:
    [found] = [a for a in graph.of_type(ADDON) if a.inputs["addonName"] == name]
    return found


def observability_config(graph: Any) -> dict[str, Any]:
    return json.loads(addon(graph, "amazon-cloudwatch-observability").inputs["configurationValues"])


def produced_metrics(graph: Any) -> set[tuple[str, str]]:
    """(namespace, metric) pairs the rendered telemetry produces, read from the rendered resources only."""
    config = observability_config(graph)
    collected = config["agent"]["config"]["logs"]["metrics_collected"]
    produced: set[tuple[str, str]] = set()
    kubernetes = collected["kubernetes"]
    if kubernetes.get("enhanced_container_insights"):
        produced |= {("ContainerInsights", m) for m in CONTAINER_INSIGHTS_ENHANCED}
        if kubernetes.get("accelerated_compute_metrics"):
            produced |= {("ContainerInsights", m) for m in CONTAINER_INSIGHTS_ACCELERATED}
    emf = collected["prometheus"]["emf_processor"]
    kept = config["agent"]["prometheus"]["config"]["scrape_configs"][0]["metric_relabel_configs"][0]["regex"]
    for declaration in emf["metric_declaration"]:
        for selector in declaration["metric_selectors"]:
            name = selector.strip("^$")
            if name in kept.split("|"):
                produced.add((emf["metric_namespace"], name))
    for f in graph.of_type(FILTER):
        produced.add((f.inputs["metricTransformation"]["namespace"], f.inputs["metricTransformation"]["name"]))
    return produced


def watched(alarm: Any) -> Iterator[tuple[str, str]]:
    inputs = alarm.inputs
    if "metricName" in inputs:
        yield inputs["namespace"], inputs["metricName"]
    for query in inputs.get("metricQueries", []):
        if "metric" in query:
            yield query["metric"]["namespace"], query["metric"]["metricName"]


def eks_alarms(graph: Any) -> dict[str, Any]:
    return {a.inputs["name"]: a for a in graph.of_type(ALARM) if "-eks-" in a.inputs["name"]}


@pytest.mark.parametrize("stack", STACKS)
def test_every_eks_alarm_watches_a_metric_the_telemetry_produces(stack_graph: Callable, stack: str) -> None:
    graph = stack_graph(stack)
    produced = produced_metrics(graph)
    alarms = eks_alarms(graph)
    assert len(alarms) >= 8
    for name, alarm in alarms.items():
        metrics = set(watched(alarm))
        assert metrics and metrics <= produced, (name, metrics - produced)


def test_a_metric_nothing_produces_is_caught(stack_graph: Callable) -> None:
    produced = produced_metrics(stack_graph("prod"))
    assert ("ContainerInsights", "node_neuron_utilization") not in produced  # a misspelling
    assert ("ContainerInsights/Prometheus", "serving_request_latency_seconds") not in produced  # a histogram


@pytest.mark.parametrize("stack", STACKS)
def test_metrics_server_and_the_observability_addon_are_pinned_after_the_nodes(stack_graph: Callable,
                                                                               stack: str) -> None:
    graph = stack_graph(stack)
    defaults = TelemetrySettings()
    server, observability = addon(graph, "metrics-server"), addon(graph, "amazon-cloudwatch-observability")
    assert server.inputs["addonVersion"] == defaults.metrics_server_version
    assert observability.inputs["addonVersion"] == defaults.cloudwatch_observability_version
    groups = {g.urn for g in graph.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert groups <= set(server.dependencies) and groups <= set(observability.dependencies)
    kubernetes = observability_config(graph)["agent"]["config"]["logs"]["metrics_collected"]["kubernetes"]
    assert kubernetes == {"cluster_name": f"aiinfra-{stack}-eks", "enhanced_container_insights": True,
                          "accelerated_compute_metrics": True}
    assert observability_config(graph)["containerLogs"] == {"enabled": True}


def test_addon_versions_come_from_settings(synth_with: Callable) -> None:
    graph = synth_with({"aiinfra:telemetry": {"metricsServerVersion": "v0.7.2-eksbuild.1",
                                              "cloudwatchObservabilityVersion": "v4.1.0-eksbuild.1",
                                              "kedaVersion": "2.17.2"}})
    assert addon(graph, "metrics-server").inputs["addonVersion"] == "v0.7.2-eksbuild.1"
    assert addon(graph, "amazon-cloudwatch-observability").inputs["addonVersion"] == "v4.1.0-eksbuild.1"
    assert one(graph, HELM, "telemetry-keda").inputs["version"] == "2.17.2"


def test_the_scrape_names_the_servers_port_path_namespace_and_labels(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    scrape = observability_config(graph)["agent"]["prometheus"]["config"]
    assert scrape["global"] == {"scrape_interval": f"{TelemetrySettings().scrape_interval_seconds}s",
                                "scrape_timeout": "5s"}
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == telemetry.METRICS_PATH
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["serving"]}}]
    rules = job["relabel_configs"]
    keep = {r["source_labels"][0]: r["regex"] for r in rules if r["action"] == "keep"}
    assert keep["__meta_kubernetes_pod_container_port_number"] == str(ports.MODEL_SERVER)
    deployment = one(graph, "kubernetes:apps/v1:Deployment", "workloads-serving").inputs["spec"]["template"]
    labels = deployment["metadata"]["labels"]
    assert {k: v for k, v in keep.items() if k.startswith("__meta_kubernetes_pod_label_")} == {
        "__meta_kubernetes_pod_label_" + k.replace(".", "_").replace("/", "_").replace("-", "_"): v
        for k, v in labels.items()}
    assert [p["containerPort"] for p in deployment["spec"]["containers"][0]["ports"]] == [ports.MODEL_SERVER]
    assert set(job["metric_relabel_configs"][0]["regex"].split("|")) == set(telemetry.SCRAPED_GAUGES)
    # The gauges' dimensions: ClusterName (added by the agent) and what the relabelling writes.
    targets = {r["target_label"] for r in rules if r["action"] == "replace"}
    emf = observability_config(graph)["agent"]["config"]["logs"]["metrics_collected"]["prometheus"]
    [declaration] = emf["emf_processor"]["metric_declaration"]
    assert declaration["dimensions"] == [["ClusterName", "Namespace", "Service"]]
    assert {"Namespace", "Service"} <= targets
    assert emf["log_group_name"] == "/aws/containerinsights/aiinfra-prod-eks/prometheus"


def test_the_serving_namespace_stays_closed_to_everything_but_labelled_clients(stack_graph: Callable) -> None:
    # The scrape reaches each server from its own node (always admitted by NetworkPolicy); no ingress rule
    # opens the serving port to an address block, which would admit every pod as well.
    graph = stack_graph("prod")
    for record in graph.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        if record.inputs["metadata"].get("namespace") != "serving":
            continue
        for rule in record.inputs["spec"].get("ingress", []):
            assert all("ipBlock" not in peer for peer in rule.get("from", [])), record.name


@pytest.mark.parametrize(("stack", "days"), [("dev", 30), ("staging", 90), ("prod", 365)])
def test_container_insights_log_groups_are_encrypted_and_retained(stack_graph: Callable, stack: str,
                                                                  days: int) -> None:
    graph = stack_graph(stack)
    prefix = f"/aws/containerinsights/aiinfra-{stack}-eks/"
    groups = {g.inputs["name"].removeprefix(prefix): g.inputs for g in graph.of_type("aws:cloudwatch/logGroup:LogGroup")
              if g.inputs["name"].startswith(prefix)}
    assert set(groups) == {"application", "dataplane", "host", "performance", "prometheus"}
    logs_key = graph.stack_outputs["logsKeyArn"]
    assert all(g["kmsKeyId"] == logs_key and g["retentionInDays"] == days for g in groups.values())
    observability = addon(graph, "amazon-cloudwatch-observability")
    assert {g.urn for g in graph.of_type("aws:cloudwatch/logGroup:LogGroup")
            if g.inputs["name"].startswith(prefix)} <= set(observability.dependencies)


def test_the_agent_role_writes_only_its_clusters_logs_and_its_namespaces(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    observability = addon(graph, "amazon-cloudwatch-observability")
    role = role_by_arn(graph, observability.inputs["serviceAccountRoleArn"])
    [trust] = policy(role.inputs["assumeRolePolicy"])["Statement"]
    condition = next(iter(trust["Condition"]["StringEquals"].items()))
    assert condition[1] == "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent"
    statements = {s["Sid"]: s for s in statements_of(graph, role)}
    assert set(statements) == {"ContainerInsightsLogs", "OwnMetricNamespaces", "DescribeNodes"}
    prefix = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/containerinsights/aiinfra-prod-eks/*"
    assert statements["ContainerInsightsLogs"]["Resource"] == [prefix, prefix + ":log-stream:*"]
    assert "logs:CreateLogGroup" not in statements["ContainerInsightsLogs"]["Action"]
    assert statements["OwnMetricNamespaces"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": ["ContainerInsights", "ContainerInsights/Prometheus"]}}


def test_access_log_filters_cut_latency_and_errors_from_model_requests(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    filters = {f.inputs["metricTransformation"]["name"]: f.inputs for f in graph.of_type(FILTER)}
    assert set(filters) == {"model_request_latency", "model_requests", "model_request_5xx"}
    application = "/aws/containerinsights/aiinfra-prod-eks/application"
    for f in filters.values():
        assert f["logGroupName"] == application
        assert '($.kubernetes.namespace_name = "serving")' in f["pattern"]
        assert f'($.log_processed.{telemetry.ACCESS_EVENT_KEY} = "{telemetry.ACCESS_EVENT}")' in f["pattern"]
        assert f'($.log_processed.{telemetry.ACCESS_PATH_KEY} = "{telemetry.MODEL_ROUTE_PREFIX}*")' in f["pattern"]
        assert f["metricTransformation"]["namespace"] == "aiinfra/eks/aiinfra-prod-eks"
        assert f["metricTransformation"]["dimensions"] == {"Namespace": "$.kubernetes.namespace_name"}
    latency = filters["model_request_latency"]["metricTransformation"]
    assert (latency["value"], latency["unit"]) == (f"$.log_processed.{telemetry.ACCESS_DURATION_MS_KEY}",
                                                   "Milliseconds")
    assert f"($.log_processed.{telemetry.ACCESS_STATUS_KEY} >= 500)" in filters["model_request_5xx"]["pattern"]
    assert "500" not in filters["model_requests"]["pattern"]


def test_keda_is_pinned_and_reads_metrics_only(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    keda = one(graph, HELM, "telemetry-keda").inputs
    assert (keda["chart"], keda["version"], keda["namespace"]) == ("keda", TelemetrySettings().keda_version, "keda")
    assert keda["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    irsa = keda["values"]["podIdentity"]["aws"]["irsa"]
    assert irsa["enabled"] is True
    role = role_by_arn(graph, irsa["roleArn"])
    [trust] = policy(role.inputs["assumeRolePolicy"])["Statement"]
    assert "system:serviceaccount:keda:keda-operator" in trust["Condition"]["StringEquals"].values()
    assert [(s["Action"], s["Resource"]) for s in statements_of(graph, role)] == [("cloudwatch:GetMetricData", "*")]


@pytest.mark.parametrize(("stack", "bounds"), [("dev", (1, 2)), ("staging", (2, 4)), ("prod", (3, 6))])
def test_serving_scales_on_its_queue_depth_with_cpu_as_the_fallback(stack_graph: Callable, stack: str,
                                                                    bounds: tuple[int, int]) -> None:
    graph = stack_graph(stack)
    assert graph.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler") == []
    scaled = one(graph, SCALED_OBJECT)
    spec = scaled.inputs["spec"]
    assert scaled.inputs["metadata"]["namespace"] == "serving"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == bounds
    assert set(spec) == {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod",
                         "triggers"}  # fields of KEDA's v1alpha1 ScaledObject
    queue, cpu = spec["triggers"]
    meta = queue["metadata"]
    assert (queue["type"], queue["metricType"], queue["authenticationRef"]) == (
        "aws-cloudwatch", "Value", {"name": "cloudwatch"})
    assert (meta["namespace"], meta["metricName"]) in produced_metrics(graph)
    assert meta["metricName"] == telemetry.QUEUE_DEPTH
    assert dict(zip(meta["dimensionName"].split(";"), meta["dimensionValue"].split(";"))) == {
        "ClusterName": f"aiinfra-{stack}-eks", "Namespace": "serving", "Service": "model-server"}
    assert (meta["metricStat"], meta["targetMetricValue"], meta["awsRegion"]) == ("Average", "8", "us-east-1")
    assert int(meta["metricCollectionTime"]) % int(meta["metricStatPeriod"]) == 0  # KEDA refuses it otherwise
    assert cpu["type"] == "cpu" and cpu["metricType"] == "Utilization"
    auth = one(graph, TRIGGER_AUTH)
    assert auth.inputs["metadata"] == {"name": "cloudwatch", "namespace": "serving"}
    assert auth.inputs["spec"] == {"podIdentity": {"provider": "aws"}}
    keda = one(graph, HELM, "telemetry-keda")
    assert keda.urn in scaled.dependencies and keda.urn in auth.dependencies


def test_queue_depth_target_comes_from_settings(synth_with: Callable) -> None:
    graph = synth_with({"aiinfra:workloads": {"serving": {"targetQueueDepth": 32, "targetCpuUtilization": 50}}})
    queue, cpu = one(graph, SCALED_OBJECT).inputs["spec"]["triggers"]
    assert queue["metadata"]["targetMetricValue"] == "32" and cpu["metadata"] == {"value": "50"}


def test_pending_alarms_name_the_workloads_that_take_accelerators(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    workloads = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
                 for r in graph.of_type("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job")
                 if r.inputs["metadata"]["namespace"] != "features"}  # the feature pipeline takes no accelerator
    pending = {(a.inputs["dimensions"]["Namespace"], a.inputs["dimensions"]["PodName"])
               for a in eks_alarms(graph).values() if a.inputs.get("metricName") == "pod_status_pending"}
    assert pending == workloads == {("training", "trainer"), ("training", "compiler"), ("serving", "model-server")}


def test_the_cluster_dashboard_has_the_four_on_call_views(stack_graph: Callable) -> None:
    graph = stack_graph("prod")
    [dashboard] = [d for d in graph.of_type("aws:cloudwatch/dashboard:Dashboard")
                   if d.inputs["dashboardName"] == "aiinfra-prod-eks"]
    assert graph.stack_outputs["clusterDashboardName"] == "aiinfra-prod-eks"
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    headers = [w["properties"]["markdown"] for w in widgets if w["type"] == "text"]
    assert [h.split(":")[0] for h in headers] == ["## Overview", "## Latency of model requests (ms)", "## Errors",
                                                  "## Capacity"]
    graphs = {w["properties"]["title"]: w["properties"] for w in widgets if w["type"] == "metric"}
    latency = graphs["p50 / p95 / p99"]["metrics"]
    assert [m[-1]["stat"] for m in latency] == ["p50", "p95", "p99"]
    produced = produced_metrics(graph)
    for title, props in graphs.items():
        for series in props["metrics"]:
            if isinstance(series[0], str):
                assert (series[0], series[1]) in produced, (title, series[:2])
    capacity = " ".join(graphs)
    assert "Pending accelerator pods" in capacity and "Nodes by accelerator" in capacity
    assert "Accelerator utilization" in capacity
    alarm_widget = next(w for w in widgets if w["type"] == "alarm")
    assert set(alarm_widget["properties"]["alarms"]) == {a.outputs["arn"] for a in eks_alarms(graph).values()}


def test_an_unpinned_version_is_refused_in_one_line(settings_error: Callable) -> None:
    message = settings_error({"aiinfra:telemetry": {"kedaVersion": "latest"}})
    assert "\n" not in message
    assert message.endswith("aiinfra:telemetry.kedaVersion = 'latest': pin an exact version "
                            "(like v0.8.0-eksbuild.1 or 2.17.2)")
