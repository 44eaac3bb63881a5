"""Stack output names: what `__main__.py` exports and what operators and workloads read back.

`workloads.training.launch` reads a stack's outputs (`pulumi stack output --json`); these are the names it
finds there. Per-item names (one per key domain, bucket, repository, service account, node pool, endpoint)
are built by the functions below, the only place their spelling is decided.
"""

from __future__ import annotations

from contracts.config import camel

ENVIRONMENT = "environment"
REGION = "region"
VPC_ID = "vpcId"
VPC_CIDR = "vpcCidr"
PRIVATE_SUBNET_IDS = "privateSubnetIds"
PUBLIC_SUBNET_IDS = "publicSubnetIds"
AVAILABILITY_ZONES = "availabilityZones"
CLUSTER_NAME = "clusterName"
CLUSTER_ENDPOINT = "clusterEndpoint"
CLUSTER_OIDC_PROVIDER_ARN = "clusterOidcProviderArn"
NODE_SECURITY_GROUP_ID = "nodeSecurityGroupId"
NODE_GROUPS = "nodeGroups"
TRAINING_ROLE_ARN = "trainingRoleArn"
TRAINING_SECURITY_GROUP_ID = "trainingSecurityGroupId"
CHECKPOINT_S3_URI = "checkpointS3Uri"
KAFKA_CLUSTER_ARN = "kafkaClusterArn"
KAFKA_BOOTSTRAP_BROKERS = "kafkaBootstrapBrokers"
KAFKA_PRODUCER_POLICY_ARN = "kafkaProducerPolicyArn"
KAFKA_CONSUMER_POLICY_ARN = "kafkaConsumerPolicyArn"
FEATURE_STORE_ENDPOINT = "featureStoreEndpoint"
FEATURE_STORE_READER_ENDPOINT = "featureStoreReaderEndpoint"
FEATURE_STORE_SECRET_ARN = "featureStoreSecretArn"
SERVING_API_KEYS_SECRET_ARN = "servingApiKeysSecretArn"
# The feature pipeline: where event producers run (namespace, the producer role) and the schemas they check.
FEATURES_NAMESPACE = "featuresNamespace"
FEATURES_REGISTRY_ARN = "featuresSchemaRegistryArn"
FEATURES_PRODUCER_ROLE_ARN = "featuresProducerRoleArn"
SERVING_SECURITY_GROUP_ID = "servingSecurityGroupId"
ALARM_TOPIC_ARN = "alarmTopicArn"
DASHBOARD_NAME = "dashboardName"
CLUSTER_DASHBOARD_NAME = "clusterDashboardName"
INFERENCE_ENDPOINTS = "inferenceEndpoints"


def key_arn(domain: str) -> str:
    """`dataKeyArn`, `modelsKeyArn`, ...: the KMS key of one data domain."""
    return f"{domain}KeyArn"


def bucket_name(role: str) -> str:
    """`datasetsBucketName`, `modelsBucketName`, `logsBucketName`."""
    return f"{role}BucketName"


def repository_url(repository: str) -> str:
    """`trainingRepositoryUrl`, `compilationRepositoryUrl`, `servingRepositoryUrl`."""
    return f"{repository}RepositoryUrl"


def service_account_role_arn(role: str) -> str:
    """`trainingServiceAccountRoleArn`, ...: the IRSA role of one workload's service account."""
    return f"{role}ServiceAccountRoleArn"


def service_account(role: str) -> str:
    """`trainingServiceAccount`, ...: `namespace/name` of one workload's service account."""
    return f"{role}ServiceAccount"


def node_pool(pool: str) -> str:
    """`nodePoolTrain`: the one-line summary of a node pool."""
    return camel(f"node-pool-{pool}")


def endpoint(name: str) -> str:
    """`textClassifierEndpoint`: the one-line summary of a SageMaker endpoint."""
    return camel(f"{name}-endpoint")


__all__ = [name for name in dir() if name.isupper() or name in (
    "key_arn", "bucket_name", "repository_url", "service_account_role_arn", "service_account", "node_pool",
    "endpoint")]
