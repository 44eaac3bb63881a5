"""AiPlatform: the whole platform for one stack, composed from settings in dependency order."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster
from components.cluster_workloads import ClusterWorkloads
from components.compute_settings import CHECKPOINTS
from components.encryption import EncryptionKeys
from components.feature_store import FeatureStore
from components.inference import Inference, ServingSecurityGroup
from components.kubernetes_addons import KubernetesAddons
from components.monitoring import Monitoring
from components.network import Network
from components.node_pools import NodePools
from components.settings import PlatformSettings
from components.storage import Storage
from components.streaming import Streaming
from components.workload_identity import SERVICE_ACCOUNTS, WorkloadIdentity


class AiPlatform(pulumi.ComponentResource):
    """Builds every child component and gives each only the settings slice and upstream outputs it needs."""

    def __init__(self, name: str, settings: PlatformSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:platform:AiPlatform", name, None, opts)
        self.settings = settings
        # One provider carries the required tags as default tags: applied in one place, to every resource.
        self.provider = aws.Provider(
            f"{name}-aws", region=settings.region, default_tags={"tags": settings.tags},
            opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, providers={"aws": self.provider})

        self.keys = EncryptionKeys("keys", settings, opts=child)
        self.network = Network("network", settings, keys=self.keys, opts=child)
        self.storage = Storage("storage", settings, keys=self.keys, opts=child)
        self.cluster = Cluster("cluster", settings, network=self.network, keys=self.keys, opts=child)
        self.node_pools = NodePools("node-pools", settings, cluster=self.cluster, network=self.network,
                                    keys=self.keys, opts=child)
        node_groups = list(self.node_pools.node_groups.values())
        self.cluster.install_node_addons(node_groups, data_key_arn=self.keys.arn("data"))
        self.workload_identity = WorkloadIdentity("workload-identity", settings, cluster=self.cluster,
                                                  network=self.network, storage=self.storage, keys=self.keys,
                                                  opts=child)
        self.kubernetes = KubernetesAddons("kubernetes", settings, cluster=self.cluster,
                                           identity=self.workload_identity, node_groups=node_groups, opts=child)
        # Data and serving services: MSK and Redis admit only the EKS nodes and the endpoints; monitoring comes
        # before the endpoints because their blue/green rollout rolls back on its alarms.
        self.serving = ServingSecurityGroup("serving", settings, network=self.network, opts=child)
        data_clients = [self.cluster.node_security_group.id, self.serving.security_group.id]
        self.streaming = Streaming("streaming", settings, network=self.network, keys=self.keys,
                                   clients=data_clients, opts=child)
        self.feature_store = FeatureStore("feature-store", settings, network=self.network, keys=self.keys,
                                          clients=data_clients, opts=child)
        # The model servers use the feature store as their shared cache: their role may read its AUTH secret.
        self.workload_identity.grant_feature_store(self.feature_store, self.keys, settings.region)
        self.cluster_workloads = ClusterWorkloads("workloads", settings, addons=self.kubernetes,
                                                  storage=self.storage, keys=self.keys,
                                                  feature_store=self.feature_store, opts=child)
        self.monitoring = Monitoring("monitoring", settings, keys=self.keys, streaming=self.streaming,
                                     feature_store=self.feature_store, opts=child)
        self.inference = Inference("inference", settings, network=self.network, keys=self.keys,
                                   storage=self.storage, security_group=self.serving.security_group,
                                   alarms=self.monitoring.endpoint_alarms, opts=child)

        self.outputs: dict[str, Any] = {
            "environment": settings.environment,
            "region": settings.region,
            "vpcId": self.network.vpc.id,
            "vpcCidr": self.network.cidr,
            "privateSubnetIds": self.network.private_subnet_ids,
            "publicSubnetIds": self.network.public_subnet_ids,
            "availabilityZones": self.network.availability_zones,
            **{f"{domain}KeyArn": key.arn for domain, key in self.keys.keys.items()},
            **{f"{role}BucketName": bucket.bucket for role, bucket in self.storage.buckets.items()},
            **{f"{repo}RepositoryUrl": r.repository_url for repo, r in self.storage.repositories.items()},
            "clusterName": self.cluster.cluster.name,
            "clusterEndpoint": self.cluster.endpoint,
            "clusterOidcProviderArn": self.cluster.oidc_provider.arn,
            "nodeSecurityGroupId": self.cluster.node_security_group.id,
            "nodeGroups": {name: g.node_group_name for name, g in self.node_pools.node_groups.items()},
            **{"nodePool" + "".join(w.title() for w in name.split("-")): line
               for name, line in self.node_pools.summary.items()},
            "trainingRoleArn": self.workload_identity.sagemaker_training_role.arn,
            "trainingSecurityGroupId": self.workload_identity.training_security_group.id,
            "checkpointS3Uri": pulumi.Output.concat("s3://", self.storage.buckets["datasets"].bucket, "/",
                                                   CHECKPOINTS),
            **{f"{role}ServiceAccountRoleArn": r.arn
               for role, r in self.workload_identity.service_account_roles.items()},
            **{f"{role}ServiceAccount": f"{spec.namespace}/{spec.name}" for role, spec in SERVICE_ACCOUNTS.items()},
            "kafkaClusterArn": self.streaming.cluster.arn,
            "kafkaBootstrapBrokers": self.streaming.bootstrap_brokers,
            "kafkaProducerPolicyArn": self.streaming.producer_policy.arn,
            "kafkaConsumerPolicyArn": self.streaming.consumer_policy.arn,
            "featureStoreEndpoint": self.feature_store.endpoint,
            "featureStoreReaderEndpoint": self.feature_store.reader_endpoint,
            "featureStoreSecretArn": self.feature_store.secret.arn,
            "servingSecurityGroupId": self.serving.security_group.id,
            "alarmTopicArn": self.monitoring.topic.arn,
            "dashboardName": self.monitoring.dashboard.dashboard_name,
            "inferenceEndpoints": self.inference.summary,
            **self.inference.descriptions,
        }
        self.register_outputs(self.outputs)
