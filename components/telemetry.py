"""What measures the cluster and what scales on it: metrics-server, the Amazon CloudWatch Observability add-on
(Container Insights with accelerated compute: the DCGM exporter on NVIDIA nodes, neuron-monitor on Neuron
nodes, Fluent Bit for container logs, and its agent's Prometheus scrape of the model servers), and KEDA.

Why CloudWatch and not Amazon Managed Service for Prometheus: the platform's alarms, their SNS topic and the
on-call dashboard are CloudWatch already (SageMaker, MSK, Redis), and the EKS alarms belong with them; the add-on
ships the accelerator exporters, so nothing else runs on the paid nodes. What that costs, stated where it
matters: the agent drops Prometheus histograms, so request latency and error rate are cut from the server's
own access log (one JSON line per request) by metric filters, which give CloudWatch every request's duration
and so true p50/p95/p99; the scrape takes gauges only (`contracts.telemetry.SCRAPED_GAUGES`).

Who reaches the servers' port: every agent of the DaemonSet discovers every model server, but the serving
namespace's default deny admits only the agent on the pod's own node (NetworkPolicy always admits traffic from
the pod's node, the rule the kubelet's probes rely on; the VPC CNI's policy agent allows the node's own
address), so each server is scraped once, by its node's agent, and the other agents' attempts end at the short
scrape timeout. No ingress is opened to the VPC: the agents run in the host network, so an ipBlock for them
would admit every pod's address as well. (The agent reads its scrape file with Prometheus's loader, which
expands no environment variables, so a per-node field selector cannot name the agent's node.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster import NodeBootstrap, OidcIssuer, irsa_role
from components.context import AccountContext
from components.iam import policy_document
from components.kubernetes_addons import WorkloadTarget
from components.log_groups import encrypted_log_group
from components.settings import StackIdentity, TelemetrySettings
from contracts import telemetry as server
from contracts.ports import MODEL_SERVER as SERVING_PORT

CONTAINER_INSIGHTS = "ContainerInsights"
PROMETHEUS = "ContainerInsights/Prometheus"
# Container Insights log groups, all created here (encrypted, retained) so the agents never create one.
LOG_GROUPS = ("application", "dataplane", "host", "performance", "prometheus")
AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT = "amazon-cloudwatch", "cloudwatch-agent"
KEDA_NAMESPACE, KEDA_SERVICE_ACCOUNT = "keda", "keda-operator"
KEDA_REPO = "https://kedacore.github.io/charts"
SCRAPE_JOB = "model-server"
SCRAPE_TIMEOUT_SECONDS = 5

# Container Insights (enhanced observability with accelerated compute) metrics the alarms and dashboard read,
# with the dimension sets the agent publishes them under.
POD_PENDING = "pod_status_pending"            # ClusterName, Namespace, PodName (the owning workload's name)
NODE_READY = "node_status_condition_ready"     # ClusterName (one value per node: Minimum < 1 is a node down)
NODE_COUNT = "cluster_node_count"              # ClusterName
FAILED_NODES = "cluster_failed_node_count"     # ClusterName
# Per accelerator kind: utilization (percent) and capacity on the nodes, ClusterName (and per node) dimensions.
ACCELERATOR_UTILIZATION = {"neuron": "node_neuroncore_utilization", "nvidia": "node_gpu_utilization"}
ACCELERATOR_LIMIT = {"neuron": "node_neuroncore_limit", "nvidia": "node_gpu_limit"}
ACCELERATOR_RESERVED = {"neuron": "node_neuroncore_reserved_capacity", "nvidia": "node_gpu_reserved_capacity"}
# What the access-log metric filters publish.
REQUEST_LATENCY, REQUESTS, REQUEST_ERRORS = "model_request_latency", "model_requests", "model_request_5xx"


@dataclass(frozen=True)
class ScrapeTarget:
    """The model servers: their namespace and the pod labels that select them."""

    namespace: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ServingMetrics:
    """Where the model servers' metrics land: the scraped gauges (with their dimensions) and the access-log
    metrics (one namespace per cluster, as a log event names no cluster)."""

    cluster_name: str
    region: str
    prometheus_namespace: str
    dimensions: Mapping[str, str]     # of the scraped gauges
    log_namespace: str

    @property
    def log_dimensions(self) -> dict[str, str]:
        """The access-log metrics' dimension: the model servers' Kubernetes namespace."""
        return {"Namespace": self.dimensions["Namespace"]}


@dataclass(frozen=True)
class ServingAutoscaling:
    """What the serving ScaledObject needs: KEDA installed, and the queue-depth metric it reads."""

    keda: pulumi.Resource
    metrics: ServingMetrics


def scrape_config(target: ScrapeTarget, interval_seconds: int) -> dict[str, Any]:
    """The Prometheus scrape of the model servers: pods with the server's labels in its namespace, on the
    server's port and metrics path; only the gauges are kept."""
    label_rules = [{"source_labels": [f"__meta_kubernetes_pod_label_{_label_name(k)}"], "regex": v, "action": "keep"}
                   for k, v in sorted(target.labels.items())]
    return {
        # Short timeout: the attempts of agents on other nodes are dropped by the namespace's default deny.
        "global": {"scrape_interval": f"{interval_seconds}s", "scrape_timeout": f"{SCRAPE_TIMEOUT_SECONDS}s"},
        "scrape_configs": [{
            "job_name": SCRAPE_JOB,
            "metrics_path": server.METRICS_PATH,
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [target.namespace]}}],
            "relabel_configs": [
                *label_rules,
                {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(SERVING_PORT),
                 "action": "keep"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "Namespace", "action": "replace"},
                {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "target_label": "Service",
                 "action": "replace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod_name", "action": "replace"},
            ],
            "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": "|".join(server.SCRAPED_GAUGES),
                                        "action": "keep"}],
        }],
    }


