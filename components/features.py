"""The feature pipeline on the platform: Glue schemas, the topics, and the stream materializer on EKS.

- Schemas: a Glue Schema Registry with each stream's JSON Schema (BACKWARD compatibility), from the same files
  the producers and the materializer check records against.
- Topics: MSK brokers are private and take only IAM-authenticated TLS, so a Kafka provider running where
  `pulumi up` runs could not reach them. Topics are created by a Kubernetes Job inside the VPC, with its own
  IRSA role allowed only to create and describe these topics, running the workload's own idempotent
  `python -m workloads.features create-topics` (an existing topic is success), so it can run on every deploy.
  Pulumi waits for the Job to complete before the materializer starts.
- Materializer: a Deployment in its own namespace (Pod Security `restricted` enforced), its own service
  account and IRSA role: the stack's MSK consumer policy (read the topics, its group) and producer policy
  (the dead-letter topic), Glue schema reads, S3 writes under the offline prefix with the data key, and the
  feature store's AUTH secret. NetworkPolicies: deny by default; the materializer may reach the brokers and
  Redis in the private subnets, DNS, and HTTPS for the AWS APIs (STS for IRSA, Glue, S3, Secrets Manager).
- Producers: a service account whose role carries the producer policy, for event producers in the namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from contracts import features as facts
from contracts.config import Section, Where, field
from components.iam import policy_document
from components.streaming import kafka_resource_arn

# Namespace labels: the restricted Pod Security profile is enforced, not only warned about.
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}


@dataclass(frozen=True)
class FeaturesSettings(Section):
    """The feature pipeline: where it runs, how big, how the topics are replicated."""

    namespace: str = field("features", doc="Kubernetes namespace of the materializer and producers")
    replicas: int = field(1, min=1, max=24, doc="materializer pods (at most one per partition does work)")
    cpu: str = field("500m", doc="materializer CPU request and limit")
    memory_mib: int = field(512, min=128, max=16384, doc="materializer memory request and limit")
    replication: int = field(3, min=1, max=3, doc="topic replication factor (at most the broker count)")
    batch: int = field(2000, min=1, max=50000, doc="records per materializer batch")
    schema_compatibility: str = field("BACKWARD", choices=("BACKWARD", "BACKWARD_ALL", "FULL", "FULL_ALL"),
                                      doc="Glue compatibility mode for schema evolution")
    grace_period_s: int = field(30, min=10, max=600, doc="SIGTERM to SIGKILL: time to commit and leave the group")

    ENV_DEFAULTS = {"dev": {"replication": 1}}

    def check(self, where: Where) -> None:
        if not self.namespace.replace("-", "").isalnum() or self.namespace != self.namespace.lower():
            raise where.child("namespace").error("must be a lowercase DNS label", self.namespace)


@dataclass(frozen=True)
class FeaturesCluster:
    """What the pipeline needs from EKS: a provider for its objects and the OIDC issuer for IRSA."""

    provider: k8s.Provider
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]  # https://oidc.eks.<region>.amazonaws.com/id/...


@dataclass(frozen=True)
class FeaturesStreaming:
    """From MSK: where the brokers are, the client policies, and the ARN topic permissions derive from."""

    cluster_arn: pulumi.Input[str]
    bootstrap_brokers: pulumi.Input[str]
    consumer_policy_arn: pulumi.Input[str]
    producer_policy_arn: pulumi.Input[str]
    port: int
    group_prefix: str  # `<project>-<env>-`: the consumer policy's group scope


@dataclass(frozen=True)
class FeaturesOnlineStore:
    """From the feature store (Redis): its endpoint and the Secrets Manager secret holding its AUTH token."""

    endpoint: pulumi.Input[str]
    port: int
    auth_secret_arn: pulumi.Input[str]


@dataclass(frozen=True)
class FeaturesData:
    """Where the offline store lives and the keys/networks the materializer uses."""

    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    private_subnet_cidrs: Sequence[str]
    region: str
    image: pulumi.Input[str]  # the workloads image (it ships workloads.features and contracts)
    name_prefix: str  # `<project>-<env>-` for AWS names


def irsa_trust(oidc_provider_arn: pulumi.Input[str], oidc_issuer: pulumi.Input[str], namespace: str,
               service_account: str) -> pulumi.Output[str]:
    """A trust policy only the named service account of this cluster satisfies."""
    host = pulumi.Output.from_input(oidc_issuer).apply(lambda url: url.removeprefix("https://"))
    condition = host.apply(lambda h: {"StringEquals": {
        f"{h}:sub": f"system:serviceaccount:{namespace}:{service_account}", f"{h}:aud": "sts.amazonaws.com"}})
    return policy_document([{"Effect": "Allow", "Principal": {"Federated": oidc_provider_arn},
                             "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition}])


def hardened_container(name: str, image: pulumi.Input[str], args: list[str], env: list[dict[str, Any]], *,
                       cpu: str, memory_mib: int, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A container the restricted Pod Security profile admits: non-root, no privilege, read-only root."""
    return {
        "name": name, "image": image, "command": ["python", "-m", "workloads.features"], "args": args,
        "env": env, "ports": ports or [],
        "resources": {"requests": {"cpu": cpu, "memory": f"{memory_mib}Mi"},
                      "limits": {"cpu": cpu, "memory": f"{memory_mib}Mi"}},
        "security_context": {"run_as_non_root": True, "run_as_user": 1000, "run_as_group": 1000,
                             "allow_privilege_escalation": False, "read_only_root_filesystem": True,
                             "capabilities": {"drop": ["ALL"]}, "seccomp_profile": {"type": "RuntimeDefault"}},
        "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
    }


