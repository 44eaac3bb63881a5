"""CloudWatch alarms for endpoints, MSK and Redis, an encrypted SNS topic they all notify, and one dashboard.

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
                 feature_store: FeatureStoreWatch, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:monitoring:Monitoring", name, None, opts)
        config = settings
        self._name = name
        self._stack = stack
        self._child = pulumi.ResourceOptions(parent=self)
        self._topic(name, stack, config, key_arn)
        self.endpoint_alarms = {short: self._endpoint(short, watch) for short, watch in endpoints.items()}
        self.streaming_alarms = self._streaming(streaming, config)
        self.feature_store_alarms = self._feature_store(feature_store, config)
        self.dashboard = self._dashboard(endpoints, streaming, feature_store)
        self.alarms = list(self._all_alarms())
        self.register_outputs({
            "topicArn": self.topic.arn,
            "dashboardName": self.dashboard.dashboard_name,
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
                        "properties": {"title": "All platform alarms",
                                       "alarms": [a.arn for a in self._all_alarms()]}})
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard", dashboard_name=stack.name("platform"),
            dashboard_body=pulumi.Output.json_dumps({"widgets": widgets}), opts=self._child)

    def _all_alarms(self) -> Sequence[aws.cloudwatch.MetricAlarm]:
        return [a for group in self.endpoint_alarms.values() for a in group.all] + \
            self.streaming_alarms + self.feature_store_alarms
