"""AiPlatform: the whole platform for one stack, composed from settings in the real build order.

Read top to bottom, this is the order things are built in: keys, network, storage, the cluster and its nodes,
the data services (which admit the nodes and the endpoints), the workloads' identities (the serving role reads
the feature store's secret), the in-cluster add-ons, monitoring (its alarms exist before the endpoints that roll
back on them; its topic is what the feature pipeline's lag alarm notifies), the feature pipeline (topics, schemas,
the materializer that fills the feature store), the cluster workloads, and the endpoints. Each component gets
its own settings section and the typed outputs of the components it uses; nothing is added to a component after
it registered its outputs.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster, NodeAddons
from components.cluster_workloads import SERVER_LABELS, ClusterWorkloads, SharedCache
from components.encryption import EncryptionKeys
from components.feature_store import FeatureStore
from components.features import FeaturePipeline, FeaturesData, FeaturesOnlineStore, FeaturesStreaming
from components.inference import Inference, ServingSecurityGroup, endpoint_watches
from components.kubernetes_addons import KubernetesAddons, required_device_plugins
from components.monitoring import ClusterWatch, FeatureStoreWatch, Monitoring, StreamingWatch
from components.network import Network
from components.node_pools import NodePools
from components.serving_auth import ServingApiKeys
from components.settings import PlatformSettings
from components.storage import Storage
from components.streaming import Streaming
from components.telemetry import ScrapeTarget, Telemetry
from components.workload_identity import SERVICE_ACCOUNTS, WorkloadIdentity
from contracts import outputs as out
from contracts.storage import CHECKPOINTS


class AiPlatform(pulumi.ComponentResource):
    """Builds every child component and gives each only the settings slice and upstream outputs it needs."""

    def __init__(self, name: str, settings: PlatformSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:platform:AiPlatform", name, None, opts)
        stack = settings.identity
        # One provider carries the required tags as default tags: applied in one place, to every resource.
        self.provider = aws.Provider(
            f"{name}-aws", region=settings.region, default_tags={"tags": settings.tags},
            opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, providers={"aws": self.provider})

        self.keys = EncryptionKeys("keys", settings.encryption, stack=stack, opts=child)
        keys = self.keys.arns
        self.network = Network("network", settings.network, stack=stack, logs_key_arn=keys.logs, opts=child)
        network = self.network.outputs
        self.storage = Storage("storage", settings.storage, stack=stack, keys=keys, opts=child)

        self.cluster = Cluster("cluster", settings.cluster, stack=stack, network=network, keys=keys, opts=child)
        self.node_pools = NodePools("node-pools", settings.node_pools, stack=stack,
                                    cluster=self.cluster.node_bootstrap, network=network, data_key_arn=keys.data,
                                    opts=child)
        node_groups = list(self.node_pools.node_groups.values())
        self.node_addons = NodeAddons("cluster-node-addons", settings.cluster, stack=stack,
                                      cluster_name=self.cluster.cluster.name, oidc=self.cluster.oidc,
                                      data_key_arn=keys.data, node_groups=node_groups, opts=child)

        # MSK and Redis admit only the EKS nodes and the endpoints' own security group.
        self.serving = ServingSecurityGroup("serving", stack=stack, network=network, opts=child)
        data_clients = [self.cluster.node_security_group.id, self.serving.security_group.id]
        self.streaming = Streaming("streaming", settings.streaming, stack=stack, network=network, keys=keys,
                                   clients=data_clients, opts=child)
        self.feature_store = FeatureStore("feature-store", settings.feature_store, stack=stack, network=network,
                                          keys=keys, clients=data_clients, opts=child)

        self.serving_api_keys = (ServingApiKeys("serving-api-keys", stack=stack, data_key_arn=keys.data, opts=child)
                                 if settings.workloads.serving.api_keys else None)
        api_keys_arn = self.serving_api_keys.secret.arn if self.serving_api_keys else None
        self.workload_identity = WorkloadIdentity(
            "workload-identity", stack=stack, oidc=self.cluster.oidc, vpc_id=network.vpc_id,
            storage=self.storage.refs, keys=keys, feature_store_secret_arn=self.feature_store.secret.arn,
            serving_api_keys_secret_arn=api_keys_arn, opts=child)
        self.kubernetes = KubernetesAddons(
            "kubernetes", settings.kubernetes, node_pools=settings.node_pools, cluster=self.cluster.access,
            service_account_roles={r: role.arn for r, role in self.workload_identity.service_account_roles.items()},
            node_groups=node_groups, opts=child)
        self.telemetry = Telemetry(
            "telemetry", settings.telemetry, stack=stack, cluster=self.cluster.node_bootstrap, oidc=self.cluster.oidc,
            logs_key_arn=keys.logs, node_groups=node_groups, kubernetes=self.kubernetes.target,
            target=ScrapeTarget(SERVICE_ACCOUNTS["serving"].namespace, SERVER_LABELS), opts=child)
        self.cluster_workloads = ClusterWorkloads(
            "workloads", settings.workloads, stack=stack, node_pools=settings.node_pools,
            addons=self.kubernetes.target, storage=self.storage.refs, models_key_arn=keys.models,
            data_key_arn=keys.data, vpc_cidr=settings.network.cidr, autoscaling=self.telemetry.autoscaling,
            feature_store=SharedCache(self.feature_store.endpoint, self.feature_store.secret.arn),
            api_keys_secret_arn=api_keys_arn, opts=child)
        self.monitoring = Monitoring(
            "monitoring", settings.monitoring, stack=stack, key_arn=keys.monitoring,
            endpoints=endpoint_watches(stack, settings.endpoints),
            streaming=StreamingWatch(self.streaming.cluster.cluster_name, self.streaming.broker_count),
            feature_store=FeatureStoreWatch(self.feature_store.group_id, tuple(self.feature_store.member_ids)),
            cluster=ClusterWatch(self.telemetry.metrics, self.cluster_workloads.accelerated_workloads,
                                 tuple(k for k in required_device_plugins(settings.node_pools) if k != "efa")),
            opts=child)
        # The feature pipeline notifies the alarm topic on consumer lag, so it follows monitoring.
        self.features = FeaturePipeline(
            "features", settings.features, stack=stack, oidc=self.cluster.oidc, kubernetes=self.kubernetes.target,
            streaming=FeaturesStreaming(
                cluster_arn=self.streaming.cluster.arn, cluster_name=self.streaming.cluster.cluster_name,
                bootstrap_brokers=self.streaming.bootstrap_brokers,
                consumer_policy_arn=self.streaming.consumer_policy.arn,
                producer_policy_arn=self.streaming.producer_policy.arn),
            online=FeaturesOnlineStore(self.feature_store.endpoint, self.feature_store.secret.arn),
            data=FeaturesData(bucket=self.storage.refs.buckets["datasets"], data_key_arn=keys.data,
                              vpc_cidr=network.cidr, private_subnet_cidrs=settings.network.subnet_layout[0],
                              image=pulumi.Output.concat(self.storage.refs.repositories["training"].url, ":",
                                                         settings.workloads.image_tag)),
            alarm_topic_arn=self.monitoring.topic.arn, opts=child)

        self.inference = Inference("inference", settings.endpoints, stack=stack, network=network, keys=keys,
                                   storage=self.storage.refs, security_group_id=self.serving.security_group.id,
                                   alarms=self.monitoring.endpoint_alarms, opts=child)

        self.outputs: dict[str, Any] = {
            out.ENVIRONMENT: settings.environment,
            out.REGION: settings.region,
            out.VPC_ID: network.vpc_id,
            out.VPC_CIDR: network.cidr,
            out.PRIVATE_SUBNET_IDS: network.private_subnet_ids,
            out.PUBLIC_SUBNET_IDS: network.public_subnet_ids,
            out.AVAILABILITY_ZONES: network.availability_zones,
            **{out.key_arn(domain): key.arn for domain, key in self.keys.keys.items()},
            **{out.bucket_name(role): bucket.name for role, bucket in self.storage.refs.buckets.items()},
            **{out.repository_url(repo): r.url for repo, r in self.storage.refs.repositories.items()},
            out.CLUSTER_NAME: self.cluster.cluster.name,
            out.CLUSTER_ENDPOINT: self.cluster.endpoint,
            out.CLUSTER_OIDC_PROVIDER_ARN: self.cluster.oidc.provider_arn,
            out.NODE_SECURITY_GROUP_ID: self.cluster.node_security_group.id,
            out.NODE_GROUPS: {name: g.node_group_name for name, g in self.node_pools.node_groups.items()},
            **{out.node_pool(name): line for name, line in self.node_pools.summary.items()},
            out.TRAINING_ROLE_ARN: self.workload_identity.sagemaker_training_role.arn,
            out.TRAINING_SECURITY_GROUP_ID: self.workload_identity.training_security_group.id,
            out.CHECKPOINT_S3_URI: pulumi.Output.concat("s3://", self.storage.refs.buckets["datasets"].name, "/",
                                                        CHECKPOINTS),
            **{out.service_account_role_arn(role): r.arn
               for role, r in self.workload_identity.service_account_roles.items()},
            **{out.service_account(role): f"{spec.namespace}/{spec.name}" for role, spec in SERVICE_ACCOUNTS.items()},
            out.KAFKA_CLUSTER_ARN: self.streaming.cluster.arn,
            out.KAFKA_BOOTSTRAP_BROKERS: self.streaming.bootstrap_brokers,
            out.KAFKA_PRODUCER_POLICY_ARN: self.streaming.producer_policy.arn,
            out.KAFKA_CONSUMER_POLICY_ARN: self.streaming.consumer_policy.arn,
            out.FEATURE_STORE_ENDPOINT: self.feature_store.endpoint,
            out.FEATURE_STORE_READER_ENDPOINT: self.feature_store.reader_endpoint,
            out.FEATURE_STORE_SECRET_ARN: self.feature_store.secret.arn,
            **({out.SERVING_API_KEYS_SECRET_ARN: api_keys_arn} if api_keys_arn is not None else {}),
            out.FEATURES_NAMESPACE: settings.features.namespace,
            out.FEATURES_REGISTRY_ARN: self.features.registry.arn,
            out.FEATURES_PRODUCER_ROLE_ARN: self.features.producer_role.arn,
            out.SERVING_SECURITY_GROUP_ID: self.serving.security_group.id,
            out.ALARM_TOPIC_ARN: self.monitoring.topic.arn,
            out.DASHBOARD_NAME: self.monitoring.dashboard.dashboard_name,
            out.CLUSTER_DASHBOARD_NAME: self.monitoring.cluster_dashboard.dashboard_name,
            out.INFERENCE_ENDPOINTS: self.inference.summary,
            **self.inference.descriptions,
        }
        self.register_outputs(self.outputs)