class FeaturePipeline(pulumi.ComponentResource):
    """Glue registry and schemas, the topic Job, the materializer Deployment, its identity and network rules."""

    def __init__(self, name: str, settings: FeaturesSettings, *, cluster: FeaturesCluster,
                 streaming: FeaturesStreaming, online: FeaturesOnlineStore, data: FeaturesData,
                 streams: Sequence[facts.StreamSpec] = facts.STREAMS,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:features:FeaturePipeline", name, None, opts)
        self._name, self._settings, self._data = name, settings, data
        aws_child = pulumi.ResourceOptions(parent=self)
        k8s_child = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        ns = settings.namespace

        self.registry = aws.glue.Registry(
            f"{name}-registry", registry_name=f"{data.name_prefix}features",
            description="Event schemas of the feature pipeline (JSON Schema, checked by producers and consumers)",
            opts=aws_child)
        self.schemas = {s.view: aws.glue.Schema(
            f"{name}-schema-{s.view}", schema_name=s.schema_name, registry_arn=self.registry.arn,
            data_format="JSON", compatibility=settings.schema_compatibility,
            schema_definition=s.schema_file().read_text(encoding="utf-8"),
            description=f"{s.source_topic} events, version {max(s.schema_versions)}", opts=aws_child)
            for s in streams}

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": ns, "labels": {**RESTRICTED, "aiinfra.io/workload": "features"}},
            opts=k8s_child)
        in_ns = pulumi.ResourceOptions(parent=self, provider=cluster.provider, depends_on=[self.namespace])

        cluster_arn = pulumi.Output.from_input(streaming.cluster_arn)
        topic_arns = [kafka_resource_arn(cluster_arn, "topic", t) for s in streams for t in s.topics]
        self.topic_admin_role = self._role(
            "topic-admin", cluster, ns, "create the feature topics",
            [{"Sid": "Connect", "Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
              "Resource": streaming.cluster_arn},
             {"Sid": "CreateFeatureTopics", "Effect": "Allow",
              "Action": ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic"], "Resource": topic_arns}])
        self.materializer_role = self._role(
            "materializer", cluster, ns, "materialize feature streams into Redis and S3",
            self._materializer_statements(streams, online, data),
            attach={"consumer": streaming.consumer_policy_arn, "producer": streaming.producer_policy_arn})
        self.producer_role = self._role("event-producer", cluster, ns, "produce feature events", [],
                                        attach={"producer": streaming.producer_policy_arn})
        accounts = {sa: k8s.core.v1.ServiceAccount(
            f"{name}-sa-{sa}", metadata={"name": sa, "namespace": ns,
                                         "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
            automount_service_account_token=False, opts=in_ns)
            for sa, role in (("topic-admin", self.topic_admin_role), ("materializer", self.materializer_role),
                             ("event-producer", self.producer_role))}

        self._network_policies(name, streaming, online, data, in_ns)
        common_env = [{"name": facts.ENV_BOOTSTRAP, "value": streaming.bootstrap_brokers},
                      {"name": facts.ENV_KAFKA_AUTH, "value": "iam"},
                      {"name": facts.ENV_REGION, "value": data.region}]
        self.topic_jobs, self.deployments = {}, {}
        for spec in streams:
            view_env = [*common_env, {"name": facts.ENV_VIEW, "value": spec.view}]
            self.topic_jobs[spec.view] = self._topic_job(spec, view_env, accounts["topic-admin"], in_ns)
            self.deployments[spec.view] = self._materializer(spec, view_env, streaming, online, data,
                                                             accounts["materializer"], in_ns)
        self.register_outputs({
            "registryArn": self.registry.arn,
            "materializerRoleArn": self.materializer_role.arn,
            "producerRoleArn": self.producer_role.arn,
            "namespace": ns,
        })

    # -- identity ---------------------------------------------------------------------------------------------

    def _role(self, sa: str, cluster: FeaturesCluster, ns: str, purpose: str, statements: list[dict[str, Any]],
              attach: dict[str, pulumi.Input[str]] | None = None) -> aws.iam.Role:
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{self._name}-{sa}", description=f"{ns}/{sa}: {purpose}",
                            assume_role_policy=irsa_trust(cluster.oidc_provider_arn, cluster.oidc_issuer, ns, sa),
                            opts=child)
        if statements:
            aws.iam.RolePolicy(f"{self._name}-{sa}", role=role.id, policy=policy_document(statements), opts=child)
        for label, arn in (attach or {}).items():
            aws.iam.RolePolicyAttachment(f"{self._name}-{sa}-{label}", role=role.name, policy_arn=arn, opts=child)
        return role

    def _materializer_statements(self, streams: Sequence[facts.StreamSpec], online: FeaturesOnlineStore,
                                 data: FeaturesData) -> list[dict[str, Any]]:
        prefix = facts.OFFLINE_PREFIX
        return [
            {"Sid": "ReadSchemas", "Effect": "Allow",
             "Action": ["glue:GetSchema", "glue:GetSchemaVersion", "glue:GetSchemaByDefinition",
                        "glue:ListSchemaVersions", "glue:GetRegistry"],
             "Resource": [self.registry.arn, *[s.arn for s in self.schemas.values()]]},
            {"Sid": "ListOfflineStore", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": data.bucket_arn,
             "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
            {"Sid": "WriteOfflineStore", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": pulumi.Output.concat(data.bucket_arn, "/", prefix, "*")},
            {"Sid": "OfflineStoreKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
             "Resource": data.data_key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{data.region}.amazonaws.com"}}},
            {"Sid": "ReadFeatureStoreAuthSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": online.auth_secret_arn},
            {"Sid": "DecryptFeatureStoreAuthSecret", "Effect": "Allow", "Action": "kms:Decrypt",
             "Resource": data.data_key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{data.region}.amazonaws.com"}}},
        ]

    # -- network ----------------------------------------------------------------------------------------------

    def _network_policies(self, name: str, streaming: FeaturesStreaming, online: FeaturesOnlineStore,
                          data: FeaturesData, opts: pulumi.ResourceOptions) -> None:
        ns = self._settings.namespace
        self.default_deny = k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny", metadata={"name": "default-deny", "namespace": ns},
            spec={"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}, opts=opts)
        private = [{"ip_block": {"cidr": cidr}} for cidr in data.private_subnet_cidrs]
        dns = {"to": [{"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": "kube-system"}},
                       "pod_selector": {"match_labels": {"k8s-app": "kube-dns"}}}],
               "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
        aws_apis = {"ports": [{"protocol": "TCP", "port": 443}]}  # STS (IRSA), Glue, S3, Secrets Manager
        self.materializer_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-materializer", metadata={"name": "materializer", "namespace": ns},
            spec={"pod_selector": {"match_labels": {"app": "feature-materializer"}},
                  "policy_types": ["Ingress", "Egress"],
                  "ingress": [{"ports": [{"protocol": "TCP", "port": facts.METRICS_PORT}]}],
                  "egress": [{"to": private, "ports": [{"protocol": "TCP", "port": streaming.port}]},
                             {"to": private, "ports": [{"protocol": "TCP", "port": online.port}]},
                             dns, aws_apis]}, opts=opts)
        self.topic_admin_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-topic-admin", metadata={"name": "topic-admin", "namespace": ns},
            spec={"pod_selector": {"match_labels": {"app": "feature-topics"}}, "policy_types": ["Egress"],
                  "egress": [{"to": private, "ports": [{"protocol": "TCP", "port": streaming.port}]},
                             dns, aws_apis]}, opts=opts)

    # -- workloads --------------------------------------------------------------------------------------------

    def _topic_job(self, spec: facts.StreamSpec, env: list[dict[str, Any]], account: k8s.core.v1.ServiceAccount,
                   opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
        s = self._settings
        labels = {"app": "feature-topics", "aiinfra.io/view": spec.view}
        container = hardened_container("create-topics", self._data.image, ["create-topics"],
                                       [*env, {"name": facts.ENV_REPLICATION, "value": str(s.replication)}],
                                       cpu="250m", memory_mib=256)
        return k8s.batch.v1.Job(
            f"{self._name}-topics-{spec.view}",
            metadata={"name": f"{spec.view.replace('_', '-')}-topics", "namespace": s.namespace, "labels": labels},
            spec={"backoff_limit": 6, "ttl_seconds_after_finished": 86400,
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "service_account_name": account.metadata.name, "automount_service_account_token": False,
                      "restart_policy": "OnFailure", "containers": [container],
                      "security_context": {"run_as_non_root": True, "seccomp_profile": {"type": "RuntimeDefault"}},
                      "volumes": [{"name": "tmp", "empty_dir": {"size_limit": "64Mi"}}]}}},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[account])))

    def _materializer(self, spec: facts.StreamSpec, env: list[dict[str, Any]], streaming: FeaturesStreaming,
                      online: FeaturesOnlineStore, data: FeaturesData, account: k8s.core.v1.ServiceAccount,
                      opts: pulumi.ResourceOptions) -> k8s.apps.v1.Deployment:
        s = self._settings
        labels = {"app": "feature-materializer", "aiinfra.io/view": spec.view}
        env = [*env,
               {"name": facts.ENV_GROUP, "value": f"{streaming.group_prefix}{spec.view}{facts.GROUP_SUFFIX}"},
               {"name": facts.ENV_REDIS_URL, "value": pulumi.Output.concat(
                   "rediss://", online.endpoint, ":", str(online.port), "/0")},
               {"name": facts.ENV_REDIS_AUTH_SECRET_ARN, "value": online.auth_secret_arn},
               {"name": facts.ENV_OFFLINE_URI, "value": pulumi.Output.concat(
                   "s3://", data.bucket_name, "/", facts.OFFLINE_PREFIX.rstrip("/"))},
               {"name": facts.ENV_OFFLINE_KMS_KEY_ID, "value": data.data_key_arn},
               {"name": facts.ENV_METRICS_PORT, "value": str(facts.METRICS_PORT)},
               {"name": "FEATURES_BATCH", "value": str(s.batch)},
               {"name": "AWS_REGION", "value": data.region}]
        container = hardened_container(
            "materializer", data.image, ["materialize"], env, cpu=s.cpu, memory_mib=s.memory_mib,
            ports=[{"name": "metrics", "container_port": facts.METRICS_PORT}])
        probe = {"http_get": {"path": "/metrics", "port": "metrics"}, "period_seconds": 10}
        container.update({"readiness_probe": probe, "liveness_probe": {**probe, "failure_threshold": 6}})
        return k8s.apps.v1.Deployment(
            f"{self._name}-materializer-{spec.view}",
            metadata={"name": f"{spec.view.replace('_', '-')}-materializer", "namespace": s.namespace,
                      "labels": labels},
            spec={"replicas": min(s.replicas, spec.partitions), "selector": {"match_labels": labels},
                  "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 1, "max_surge": 0}},
                  "template": {"metadata": {"labels": labels, "annotations": {
                      "prometheus.io/scrape": "true", "prometheus.io/port": str(facts.METRICS_PORT)}},
                      "spec": {"service_account_name": account.metadata.name,
                               "automount_service_account_token": False,
                               "termination_grace_period_seconds": s.grace_period_s,
                               "security_context": {"run_as_non_root": True,
                                                    "seccomp_profile": {"type": "RuntimeDefault"}},
                               "containers": [container],
                               "volumes": [{"name": "tmp", "empty_dir": {"size_limit": "256Mi"}}]}}},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                depends_on=[account, self.topic_jobs[spec.view]])))