def _label_name(key: str) -> str:
    """A pod label as Prometheus's service discovery spells it (`app.kubernetes.io/name` -> `app_kubernetes_io_name`)."""
    return "".join(c if c.isalnum() else "_" for c in key)


def agent_configuration(cluster_name: str, target: ScrapeTarget, interval_seconds: int) -> dict[str, Any]:
    """The add-on's configuration: Container Insights with enhanced observability and accelerated compute
    metrics, the Prometheus scrape, its EMF translation (gauges, ClusterName/Namespace/Service), container logs."""
    return {
        "agent": {
            "config": {"logs": {"metrics_collected": {
                "kubernetes": {"cluster_name": cluster_name, "enhanced_container_insights": True,
                               "accelerated_compute_metrics": True},
                "prometheus": {
                    "cluster_name": cluster_name,
                    "log_group_name": f"/aws/containerinsights/{cluster_name}/prometheus",
                    "prometheus_config_path": "/etc/prometheusconfig/prometheus.yaml",
                    "emf_processor": {"metric_namespace": PROMETHEUS, "metric_declaration": [{
                        "source_labels": ["job"], "label_matcher": f"^{SCRAPE_JOB}$",
                        "dimensions": [["ClusterName", "Namespace", "Service"]],
                        "metric_selectors": [f"^{m}$" for m in server.SCRAPED_GAUGES],
                    }]},
                },
            }}},
            "prometheus": {"config": scrape_config(target, interval_seconds)},
        },
        "containerLogs": {"enabled": True},
    }


def access_log_filter(namespace: str, *extra: str) -> str:
    """A metric filter pattern for the model requests in the access log Fluent Bit ships (the server's JSON
    line is parsed into `log_processed`; Kubernetes metadata is under `kubernetes`)."""
    record = "$.log_processed"
    terms = [f'($.kubernetes.namespace_name = "{namespace}")',
             f'({record}.{server.ACCESS_EVENT_KEY} = "{server.ACCESS_EVENT}")',
             f'({record}.{server.ACCESS_PATH_KEY} = "{server.MODEL_ROUTE_PREFIX}*")', *extra]
    return "{ " + " && ".join(terms) + " }"


