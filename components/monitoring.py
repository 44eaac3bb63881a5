"""CloudWatch alarms for endpoints, MSK, Redis and the EKS cluster, an encrypted SNS topic they all notify, the
platform dashboard and the EKS on-call dashboard.

Monitoring is built before the endpoints: their blue/green rollout names these alarm objects for automatic
rollback, so the alarms must exist first. What it watches arrives as small typed descriptions
(`EndpointWatch`, `StreamingWatch`, `FeatureStoreWatch`); `inference.endpoint_watches` derives the endpoints'
from the same naming rule the endpoints are created with, so this module needs nothing from inference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.context import AccountContext
from components.iam import policy_document
from components.settings import EndpointAlarmSettings, MonitoringSettings, StackIdentity
from components.telemetry import (ACCELERATOR_LIMIT, ACCELERATOR_RESERVED, ACCELERATOR_UTILIZATION, CONTAINER_INSIGHTS,
                                  FAILED_NODES, NODE_COUNT, NODE_READY, POD_PENDING, REQUEST_ERRORS, REQUEST_LATENCY,
                                  REQUESTS, ServingMetrics)
from contracts.telemetry import QUEUE_DEPTH, READY

SAGEMAKER = "AWS/SageMaker"
KAFKA = "AWS/Kafka"
ELASTICACHE = "AWS/ElastiCache"


@dataclass(frozen=True)
class EndpointWatch:
    """One SageMaker endpoint to alarm on: its physical name, its variant and its thresholds."""

    endpoint_name: str
    variant: str
    alarms: EndpointAlarmSettings


@dataclass(frozen=True)
class StreamingWatch:
    """The MSK cluster to alarm on: its name and broker count (broker ids run 1..count)."""

    cluster_name: pulumi.Output[str]
    broker_count: int


@dataclass(frozen=True)
class FeatureStoreWatch:
    """The Redis replication group to alarm on: its id and the ids of its member nodes."""

    group_id: str
    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class ClusterWatch:
    """The EKS cluster to alarm on: where its telemetry lands, the workloads whose pods take accelerators
    (namespace, name), and the accelerator kinds its pools carry (`neuron`, `nvidia`)."""

    metrics: ServingMetrics
    accelerated_workloads: tuple[tuple[str, str], ...]
    accelerators: tuple[str, ...]


@dataclass(frozen=True)
class EndpointAlarms:
    """The alarms of one endpoint; `rollback` are the ones its blue/green deployment watches."""

    latency: aws.cloudwatch.MetricAlarm
    errors_5xx: aws.cloudwatch.MetricAlarm
    errors_4xx: aws.cloudwatch.MetricAlarm
    idle: aws.cloudwatch.MetricAlarm

    @property
    def rollback(self) -> list[aws.cloudwatch.MetricAlarm]:
        """A canary that is slow or failing rolls back; client errors and silence are not the model's fault."""
        return [self.latency, self.errors_5xx]

    @property
    def all(self) -> list[aws.cloudwatch.MetricAlarm]:
        return [self.latency, self.errors_5xx, self.errors_4xx, self.idle]


def metric(query_id: str, namespace: str, name: str, dimensions: Mapping[str, pulumi.Input[str]], stat: str,
           period: int) -> dict[str, Any]:
    """One metric inside a metric-math alarm."""
    return {"id": query_id, "return_data": False,
            "metric": {"namespace": namespace, "metric_name": name, "dimensions": dict(dimensions), "stat": stat,
                       "period": period}}


