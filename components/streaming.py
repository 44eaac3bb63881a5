"""MSK: a provisioned Kafka cluster reachable only over TLS with IAM authentication, from named peers only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.encryption import KeyArns
from components.iam import policy_document
from components.log_groups import encrypted_log_group
from components.network import VpcNetwork
from components.security_groups import peer_only_security_group
from components.settings import StackIdentity, StreamingSettings, replication_defaults
from contracts.ports import KAFKA_IAM as KAFKA_IAM_PORT  # the only listener this cluster opens


def server_properties(config: StreamingSettings, brokers: int) -> str:
    """Broker defaults: no topic appears by accident, and with 3+ brokers a write survives one broker loss."""
    replication, min_insync = replication_defaults(brokers)
    lines = {
        "auto.create.topics.enable": "false",
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_insync),
        "num.partitions": str(config.default_partitions),
        "log.retention.hours": str(config.retention_hours),
        "unclean.leader.election.enable": "false",
        "delete.topic.enable": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def kafka_resource_arn(cluster_arn: pulumi.Output[str], kind: str, name: str) -> pulumi.Output[str]:
    """Topic/group ARNs share the cluster ARN's `<cluster-name>/<cluster-uuid>` tail under another kind."""
    return cluster_arn.apply(lambda arn: arn.replace(":cluster/", f":{kind}/", 1) + f"/{name}")


class Streaming(pulumi.ComponentResource):
    """The MSK cluster, its configuration, storage autoscaling, security group and client IAM policies."""

    cluster: aws.msk.Cluster
    security_group: aws.ec2.SecurityGroup
    producer_policy: aws.iam.Policy
    consumer_policy: aws.iam.Policy

    def __init__(self, name: str, settings: StreamingSettings, *, stack: StackIdentity, network: VpcNetwork,
                 keys: KeyArns, clients: Sequence[pulumi.Input[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:streaming:Streaming", name, None, opts)
        config = settings
        child = pulumi.ResourceOptions(parent=self)
        self.broker_count = config.broker_count(len(network.availability_zones))
        self.cluster_name = stack.name("kafka")

        self.security_group, self.client_rules = peer_only_security_group(
            f"{name}-brokers", rule_prefix=f"{name}-client", vpc_id=network.vpc_id,
            group_name=stack.name("kafka-brokers"),
            description="MSK brokers: Kafka SASL/IAM over TLS from the named client security groups only",
            port=KAFKA_IAM_PORT, clients=clients, rule_description="Kafka SASL/IAM over TLS from a platform client",
            parent=self)

        self.log_group = encrypted_log_group(
            f"{name}-broker-logs", log_group_name=f"/aiinfra/{stack.stack}/msk/{self.cluster_name}",
            retention_days=config.log_retention_days, kms_key_arn=keys.logs, parent=self)
        self.configuration = aws.msk.Configuration(
            f"{name}-config", name=stack.name("kafka-config"), kafka_versions=[config.kafka_version],
            description="aiinfra broker defaults: explicit topics, replicated writes",
            server_properties=server_properties(config, self.broker_count), opts=child)

        self.cluster = aws.msk.Cluster(
            name, cluster_name=self.cluster_name, kafka_version=config.kafka_version,
            number_of_broker_nodes=self.broker_count,
            broker_node_group_info={
                "instance_type": config.broker_instance_type,
                "client_subnets": network.private_subnet_ids,
                "security_groups": [self.security_group.id],
                "az_distribution": "DEFAULT",
                "storage_info": {"ebs_storage_info": {"volume_size": config.volume_size_gb}},
            },
            encryption_info={
                "encryption_at_rest_kms_key_arn": keys.streaming,
                "encryption_in_transit": {"client_broker": "TLS", "in_cluster": True},
            },
            client_authentication={"sasl": {"iam": True}, "unauthenticated": False},
            configuration_info={"arn": self.configuration.arn, "revision": self.configuration.latest_revision},
            # Metrics go to CloudWatch; the Prometheus exporters stay off, as their ports would be a second way in.
            enhanced_monitoring=config.enhanced_monitoring,
            logging_info={"broker_logs": {"cloudwatch_logs": {"enabled": True, "log_group": self.log_group.name}}},
            tags={"Name": self.cluster_name},
            # Storage only grows through the autoscaling policy; don't fight it on the next update.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize"]))
        self._storage_autoscaling(name, config)
        self._client_policies(name, stack, config)

        self.bootstrap_brokers = self.cluster.bootstrap_brokers_sasl_iam
        self.register_outputs({
            "clusterArn": self.cluster.arn,
            "bootstrapBrokers": self.bootstrap_brokers,
            "securityGroupId": self.security_group.id,
            "producerPolicyArn": self.producer_policy.arn,
            "consumerPolicyArn": self.consumer_policy.arn,
        })

    def _storage_autoscaling(self, name: str, config: StreamingSettings) -> None:
        child = pulumi.ResourceOptions(parent=self)
        self.storage_target = aws.appautoscaling.Target(
            f"{name}-storage", service_namespace="kafka", scalable_dimension="kafka:broker-storage:VolumeSize",
            resource_id=self.cluster.arn, min_capacity=1, max_capacity=config.max_volume_size_gb, opts=child)
        self.storage_policy = aws.appautoscaling.Policy(
            f"{name}-storage", name=f"{self.cluster_name}-storage", policy_type="TargetTrackingScaling",
            service_namespace=self.storage_target.service_namespace,
            scalable_dimension=self.storage_target.scalable_dimension, resource_id=self.storage_target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": config.storage_target_utilization,
                "disable_scale_in": True,
                "predefined_metric_specification": {"predefined_metric_type": "KafkaBrokerStorageUtilization"},
            }, opts=child)

    def _client_policies(self, name: str, stack: StackIdentity, config: StreamingSettings) -> None:
        """Managed policies workloads attach (IRSA roles, endpoint roles): this cluster and its topics only."""
        arn = self.cluster.arn
        topics = [kafka_resource_arn(arn, "topic", topic) for topic in config.topics]
        groups = kafka_resource_arn(arn, "group", f"{stack.name('')}*")
        connect: dict[str, Any] = {"Sid": "Connect", "Effect": "Allow",
                                   "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
                                   "Resource": arn}
        producer = policy_document([
            {**connect, "Action": [*connect["Action"], "kafka-cluster:WriteDataIdempotently"]},
            {"Sid": "WriteTopics", "Effect": "Allow",
             "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"], "Resource": topics},
        ])
        consumer = policy_document([
            connect,
            {"Sid": "ReadTopics", "Effect": "Allow",
             "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"], "Resource": topics},
            {"Sid": "ConsumerGroups", "Effect": "Allow",
             "Action": ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"], "Resource": groups},
        ])
        child = pulumi.ResourceOptions(parent=self)
        self.producer_policy = aws.iam.Policy(
            f"{name}-producer", name=stack.name("kafka-producer"), policy=producer,
            description=f"Produce to the {self.cluster_name} topics over IAM auth", opts=child)
        self.consumer_policy = aws.iam.Policy(
            f"{name}-consumer", name=stack.name("kafka-consumer"), policy=consumer,
            description=f"Consume the {self.cluster_name} topics in {stack.name('')}* groups", opts=child)