class Telemetry(pulumi.ComponentResource):
    """metrics-server, the CloudWatch Observability add-on with its scoped role and log groups, the access-log
    metric filters, and KEDA with a role that may only read CloudWatch metrics."""

    def __init__(self, name: str, settings: TelemetrySettings, *, stack: StackIdentity, cluster: NodeBootstrap,
                 oidc: OidcIssuer, logs_key_arn: pulumi.Input[str], node_groups: Sequence[pulumi.Resource],
                 kubernetes: WorkloadTarget, target: ScrapeTarget,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:telemetry:Telemetry", name, None, opts)
        config = settings
        child = pulumi.ResourceOptions(parent=self)
        ctx = AccountContext.lookup(stack.region, self)
        cluster_name = cluster.physical_name
        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=list(node_groups))

        self.metrics_server = aws.eks.Addon(
            f"{name}-metrics-server", cluster_name=cluster.cluster_name, addon_name="metrics-server",
            addon_version=config.metrics_server_version, resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE", opts=after_nodes)

        prefix = f"/aws/containerinsights/{cluster_name}"
        self.log_groups = {
            group: encrypted_log_group(f"{name}-{group}", log_group_name=f"{prefix}/{group}",
                                       retention_days=config.log_retention_days, kms_key_arn=logs_key_arn,
                                       parent=self)
            for group in LOG_GROUPS}
        self.agent_role = irsa_role(f"{name}-cloudwatch-agent", oidc, AGENT_NAMESPACE, AGENT_SERVICE_ACCOUNT,
                                    description="CloudWatch agent and Fluent Bit (Container Insights)", parent=self)
        self.metrics = ServingMetrics(
            cluster_name=cluster_name, region=stack.region, prometheus_namespace=PROMETHEUS,
            dimensions={"ClusterName": cluster_name, "Namespace": target.namespace,
                        "Service": target.labels.get("app.kubernetes.io/name", SCRAPE_JOB)},
            log_namespace=f"aiinfra/eks/{cluster_name}")
        log_group_arn = ctx.arn("logs", f"log-group:{prefix}/*")
        aws.iam.RolePolicy(
            f"{name}-cloudwatch-agent", role=self.agent_role.id,
            policy=policy_document([
                {"Sid": "ContainerInsightsLogs", "Effect": "Allow",
                 "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams",
                            "logs:DescribeLogGroups"],
                 "Resource": [log_group_arn, pulumi.Output.concat(log_group_arn, ":log-stream:*")]},
                {"Sid": "OwnMetricNamespaces", "Effect": "Allow", "Action": "cloudwatch:PutMetricData",
                 "Resource": "*",
                 "Condition": {"StringEquals": {"cloudwatch:namespace": [CONTAINER_INSIGHTS, PROMETHEUS]}}},
                # The agent reads its node's instance, volumes and tags; these calls have no resource scope.
                {"Sid": "DescribeNodes", "Effect": "Allow",
                 "Action": ["ec2:DescribeInstances", "ec2:DescribeTags", "ec2:DescribeVolumes"], "Resource": "*"},
            ]), opts=child)
        self.observability = aws.eks.Addon(
            f"{name}-cloudwatch-observability", cluster_name=cluster.cluster_name,
            addon_name="amazon-cloudwatch-observability", addon_version=config.cloudwatch_observability_version,
            service_account_role_arn=self.agent_role.arn,
            configuration_values=json.dumps(agent_configuration(cluster_name, target,
                                                                config.scrape_interval_seconds), sort_keys=True),
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*node_groups, *self.log_groups.values()]))

        application = self.log_groups["application"].name
        value = f"$.log_processed.{server.ACCESS_DURATION_MS_KEY}"
        status = f"$.log_processed.{server.ACCESS_STATUS_KEY}"
        filters = {
            REQUEST_LATENCY: (access_log_filter(target.namespace), value, "Milliseconds"),
            REQUESTS: (access_log_filter(target.namespace), "1", "Count"),
            REQUEST_ERRORS: (access_log_filter(target.namespace, f"({status} >= 500)"), "1", "Count"),
        }
        self.metric_filters = {
            metric: aws.cloudwatch.LogMetricFilter(
                f"{name}-{metric.replace('_', '-')}", name=f"{cluster_name}-{metric}", log_group_name=application,
                # The Kubernetes namespace as a dimension (a filter with dimensions takes no default value).
                pattern=pattern, metric_transformation={
                    "name": metric, "namespace": self.metrics.log_namespace, "value": metric_value, "unit": unit,
                    "dimensions": {"Namespace": "$.kubernetes.namespace_name"}},
                opts=child)
            for metric, (pattern, metric_value, unit) in filters.items()}

        self.keda_role = irsa_role(f"{name}-keda", oidc, KEDA_NAMESPACE, KEDA_SERVICE_ACCOUNT,
                                   description="KEDA operator: reads the metrics the serving autoscaler scales on",
                                   parent=self)
        aws.iam.RolePolicy(
            f"{name}-keda", role=self.keda_role.id,
            # GetMetricData has no resource-level scope; the role can read metrics and nothing else.
            policy=policy_document([{"Sid": "ReadMetrics", "Effect": "Allow", "Action": "cloudwatch:GetMetricData",
                                     "Resource": "*"}]), opts=child)
        self.keda = k8s.helm.v3.Release(
            f"{name}-keda", name="keda", chart="keda", version=config.keda_version,
            repository_opts={"repo": KEDA_REPO}, namespace=KEDA_NAMESPACE, create_namespace=True, atomic=True,
            cleanup_on_fail=True, max_history=5,
            # The chart annotates its operator's service account (keda-operator) with the role.
            values={"podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": self.keda_role.arn}}}},
            opts=pulumi.ResourceOptions(parent=self, provider=kubernetes.provider, depends_on=list(node_groups)))
        self.autoscaling = ServingAutoscaling(self.keda, self.metrics)
        self.register_outputs({
            "addons": [self.metrics_server.addon_name, self.observability.addon_name],
            "keda": self.keda.name,
            "logGroups": {g: lg.name for g, lg in self.log_groups.items()},
        })
