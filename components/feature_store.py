"""The online feature store: an ElastiCache replication group that is private, encrypted and token-protected."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.encryption import KeyArns
from components.log_groups import encrypted_log_group
from components.network import VpcNetwork
from components.security_groups import peer_only_security_group
from components.settings import FeatureStoreSettings, StackIdentity
from contracts import secrets
from contracts.ports import REDIS as REDIS_PORT


def parameters(config: FeatureStoreSettings) -> list[dict[str, str]]:
    """Tuned for many small, hot reads: bounded memory policy, idle clients reaped, eviction off the main thread."""
    values = {
        "maxmemory-policy": config.maxmemory_policy,
        "timeout": "300",
        "tcp-keepalive": "60",
        "lazyfree-lazy-eviction": "yes",
        "lazyfree-lazy-expire": "yes",
        "activedefrag": "yes",
    }
    return [{"name": key, "value": value} for key, value in values.items()]


class FeatureStore(pulumi.ComponentResource):
    """Redis/Valkey replication group, its auth token in Secrets Manager, and a peer-only security group."""

    group: aws.elasticache.ReplicationGroup
    security_group: aws.ec2.SecurityGroup
    secret: aws.secretsmanager.Secret

    def __init__(self, name: str, settings: FeatureStoreSettings, *, stack: StackIdentity, network: VpcNetwork,
                 keys: KeyArns, clients: Sequence[pulumi.Input[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:feature_store:FeatureStore", name, None, opts)
        config = settings
        child = pulumi.ResourceOptions(parent=self)
        self.group_id = stack.name("features")
        self.node_count = 1 + config.replicas
        # ElastiCache names the member clusters of a cluster-mode-disabled group `<group id>-001`, `-002`, ...
        self.member_ids = [f"{self.group_id}-{i:03d}" for i in range(1, self.node_count + 1)]
        highly_available = config.replicas >= 1

        self.security_group, self.client_rules = peer_only_security_group(
            f"{name}-redis", rule_prefix=f"{name}-client", vpc_id=network.vpc_id,
            group_name=stack.name("feature-store"),
            description="Feature store: Redis TLS port from the named client security groups only",
            port=REDIS_PORT, clients=clients, rule_description="Redis over TLS from a platform client", parent=self)
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets", name=stack.name("feature-store"), subnet_ids=network.private_subnet_ids,
            description="Feature store nodes: private subnets only", opts=child)
        parameter_group = aws.elasticache.ParameterGroup(
            f"{name}-params", name=stack.name(f"feature-store-{config.family.replace('.', '-')}"),
            family=config.family, description="Online feature store: bounded memory, fast eviction",
            parameters=parameters(config), opts=child)
        slow_log = encrypted_log_group(
            f"{name}-slow-log", log_group_name=f"/aiinfra/{stack.stack}/elasticache/{self.group_id}/slow-log",
            retention_days=config.slow_log_retention_days, kms_key_arn=keys.logs, parent=self)

        # Generated at deploy time, stored as a secret in state, handed to clients only through Secrets Manager.
        # An explicit provider, as for AWS: the resource names its provider in state instead of an engine default.
        generator = random.Provider(f"{name}-random", opts=child)
        token = random.RandomPassword(f"{name}-auth-token", length=64, special=False,
                                      opts=pulumi.ResourceOptions(parent=self, provider=generator))
        self.group = aws.elasticache.ReplicationGroup(
            name, replication_group_id=self.group_id, description="Online feature store",
            engine=config.engine, engine_version=config.engine_version, node_type=config.node_type,
            num_cache_clusters=self.node_count, port=REDIS_PORT,
            preferred_cache_cluster_azs=[network.availability_zones[i % len(network.availability_zones)]
                                         for i in range(self.node_count)],
            automatic_failover_enabled=highly_available, multi_az_enabled=highly_available,
            subnet_group_name=subnets.name, security_group_ids=[self.security_group.id],
            parameter_group_name=parameter_group.name,
            at_rest_encryption_enabled=True, kms_key_id=keys.data,
            transit_encryption_enabled=True, transit_encryption_mode="required",
            auth_token=token.result, auth_token_update_strategy="ROTATE",
            snapshot_retention_limit=config.snapshot_retention_days,
            snapshot_window="03:00-04:00" if config.snapshot_retention_days else None,
            maintenance_window="sun:05:00-sun:06:00",
            final_snapshot_identifier=f"{self.group_id}-final" if config.snapshot_retention_days else None,
            auto_minor_version_upgrade=True, apply_immediately=config.apply_immediately,
            log_delivery_configurations=[{"destination": slow_log.name, "destination_type": "cloudwatch-logs",
                                          "log_format": "json", "log_type": "slow-log"}],
            tags={"Name": self.group_id}, opts=child)

        self.secret = aws.secretsmanager.Secret(
            f"{name}-auth", name=f"{stack.project}/{stack.stack}/feature-store/auth",
            description="Feature store connection: host, port, TLS and AUTH token", kms_key_id=keys.data,
            recovery_window_in_days=config.secret_recovery_days, opts=child)
        aws.secretsmanager.SecretVersion(
            f"{name}-auth", secret_id=self.secret.id,
            secret_string=pulumi.Output.json_dumps({
                secrets.FEATURE_STORE_HOST: self.group.primary_endpoint_address,
                secrets.FEATURE_STORE_READER_HOST: self.group.reader_endpoint_address,
                secrets.FEATURE_STORE_PORT: REDIS_PORT, secrets.FEATURE_STORE_TLS: True,
                secrets.FEATURE_STORE_AUTH_TOKEN: token.result}),
            opts=child)

        self.endpoint = self.group.primary_endpoint_address
        self.reader_endpoint = self.group.reader_endpoint_address
        self.register_outputs({
            "primaryEndpoint": self.endpoint,
            "readerEndpoint": self.reader_endpoint,
            "authSecretArn": self.secret.arn,
            "securityGroupId": self.security_group.id,
        })