class Monitoring(pulumi.ComponentResource):
    """Alarm topic and subscriptions, alarms per endpoint, MSK and Redis, and the stack's dashboard."""

    topic: aws.sns.Topic
    endpoint_alarms: dict[str, EndpointAlarms]
    streaming_alarms: list[aws.cloudwatch.MetricAlarm]
    feature_store_alarms: list[aws.cloudwatch.MetricAlarm]
    dashboard: aws.cloudwatch.Dashboard

    def __init__(self, name: str, settings: MonitoringSettings, *, stack: StackIdentity,
                 key_arn: pulumi.Input[str], endpoints: Mapping[str, EndpointWatch], streaming: StreamingWatch,
                 feature_store: FeatureStoreWatch, cluster: ClusterWatch,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:monitoring:Monitoring", name, None, opts)
        config = settings
        self._name = name
        self._stack = stack
        self._child = pulumi.ResourceOptions(parent=self)
        self._topic(name, stack, config, key_arn)
        self.endpoint_alarms = {short: self._endpoint(short, watch) for short, watch in endpoints.items()}
        self.streaming_alarms = self._streaming(streaming, config)
        self.feature_store_alarms = self._feature_store(feature_store, config)
        self.cluster_alarms = self._cluster(cluster, config)
        self.dashboard = self._dashboard(endpoints, streaming, feature_store)
        self.cluster_dashboard = self._cluster_dashboard(cluster)
        self.alarms = [*self._all_alarms(), *self.cluster_alarms]
        self.register_outputs({
            "topicArn": self.topic.arn,
            "dashboardName": self.dashboard.dashboard_name,
            "clusterDashboardName": self.cluster_dashboard.dashboard_name,
            "alarmNames": [a.name for a in self.alarms],
        })

    # --- topic ----------------------------------------------------------------------------------------------
    def _topic(self, name: str, stack: StackIdentity, config: MonitoringSettings, key_arn: pulumi.Input[str]) -> None:
        ctx = AccountContext.lookup(stack.region, self)
        self.topic = aws.sns.Topic(
            f"{name}-alarms", name=stack.name("alarms"), display_name=f"{stack.name('alarms')}",
            kms_master_key_id=key_arn, opts=self._child)
        aws.sns.TopicPolicy(
            f"{name}-alarms", arn=self.topic.arn,
            policy=policy_document([
                {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": ctx.root_principal},
                 "Action": ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe",
                            "sns:ListSubscriptionsByTopic", "sns:Publish"],
                 "Resource": self.topic.arn},
                {"Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
                 "Principal": {"Service": ctx.service_principal("cloudwatch")}, "Action": "sns:Publish",
                 "Resource": self.topic.arn, "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}}},
                {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish",
                 "Resource": self.topic.arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            ]), opts=self._child)
        self.subscriptions = [
            aws.sns.TopicSubscription(f"{name}-alarms-{i}", topic=self.topic.arn, protocol=sub.protocol,
                                      endpoint=sub.endpoint, opts=self._child)
            for i, sub in enumerate(config.subscriptions)
        ]

    def _alarm(self, role: str, description: str, **args: Any) -> aws.cloudwatch.MetricAlarm:
        """Every alarm notifies the topic when it fires and when it clears."""
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{role}", name=self._stack.name(role), alarm_description=description,
            alarm_actions=[self.topic.arn], ok_actions=[self.topic.arn], actions_enabled=True, opts=self._child,
            **args)

    # --- endpoints ------------------------------------------------------------------------------------------
    def _endpoint(self, short: str, watch: EndpointWatch) -> EndpointAlarms:
        endpoint = watch.endpoint_name
        dims = {"EndpointName": endpoint, "VariantName": watch.variant}
        limits = watch.alarms

        def error_rate(kind: str, percent: float, period: int, periods: int, points: int) -> dict[str, Any]:
            return {
                "comparison_operator": "GreaterThanThreshold", "threshold": percent,
                "evaluation_periods": periods, "datapoints_to_alarm": points, "treat_missing_data": "notBreaching",
                "metric_queries": [
                    metric("invocations", SAGEMAKER, "Invocations", dims, "Sum", period),
                    metric("errors", SAGEMAKER, f"Invocation{kind}Errors", dims, "Sum", period),
                    {"id": "rate", "label": f"{kind} percent of invocations", "return_data": True,
                     "expression": "IF(invocations > 0, 100 * errors / invocations, 0)"},
                ],
            }

        return EndpointAlarms(
            latency=self._alarm(
                f"{short}-latency-p99",
                f"{endpoint}: p99 model latency above its {limits.latency_p99_ms:g} ms SLA (rolls back a rollout)",
                namespace=SAGEMAKER, metric_name="ModelLatency", dimensions=dims, extended_statistic="p99",
                period=60, evaluation_periods=5, datapoints_to_alarm=3, comparison_operator="GreaterThanThreshold",
                threshold=limits.latency_p99_ms * 1000.0,  # ModelLatency is reported in microseconds
                treat_missing_data="notBreaching"),
            errors_5xx=self._alarm(
                f"{short}-5xx-rate",
                f"{endpoint}: 5XX errors above {limits.error_5xx_percent:g}% of invocations (rolls back a rollout)",
                **error_rate("5XX", limits.error_5xx_percent, 60, 5, 3)),
            errors_4xx=self._alarm(
                f"{short}-4xx-spike",
                f"{endpoint}: 4XX errors above {limits.error_4xx_percent:g}% of invocations (client contract broken?)",
                **error_rate("4XX", limits.error_4xx_percent, 300, 2, 2)),
            idle=self._alarm(
                f"{short}-no-invocations",
                f"{endpoint}: no invocations for {limits.idle_minutes} minutes (clients cut off?)",
                namespace=SAGEMAKER, metric_name="Invocations", dimensions=dims, statistic="Sum", period=300,
                evaluation_periods=math.ceil(limits.idle_minutes / 5), comparison_operator="LessThanThreshold",
                threshold=1.0, treat_missing_data="breaching"),
        )

    # --- MSK ------------------------------------------------------------------------------------------------
    def _streaming(self, streaming: StreamingWatch, config: MonitoringSettings) -> list[aws.cloudwatch.MetricAlarm]:
        cluster = streaming.cluster_name
        dims = {"Cluster Name": cluster}
        alarms = [
            self._alarm(
                "kafka-active-controller",
                "MSK: active controller count is not exactly 1 (no controller, or split brain)",
                comparison_operator="GreaterThanThreshold", threshold=0.0, evaluation_periods=3,
                datapoints_to_alarm=3, treat_missing_data="breaching",
                metric_queries=[metric("controllers", KAFKA, "ActiveControllerCount", dims, "Sum", 60),
                                {"id": "off_by", "label": "controllers away from 1", "return_data": True,
                                 "expression": "ABS(controllers - 1)"}]),
            self._alarm(
                "kafka-offline-partitions", "MSK: partitions without an active leader (unavailable for reads/writes)",
                namespace=KAFKA, metric_name="OfflinePartitionsCount", dimensions=dims, statistic="Maximum",
                period=60, evaluation_periods=2, comparison_operator="GreaterThanThreshold", threshold=0.0,
                treat_missing_data="breaching"),
        ]
        for broker in range(1, streaming.broker_count + 1):
            broker_dims = {**dims, "Broker ID": str(broker)}
            alarms.append(self._alarm(
                f"kafka-broker-{broker}-disk",
                f"MSK broker {broker}: data log disk above {config.kafka_disk_used_percent:g}% "
                "(autoscaling is capped or not keeping up)",
                namespace=KAFKA, metric_name="KafkaDataLogsDiskUsed", dimensions=broker_dims, statistic="Maximum",
                period=300, evaluation_periods=2, comparison_operator="GreaterThanThreshold",
                threshold=config.kafka_disk_used_percent, treat_missing_data="breaching"))
            alarms.append(self._alarm(
                f"kafka-broker-{broker}-under-replicated",
                f"MSK broker {broker}: under-replicated partitions (a replica is behind or down)",
                namespace=KAFKA, metric_name="UnderReplicatedPartitions", dimensions=broker_dims,
                statistic="Maximum", period=300, evaluation_periods=3, comparison_operator="GreaterThanThreshold",
                threshold=0.0, treat_missing_data="notBreaching"))
        return alarms

    # --- Redis ----------------------------------------------------------------------------------------------
    def _feature_store(self, store: FeatureStoreWatch, config: MonitoringSettings) -> list[aws.cloudwatch.MetricAlarm]:
        def across_nodes(name: str, stat: str, reduce: str, label: str) -> list[dict[str, Any]]:
            ids = [f"node{i}" for i in range(1, len(store.member_ids) + 1)]
            return [
                *(metric(qid, ELASTICACHE, name, {"CacheClusterId": member}, stat, 300)
                  for qid, member in zip(ids, store.member_ids)),
                {"id": "worst", "label": label, "return_data": True, "expression": f"{reduce}([{', '.join(ids)}])"},
            ]

        group = store.group_id
        common = {"comparison_operator": "GreaterThanThreshold", "evaluation_periods": 3, "datapoints_to_alarm": 2,
                  "treat_missing_data": "notBreaching"}
        alarms = [
            self._alarm("redis-engine-cpu", f"{group}: Redis engine CPU above {config.redis_cpu_percent:g}% on a node",
                        threshold=config.redis_cpu_percent, **common,
                        metric_queries=across_nodes("EngineCPUUtilization", "Average", "MAX", "busiest node CPU")),
            self._alarm("redis-memory", f"{group}: memory use above {config.redis_memory_percent:g}% on a node",
                        threshold=config.redis_memory_percent, **common,
                        metric_queries=across_nodes("DatabaseMemoryUsagePercentage", "Maximum", "MAX",
                                                    "fullest node memory")),
            self._alarm("redis-evictions",
                        f"{group}: more than {config.redis_evictions} evictions in 5 minutes (features being dropped)",
                        threshold=float(config.redis_evictions), **common,
                        metric_queries=across_nodes("Evictions", "Sum", "SUM", "evictions")),
        ]
        if len(store.member_ids) > 1:  # only replicas report lag; a single node has none to watch
            alarms.append(self._alarm(
                "redis-replication-lag",
                f"{group}: a replica lags the primary by more than {config.redis_replication_lag_seconds:g} s",
                threshold=config.redis_replication_lag_seconds, **common,
                metric_queries=across_nodes("ReplicationLag", "Maximum", "MAX", "worst replica lag")))
        return alarms

    # --- EKS ------------------------------------------------------------------------------------------------
    def _cluster(self, cluster: ClusterWatch, config: MonitoringSettings) -> list[aws.cloudwatch.MetricAlarm]:
        """Capacity (accelerator pods pending, nodes not ready), the model servers (p99, 5xx rate, from their
        access log), and the accelerators (idle for hours while paid for, or saturated)."""
        metrics = cluster.metrics
        cluster_dims = {"ClusterName": metrics.cluster_name}
        alarms = [
            self._alarm(
                f"eks-{namespace}-{workload}-pending",
                f"{metrics.cluster_name}: pods of {namespace}/{workload} (accelerators) Pending for "
                f"{config.pending_pod_minutes} minutes (no capacity, quota, or a pool that cannot scale)",
                namespace=CONTAINER_INSIGHTS, metric_name=POD_PENDING,
                dimensions={**cluster_dims, "Namespace": namespace, "PodName": workload}, statistic="Maximum",
                period=60, evaluation_periods=config.pending_pod_minutes,
                datapoints_to_alarm=config.pending_pod_minutes, comparison_operator="GreaterThanThreshold",
                threshold=0.0, treat_missing_data="notBreaching")
            for namespace, workload in cluster.accelerated_workloads]
        alarms.append(self._alarm(
            "eks-nodes-not-ready",
            f"{metrics.cluster_name}: a node not Ready for {config.node_not_ready_minutes} minutes",
            namespace=CONTAINER_INSIGHTS, metric_name=NODE_READY, dimensions=cluster_dims, statistic="Minimum",
            period=60, evaluation_periods=config.node_not_ready_minutes,
            datapoints_to_alarm=config.node_not_ready_minutes, comparison_operator="LessThanThreshold",
            threshold=1.0, treat_missing_data="notBreaching"))
        alarms.append(self._alarm(
            "eks-serving-latency-p99",
            f"{metrics.cluster_name}: p99 of model requests above {config.serving_latency_p99_ms:g} ms",
            namespace=metrics.log_namespace, metric_name=REQUEST_LATENCY, dimensions=metrics.log_dimensions,
            extended_statistic="p99", period=60,
            evaluation_periods=5, datapoints_to_alarm=3, comparison_operator="GreaterThanThreshold",
            threshold=config.serving_latency_p99_ms, treat_missing_data="notBreaching"))
        alarms.append(self._alarm(
            "eks-serving-5xx-rate",
            f"{metrics.cluster_name}: 5xx above {config.serving_error_percent:g}% of model requests",
            comparison_operator="GreaterThanThreshold", threshold=config.serving_error_percent,
            evaluation_periods=5, datapoints_to_alarm=3, treat_missing_data="notBreaching",
            metric_queries=[
                metric("requests", metrics.log_namespace, REQUESTS, metrics.log_dimensions, "Sum", 60),
                metric("errors", metrics.log_namespace, REQUEST_ERRORS, metrics.log_dimensions, "Sum", 60),
                {"id": "rate", "label": "5xx percent of model requests", "return_data": True,
                 "expression": "IF(requests > 0, 100 * errors / requests, 0)"}]))
        for kind in cluster.accelerators:
            name = ACCELERATOR_UTILIZATION[kind]
            alarms.append(self._alarm(
                f"eks-{kind}-idle",
                f"{metrics.cluster_name}: {kind} accelerators below {config.accelerator_idle_percent:g}% for "
                f"{config.accelerator_idle_hours} h while their nodes run (paid for, unused)",
                namespace=CONTAINER_INSIGHTS, metric_name=name, dimensions=cluster_dims, statistic="Average",
                period=3600, evaluation_periods=config.accelerator_idle_hours,
                datapoints_to_alarm=config.accelerator_idle_hours, comparison_operator="LessThanThreshold",
                threshold=config.accelerator_idle_percent, treat_missing_data="notBreaching"))
            periods = math.ceil(config.accelerator_saturated_minutes / 5)
            alarms.append(self._alarm(
                f"eks-{kind}-saturated",
                f"{metrics.cluster_name}: {kind} accelerators above {config.accelerator_saturated_percent:g}% for "
                f"{config.accelerator_saturated_minutes} minutes (saturated: scale out or add capacity)",
                namespace=CONTAINER_INSIGHTS, metric_name=name, dimensions=cluster_dims, statistic="Average",
                period=300, evaluation_periods=periods, datapoints_to_alarm=periods,
                comparison_operator="GreaterThanThreshold", threshold=config.accelerator_saturated_percent,
                treat_missing_data="notBreaching"))
        return alarms

    def _cluster_dashboard(self, cluster: ClusterWatch) -> aws.cloudwatch.Dashboard:
        """The on-call view of the cluster: overview, latency p50/p95/p99, errors, capacity."""
        metrics = cluster.metrics
        region, name = self._stack.region, metrics.cluster_name
        logs, prom = metrics.log_namespace, metrics.prometheus_namespace
        gauge_dims = [part for pair in metrics.dimensions.items() for part in pair]
        log_dims = [part for pair in metrics.log_dimensions.items() for part in pair]

        def graph(title: str, series: list[Any], x: int, y: int, width: int = 8, stat: str = "Average",
                  view: str = "timeSeries") -> dict[str, Any]:
            return {"type": "metric", "x": x, "y": y, "width": width, "height": 6,
                    "properties": {"title": title, "region": region, "stat": stat, "period": 60, "view": view,
                                   "metrics": series}}

        def header(text: str, y: int) -> dict[str, Any]:
            return {"type": "text", "x": 0, "y": y, "width": 24, "height": 1, "properties": {"markdown": f"## {text}"}}

        def nodes_of(kind: str) -> dict[str, Any]:
            query = (f"SELECT COUNT({ACCELERATOR_UTILIZATION[kind]}) FROM SCHEMA({CONTAINER_INSIGHTS}, ClusterName, "
                     f"InstanceId, NodeName) WHERE ClusterName = '{name}'")
            return {"expression": query, "label": f"{kind} nodes", "id": f"nodes_{kind}"}

        error_rate = [[logs, REQUESTS, *log_dims, {"id": "requests", "stat": "Sum", "visible": False}],
                      [logs, REQUEST_ERRORS, *log_dims, {"id": "errors", "stat": "Sum", "visible": False}],
                      [{"expression": "IF(requests > 0, 100 * errors / requests, 0)", "label": "5xx %", "id": "rate"}]]
        widgets = [
            header(f"Overview: {name}", 0),
            graph("Model requests / min", [[logs, REQUESTS, *log_dims, {"stat": "Sum"}]], 0, 1, stat="Sum"),
            graph("Queue depth per replica (scales serving)", [[prom, QUEUE_DEPTH, *gauge_dims]], 8, 1),
            graph("Nodes", [[CONTAINER_INSIGHTS, NODE_COUNT, "ClusterName", name],
                            [CONTAINER_INSIGHTS, FAILED_NODES, "ClusterName", name]], 16, 1, stat="Maximum"),
            header("Latency of model requests (ms)", 7),
            graph("p50 / p95 / p99", [[logs, REQUEST_LATENCY, *log_dims, {"stat": stat, "label": stat}]
                                      for stat in ("p50", "p95", "p99")], 0, 8, width=24),
            header("Errors", 14),
            graph("5xx share of model requests (%)", error_rate, 0, 15, width=12),
            graph("Ready model servers (min of replicas)", [[prom, READY, *gauge_dims, {"stat": "Minimum"}]], 12, 15,
                  width=12),
            header("Capacity", 21),
            graph("Pending accelerator pods", [
                [CONTAINER_INSIGHTS, POD_PENDING, "ClusterName", name, "Namespace", ns, "PodName", workload]
                for ns, workload in cluster.accelerated_workloads], 0, 22, stat="Maximum"),
            graph("Nodes by accelerator (pools of one kind add up)",
                  [[nodes_of(kind)] for kind in cluster.accelerators]
                  + [[CONTAINER_INSIGHTS, NODE_COUNT, "ClusterName", name, {"label": "all nodes"}]], 8, 22),
            graph("Accelerator utilization and reservation (%)", [
                *([CONTAINER_INSIGHTS, ACCELERATOR_UTILIZATION[k], "ClusterName", name, {"label": f"{k} busy"}]
                  for k in cluster.accelerators),
                *([CONTAINER_INSIGHTS, ACCELERATOR_RESERVED[k], "ClusterName", name, {"label": f"{k} reserved"}]
                  for k in cluster.accelerators),
                *([CONTAINER_INSIGHTS, ACCELERATOR_LIMIT[k], "ClusterName", name,
                   {"label": f"{k} on nodes", "stat": "Sum", "yAxis": "right"}] for k in cluster.accelerators)],
                16, 22),
            {"type": "alarm", "x": 0, "y": 28, "width": 24, "height": 4,
             "properties": {"title": "EKS alarms", "alarms": [a.arn for a in self.cluster_alarms]}},
        ]
        return aws.cloudwatch.Dashboard(
            f"{self._name}-cluster-dashboard", dashboard_name=self._stack.name("eks"),
            dashboard_body=pulumi.Output.json_dumps({"widgets": widgets}), opts=self._child)

    # --- dashboard ------------------------------------------------------------------------------------------
    def _dashboard(self, endpoints: Mapping[str, EndpointWatch], streaming: StreamingWatch,
                   store: FeatureStoreWatch) -> aws.cloudwatch.Dashboard:
        stack = self._stack
        region = stack.region

        def graph(title: str, metrics: list[list[Any]], x: int, y: int, stat: str = "Average") -> dict[str, Any]:
            return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                    "properties": {"title": title, "region": region, "stat": stat, "period": 60,
                                   "view": "timeSeries", "metrics": metrics}}

        widgets: list[dict[str, Any]] = []
        row = 0
        for short, watch in endpoints.items():
            dims = ["EndpointName", watch.endpoint_name, "VariantName", watch.variant]
            widgets.append(graph(f"{short}: invocations and errors", [
                [SAGEMAKER, "Invocations", *dims, {"stat": "Sum"}],
                [SAGEMAKER, "Invocation5XXErrors", *dims, {"stat": "Sum"}],
                [SAGEMAKER, "Invocation4XXErrors", *dims, {"stat": "Sum"}]], 0, row))
            widgets.append(graph(f"{short}: model latency p99 (us)", [
                [SAGEMAKER, "ModelLatency", *dims, {"stat": "p99"}],
                [SAGEMAKER, "OverheadLatency", *dims, {"stat": "p99"}]], 12, row))
            row += 6
        cluster = streaming.cluster_name
        widgets.append(graph("MSK: disk used per broker (%)", [
            [KAFKA, "KafkaDataLogsDiskUsed", "Cluster Name", cluster, "Broker ID", str(b), {"stat": "Maximum"}]
            for b in range(1, streaming.broker_count + 1)], 0, row))
        widgets.append(graph("MSK: partitions at risk", [
            [KAFKA, "OfflinePartitionsCount", "Cluster Name", cluster, {"stat": "Maximum"}],
            [KAFKA, "ActiveControllerCount", "Cluster Name", cluster, {"stat": "Sum"}]], 12, row))
        row += 6
        widgets.append(graph("Redis: engine CPU per node (%)", [
            [ELASTICACHE, "EngineCPUUtilization", "CacheClusterId", m] for m in store.member_ids], 0, row))
        widgets.append(graph("Redis: memory, evictions", [
            *([ELASTICACHE, "DatabaseMemoryUsagePercentage", "CacheClusterId", m] for m in store.member_ids),
            *([ELASTICACHE, "Evictions", "CacheClusterId", m, {"stat": "Sum", "yAxis": "right"}]
              for m in store.member_ids)], 12, row))
        row += 6
        widgets.append({"type": "alarm", "x": 0, "y": row, "width": 24, "height": 6,
                        "properties": {"title": "Service alarms (the EKS ones are on the cluster dashboard)",
                                       "alarms": [a.arn for a in self._all_alarms()]}})
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard", dashboard_name=stack.name("platform"),
            dashboard_body=pulumi.Output.json_dumps({"widgets": widgets}), opts=self._child)

    def _all_alarms(self) -> Sequence[aws.cloudwatch.MetricAlarm]:
        return [a for group in self.endpoint_alarms.values() for a in group.all] + \
            self.streaming_alarms + self.feature_store_alarms
