"""AiPlatform: the whole platform for one stack, composed from settings in dependency order."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster
from components.encryption import EncryptionKeys
from components.network import Network
from components.settings import PlatformSettings
from components.storage import Storage


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
        }
        self.register_outputs(self.outputs)
