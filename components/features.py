"""The feature pipeline on the platform: Glue schemas, the topics, the stream materializer on EKS, its lag alarm.

- Schemas: a Glue Schema Registry with each stream's JSON Schema (BACKWARD compatibility), from the same files
  (`contracts/schemas/`) the producers and the materializer check records against.
- Topics: MSK brokers are private and take only IAM-authenticated TLS, so a Kafka provider running where
  `pulumi up` runs could not reach them. Topics are created by a Kubernetes Job inside the VPC, with its own
  IRSA role allowed only to create and describe these topics, running the workload's own idempotent
  `python -m workloads.features create-topics` (an existing topic is success), so it can run on every deploy.
  Pulumi waits for the Job to complete before the materializer starts.
- Materializer: a Deployment in its own namespace (Pod Security `restricted` enforced, a quota and LimitRange,
  default-deny NetworkPolicies with DNS and HTTPS out for STS, Glue, S3 and Secrets Manager), its own service
  account and IRSA role: the stack's MSK consumer policy (read the topics, its group) and producer policy (the
  dead-letter topic), Glue schema reads, S3 writes under the offline prefix with the data key, and the feature
  store's AUTH secret. Its NetworkPolicy adds the brokers' and Redis' ports in the private subnets, nothing else.
- Consumer lag: MSK publishes `MaxOffsetLag` per consumer group and topic at its DEFAULT monitoring level (every
  level includes it) once the group has committed offsets and is STABLE or EMPTY; an alarm per view notifies the
  platform's alarm topic when the worst partition stays behind.
- Producers: a service account whose role carries the producer policy, for event producers in the namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster import OidcIssuer, irsa_role
from components.cluster_workloads import POD_SECURITY, TMP, hardened
from components.context import AccountContext
from components.iam import policy_document, secret_read_statements
from components.kubernetes_addons import WorkloadTarget, workload_namespace
from components.settings import FeaturesSettings, StackIdentity
from components.settings.features import TOPIC_JOB_CPU_MILLICORES, TOPIC_JOB_MEMORY_MIB
from components.storage import BucketRef
from components.streaming import kafka_resource_arn
from contracts import env as names
from contracts import features as facts
from contracts.kubernetes import IRSA_REGIONAL_STS_ANNOTATION, IRSA_ROLE_ANNOTATION
from contracts.ports import KAFKA_IAM, REDIS

KAFKA = "AWS/Kafka"


@dataclass(frozen=True)
class FeaturesStreaming:
    """From MSK: its ARN (topic and group ARNs derive from it), its name (the lag metric's dimension), the
    brokers, and the client policies the pipeline's roles attach."""

    cluster_arn: pulumi.Output[str]
    cluster_name: pulumi.Input[str]
    bootstrap_brokers: pulumi.Input[str]
    consumer_policy_arn: pulumi.Input[str]
    producer_policy_arn: pulumi.Input[str]


@dataclass(frozen=True)
class FeaturesOnlineStore:
    """From the feature store (Redis): its primary endpoint and the Secrets Manager secret holding its AUTH token."""

    endpoint: pulumi.Input[str]
    auth_secret_arn: pulumi.Input[str]


@dataclass(frozen=True)
class FeaturesData:
    """The offline store's bucket and key, the networks the pods talk to, and the image they run."""

    bucket: BucketRef
    data_key_arn: pulumi.Input[str]
    vpc_cidr: str
    private_subnet_cidrs: Sequence[str]  # where MSK brokers and Redis nodes live
    image: pulumi.Input[str]  # the workloads image (it ships workloads.features and contracts)


def _object_name(view: str, role: str) -> str:
    return f"{view.replace('_', '-')}-{role}"


class FeaturePipeline(pulumi.ComponentResource):
    """Glue registry and schemas, the topic Job, the materializer Deployment, its identity, network rules and
    consumer-lag alarm."""

    registry: aws.glue.Registry
    materializer_role: aws.iam.Role
    lag_alarms: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(self, name: str, settings: FeaturesSettings, *, stack: StackIdentity, oidc: OidcIssuer,
                 kubernetes: WorkloadTarget, streaming: FeaturesStreaming, online: FeaturesOnlineStore,
                 data: FeaturesData, alarm_topic_arn: pulumi.Input[str],
                 streams: Sequence[facts.StreamSpec] = facts.STREAMS,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:features:FeaturePipeline", name, None, opts)
        self._name, self._settings, self._stack, self._data = name, settings, stack, data
        self._ctx = AccountContext.lookup(stack.region, self)
        aws_child = pulumi.ResourceOptions(parent=self)
        k8s_child = pulumi.ResourceOptions(parent=self, provider=kubernetes.provider,
                                           depends_on=list(kubernetes.prerequisites))
        ns = settings.namespace

        self.registry = aws.glue.Registry(
            f"{name}-registry", registry_name=stack.name("features"),
            description="Event schemas of the feature pipeline (JSON Schema, checked by producers and consumers)",
            opts=aws_child)
        self.schemas = {s.view: aws.glue.Schema(
            f"{name}-schema-{s.view}", schema_name=s.schema_name, registry_arn=self.registry.arn,
            data_format="JSON", compatibility=settings.schema_compatibility,
            schema_definition=s.schema_file().read_text(encoding="utf-8"),
            description=f"{s.source_topic} events, version {max(s.schema_versions)}", opts=aws_child)
            for s in streams}

        self.namespace = workload_namespace(f"{name}-namespace", ns, settings.quota, k8s_child)
        in_ns = pulumi.ResourceOptions.merge(k8s_child, pulumi.ResourceOptions(depends_on=[self.namespace]))

        topic_arns = [kafka_resource_arn(streaming.cluster_arn, "topic", t) for s in streams for t in s.topics]
        self.topic_admin_role, topic_admin_grants = self._role(
            "topic-admin", oidc, "create the feature topics",
            [{"Sid": "Connect", "Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
              "Resource": streaming.cluster_arn},
             {"Sid": "CreateFeatureTopics", "Effect": "Allow",
              "Action": ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic"], "Resource": topic_arns}])
        self.materializer_role, materializer_grants = self._role(
            "materializer", oidc, "materialize feature streams into Redis and S3",
            self._materializer_statements(online, data),
            attach={"consumer": streaming.consumer_policy_arn, "producer": streaming.producer_policy_arn})
        self.producer_role, _ = self._role("event-producer", oidc, "produce feature events", [],
                                           attach={"producer": streaming.producer_policy_arn})
        accounts = {sa: k8s.core.v1.ServiceAccount(
            f"{name}-sa-{sa}", metadata={"name": sa, "namespace": ns, "annotations": {
                IRSA_ROLE_ANNOTATION: role.arn, IRSA_REGIONAL_STS_ANNOTATION: "true"}},
            # IRSA projects a token of its own; nothing here calls the Kubernetes API.
            automount_service_account_token=False, opts=in_ns)
            for sa, role in (("topic-admin", self.topic_admin_role), ("materializer", self.materializer_role),
                             ("event-producer", self.producer_role))}

        self._network_policies(name, data, in_ns)
        common_env = [{"name": facts.ENV_BOOTSTRAP, "value": streaming.bootstrap_brokers},
                      {"name": facts.ENV_KAFKA_AUTH, "value": "iam"},
                      {"name": facts.ENV_REGION, "value": stack.region},
                      {"name": names.AWS_REGION, "value": stack.region},
                      {"name": "HOME", "value": TMP}]
        self.topic_jobs: dict[str, k8s.batch.v1.Job] = {}
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        self.lag_alarms = {}
        for spec in streams:
            view_env = [*common_env, {"name": facts.ENV_VIEW, "value": spec.view}]
            self.topic_jobs[spec.view] = self._topic_job(
                spec, view_env, pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(
                    depends_on=[accounts["topic-admin"], self.topic_admin_policy, *topic_admin_grants])))
            group = facts.consumer_group(stack.name(""), spec.view)
            self.deployments[spec.view] = self._materializer(
                spec, view_env, group, online, data, pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(
                    depends_on=[accounts["materializer"], self.materializer_policy, *materializer_grants,
                                self.topic_jobs[spec.view]])))
            self.lag_alarms[spec.view] = self._lag_alarm(spec, group, streaming, alarm_topic_arn)
        self.register_outputs({
            "registryArn": self.registry.arn,
            "materializerRoleArn": self.materializer_role.arn,
            "producerRoleArn": self.producer_role.arn,
            "namespace": ns,
            "lagAlarms": [a.name for a in self.lag_alarms.values()],
        })

    # -- identity ---------------------------------------------------------------------------------------------

    def _role(self, sa: str, oidc: OidcIssuer, purpose: str, statements: list[dict[str, Any]],
              attach: dict[str, pulumi.Input[str]] | None = None) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        """An IRSA role for `<namespace>/<sa>` and what grants it permissions (pods wait for those)."""
        child = pulumi.ResourceOptions(parent=self)
        ns = self._settings.namespace
        role = irsa_role(f"{self._name}-{sa}", oidc, ns, sa, description=f"{ns}/{sa}: {purpose}", parent=self)
        grants: list[pulumi.Resource] = []
        if statements:
            grants.append(aws.iam.RolePolicy(f"{self._name}-{sa}", role=role.id, policy=policy_document(statements),
                                             opts=child))
        for label, arn in (attach or {}).items():
            grants.append(aws.iam.RolePolicyAttachment(f"{self._name}-{sa}-{label}", role=role.name,
                                                       policy_arn=arn, opts=child))
        return role, grants

    def _materializer_statements(self, online: FeaturesOnlineStore, data: FeaturesData) -> list[dict[str, Any]]:
        prefix = facts.OFFLINE_PREFIX
        return [
            {"Sid": "ReadSchemas", "Effect": "Allow",
             "Action": ["glue:GetSchema", "glue:GetSchemaVersion", "glue:GetSchemaByDefinition",
                        "glue:ListSchemaVersions", "glue:GetRegistry"],
             "Resource": [self.registry.arn, *[s.arn for s in self.schemas.values()]]},
            {"Sid": "ListOfflineStore", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": data.bucket.arn,
             "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
            {"Sid": "WriteOfflineStore", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": pulumi.Output.concat(data.bucket.arn, "/", prefix, "*")},
            {"Sid": "OfflineStoreKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
             "Resource": data.data_key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": self._ctx.service_host("s3")}}},
            *secret_read_statements("FeatureStoreAuthSecret", online.auth_secret_arn, data.data_key_arn,
                                    self._ctx.service_host("secretsmanager")),
        ]

    # -- network ----------------------------------------------------------------------------------------------

    def _network_policies(self, name: str, data: FeaturesData, opts: pulumi.ResourceOptions) -> None:
        """On top of the namespace's default deny (DNS and HTTPS out allowed): the brokers and Redis, by port, in
        the private subnets; the metrics port from inside the VPC (scrapers and the kubelet's probes)."""
        ns = self._settings.namespace
        private = [{"ip_block": {"cidr": cidr}} for cidr in data.private_subnet_cidrs]
        brokers = {"to": private, "ports": [{"protocol": "TCP", "port": KAFKA_IAM}]}
        self.materializer_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-materializer", metadata={"name": "materializer", "namespace": ns},
            spec={"pod_selector": {"match_labels": {"app": "feature-materializer"}},
                  "policy_types": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"ip_block": {"cidr": data.vpc_cidr}}],
                               "ports": [{"protocol": "TCP", "port": facts.METRICS_PORT}]}],
                  "egress": [brokers, {"to": private, "ports": [{"protocol": "TCP", "port": REDIS}]}]}, opts=opts)
        self.topic_admin_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-topic-admin", metadata={"name": "topic-admin", "namespace": ns},
            spec={"pod_selector": {"match_labels": {"app": "feature-topics"}}, "policy_types": ["Egress"],
                  "egress": [brokers]}, opts=opts)

    # -- workloads --------------------------------------------------------------------------------------------

    def _container(self, name: str, args: list[str], env: list[dict[str, Any]], *, cpu_millicores: int,
                   memory_mib: int, **extra: Any) -> dict[str, Any]:
        """The workloads image running `python -m workloads.features <args>`, requests equal to limits."""
        size = {"cpu": f"{cpu_millicores}m", "memory": f"{memory_mib}Mi"}
        return hardened({"name": name, "image": self._data.image, "command": ["python", "-m", "workloads.features"],
                         "args": args, "env": env, "resources": {"requests": size, "limits": dict(size)}, **extra})

    def _pod(self, service_account: str, container: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"service_account_name": service_account, "automount_service_account_token": False,
                "enable_service_links": False, "security_context": POD_SECURITY, "containers": [container],
                "volumes": [{"name": "tmp", "empty_dir": {"size_limit": "256Mi"}}], **extra}

    def _topic_job(self, spec: facts.StreamSpec, env: list[dict[str, Any]],
                   opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
        s = self._settings
        labels = {"app": "feature-topics", "aiinfra.io/view": spec.view}
        # -1: the brokers' default.replication.factor (Kafka 2.4+), which the MSK configuration sets from the
        # broker count.
        replication = str(s.replication) if s.replication is not None else "-1"
        container = self._container("create-topics", ["create-topics"],
                                    [*env, {"name": facts.ENV_REPLICATION, "value": replication}],
                                    cpu_millicores=TOPIC_JOB_CPU_MILLICORES, memory_mib=TOPIC_JOB_MEMORY_MIB)
        return k8s.batch.v1.Job(
            f"{self._name}-topics-{spec.view}",
            metadata={"name": _object_name(spec.view, "topics"), "namespace": s.namespace, "labels": labels},
            spec={"backoff_limit": 6, "active_deadline_seconds": 900,
                  "template": {"metadata": {"labels": labels},
                               "spec": self._pod("topic-admin", container, restart_policy="OnFailure")}},
            opts=opts)

    def _materializer(self, spec: facts.StreamSpec, env: list[dict[str, Any]], group: str,
                      online: FeaturesOnlineStore, data: FeaturesData,
                      opts: pulumi.ResourceOptions) -> k8s.apps.v1.Deployment:
        s = self._settings
        labels = {"app": "feature-materializer", "aiinfra.io/view": spec.view}
        env = [*env,
               {"name": facts.ENV_GROUP, "value": group},
               {"name": facts.ENV_REDIS_URL, "value": pulumi.Output.concat(
                   "rediss://", online.endpoint, ":", str(REDIS), "/0")},
               {"name": facts.ENV_REDIS_AUTH_SECRET_ARN, "value": online.auth_secret_arn},
               {"name": facts.ENV_OFFLINE_URI, "value": pulumi.Output.concat(
                   "s3://", data.bucket.name, "/", facts.OFFLINE_PREFIX.rstrip("/"))},
               {"name": facts.ENV_OFFLINE_KMS_KEY_ID, "value": data.data_key_arn},
               {"name": facts.ENV_METRICS_PORT, "value": str(facts.METRICS_PORT)},
               {"name": facts.ENV_BATCH, "value": str(s.batch)}]
        probe = {"http_get": {"path": "/metrics", "port": "metrics"}, "period_seconds": 10}
        container = self._container(
            "materializer", ["materialize"], env, cpu_millicores=s.cpu_millicores, memory_mib=s.memory_mib,
            ports=[{"name": "metrics", "container_port": facts.METRICS_PORT}],
            readiness_probe=probe, liveness_probe={**probe, "failure_threshold": 6})
        return k8s.apps.v1.Deployment(
            f"{self._name}-materializer-{spec.view}",
            metadata={"name": _object_name(spec.view, "materializer"), "namespace": s.namespace, "labels": labels},
            spec={"replicas": min(s.replicas, spec.partitions), "selector": {"match_labels": labels},
                  # No surge: a rollout never needs quota beyond the declared replicas.
                  "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 1, "max_surge": 0}},
                  "template": {"metadata": {"labels": labels, "annotations": {
                      "prometheus.io/scrape": "true", "prometheus.io/port": str(facts.METRICS_PORT)}},
                      "spec": self._pod("materializer", container,
                                        termination_grace_period_seconds=s.grace_period_s)}},
            opts=opts)

    # -- alarm ------------------------------------------------------------------------------------------------

    def _lag_alarm(self, spec: facts.StreamSpec, group: str, streaming: FeaturesStreaming,
                   topic_arn: pulumi.Input[str]) -> aws.cloudwatch.MetricAlarm:
        """The worst partition's offset lag for the materializer's group. Missing data (no commit yet, or the
        group rebalancing) leaves the alarm as it was rather than paging on a fresh deploy."""
        s = self._settings
        role = f"{spec.view.replace('_', '-')}-consumer-lag"
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{role}", name=self._stack.name(role),
            alarm_description=f"{group}: a partition of {spec.source_topic} is more than {s.max_lag_records} "
                              f"records behind for {s.lag_minutes} minutes (materializer stuck, slow or down)",
            namespace=KAFKA, metric_name="MaxOffsetLag",
            dimensions={"Cluster Name": streaming.cluster_name, "Consumer Group": group, "Topic": spec.source_topic},
            statistic="Maximum", period=60, evaluation_periods=s.lag_minutes, datapoints_to_alarm=s.lag_minutes,
            comparison_operator="GreaterThanThreshold", threshold=float(s.max_lag_records),
            treat_missing_data="missing", alarm_actions=[topic_arn], ok_actions=[topic_arn], actions_enabled=True,
            opts=pulumi.ResourceOptions(parent=self))
