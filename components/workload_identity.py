"""IAM for the workloads: IRSA roles for the training, compilation and serving service accounts, and the
SageMaker execution role and security group the training launcher runs jobs with.

Each role may touch only its own slice of the buckets: training reads datasets and writes checkpoints and
trained models, compilation turns trained models into compiled ones, serving reads compiled models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.cluster import OidcIssuer, irsa_role
from components.context import AccountContext
from components.encryption import KeyArns
from components.iam import (policy_document, secret_read_statements, service_assume_role_policy,
                            vpc_interface_statements)
from components.settings import StackIdentity
from components.storage import BucketRef, StorageRefs
from contracts.storage import CHECKPOINTS, COMPILED, TRAINED

KEY_WRITE = ["kms:Decrypt", "kms:GenerateDataKey"]


@dataclass(frozen=True)
class ServiceAccountSpec:
    namespace: str
    name: str
    purpose: str


SERVICE_ACCOUNTS: Mapping[str, ServiceAccountSpec] = {
    "training": ServiceAccountSpec("training", "trainer", "read datasets, write checkpoints and trained models"),
    "compilation": ServiceAccountSpec("training", "compiler", "read trained models, write compiled models"),
    "serving": ServiceAccountSpec("serving", "model-server", "read compiled models"),
}


def _objects(bucket: BucketRef, prefix: str = "") -> pulumi.Output[str]:
    return pulumi.Output.concat(bucket.arn, "/", prefix, "*")


def _list(bucket: BucketRef, *prefixes: str) -> dict[str, Any]:
    """ListBucket, limited to `prefixes` when given."""
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket.arn}
    if prefixes:
        statement["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    return statement


def data_statements(role: str, storage: StorageRefs, keys: KeyArns) -> list[dict[str, Any]]:
    """The S3 and KMS statements for one workload role: nothing beyond its own prefixes and keys."""
    datasets, models = storage.buckets["datasets"], storage.buckets["models"]
    if role == "training":
        return [
            {**_list(datasets), "Sid": "ListDatasets"},
            {"Sid": "ReadDatasets", "Effect": "Allow", "Action": "s3:GetObject", "Resource": _objects(datasets)},
            {"Sid": "WriteCheckpoints", "Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"],
             "Resource": _objects(datasets, CHECKPOINTS)},
            {**_list(models, TRAINED), "Sid": "ListTrainedModels"},
            {"Sid": "WriteTrainedModels", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": _objects(models, TRAINED)},
            {"Sid": "DataKey", "Effect": "Allow", "Action": KEY_WRITE, "Resource": keys.data},
            {"Sid": "ModelsKey", "Effect": "Allow", "Action": KEY_WRITE, "Resource": keys.models},
        ]
    if role == "compilation":
        return [
            {**_list(models, TRAINED, COMPILED), "Sid": "ListModels"},
            {"Sid": "ReadTrainedModels", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": _objects(models, TRAINED)},
            {"Sid": "WriteCompiledModels", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": _objects(models, COMPILED)},
            {"Sid": "ModelsKey", "Effect": "Allow", "Action": KEY_WRITE, "Resource": keys.models},
        ]
    if role == "serving":
        return [
            {**_list(models, COMPILED), "Sid": "ListCompiledModels"},
            {"Sid": "ReadCompiledModels", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": _objects(models, COMPILED)},
            {"Sid": "ModelsKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": keys.models},
        ]
    raise KeyError(role)


def feature_store_statements(secret_arn: pulumi.Input[str], keys: KeyArns,
                             ctx: AccountContext) -> list[dict[str, Any]]:
    """What the model server needs for the shared cache's AUTH token (encrypted with the data key)."""
    return secret_read_statements("FeatureStoreAuthSecret", secret_arn, keys.data, ctx.service_host("secretsmanager"))


class WorkloadIdentity(pulumi.ComponentResource):
    """IRSA roles per service account, plus the SageMaker training role and security group."""

    service_account_roles: dict[str, aws.iam.Role]
    sagemaker_training_role: aws.iam.Role
    training_security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, *, stack: StackIdentity, oidc: OidcIssuer, vpc_id: pulumi.Input[str],
                 storage: StorageRefs, keys: KeyArns, feature_store_secret_arn: pulumi.Input[str],
                 serving_api_keys_secret_arn: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:workload_identity:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ctx = AccountContext.lookup(stack.region, self)
        self.service_account_roles = {}
        policies: dict[str, aws.iam.Policy] = {}
        for role, spec in SERVICE_ACCOUNTS.items():
            policies[role] = aws.iam.Policy(
                f"{name}-{role}-data", description=f"{stack.name(role)}: {spec.purpose}",
                policy=policy_document(data_statements(role, storage, keys)), opts=child)
            irsa = irsa_role(f"{name}-{role}", oidc, spec.namespace, spec.name,
                             description=f"{spec.namespace}/{spec.name}: {spec.purpose}", parent=self)
            aws.iam.RolePolicyAttachment(f"{name}-{role}", role=irsa.name, policy_arn=policies[role].arn,
                                         opts=child)
            self.service_account_roles[role] = irsa
        self._sagemaker_training(name, stack, ctx, vpc_id, storage, keys, policies["training"])
        # The model servers use the feature store as their shared cache: their role may read its AUTH secret.
        # A separate inline policy, so the data policy stays the same for every serving role.
        self.serving_feature_store_policy = aws.iam.RolePolicy(
            f"{name}-serving-feature-store", role=self.service_account_roles["serving"].id,
            policy=policy_document(feature_store_statements(feature_store_secret_arn, keys, ctx)), opts=child)
        if serving_api_keys_secret_arn is not None:
            self.serving_api_keys_policy = aws.iam.RolePolicy(
                f"{name}-serving-api-keys", role=self.service_account_roles["serving"].id,
                policy=policy_document(secret_read_statements("ServingApiKeys", serving_api_keys_secret_arn, keys.data,
                                                              ctx.service_host("secretsmanager"))), opts=child)
        self.register_outputs({
            **{f"{role}ServiceAccountRoleArn": r.arn for role, r in self.service_account_roles.items()},
            "trainingRoleArn": self.sagemaker_training_role.arn,
            "trainingSecurityGroupId": self.training_security_group.id,
        })

    def _sagemaker_training(self, name: str, stack: StackIdentity, ctx: AccountContext, vpc_id: pulumi.Input[str],
                            storage: StorageRefs, keys: KeyArns, data_policy: aws.iam.Policy) -> None:
        """The role and group SageMaker training jobs run with: the same data access as the training pods,
        plus what SageMaker itself needs (image pull, logs, metrics, network interfaces in the VPC)."""
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-sagemaker-training", description="SageMaker training jobs (workloads.training.launch)",
            assume_role_policy=service_assume_role_policy(
                ctx.service_principal("sagemaker"), conditions={"StringEquals": {"aws:SourceAccount": ctx.account_id}}),
            opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-sagemaker-training-data", role=role.name,
                                     policy_arn=data_policy.arn, opts=child)
        log_groups = ctx.arn("logs", "log-group:/aws/sagemaker/TrainingJobs*")
        aws.iam.RolePolicy(
            f"{name}-sagemaker-training-runtime", role=role.id,
            policy=policy_document([
                {"Sid": "PullTrainingImage", "Effect": "Allow",
                 "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                 "Resource": storage.repositories["training"].arn},
                {"Sid": "RegistryToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {"Sid": "Logs", "Effect": "Allow",
                 "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                            "logs:DescribeLogStreams"],
                 "Resource": [log_groups, pulumi.Output.concat(log_groups, ":*")]},
                {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                 "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}},
                *vpc_interface_statements("VpcInterfaces",
                                          ctx.arn("ec2", pulumi.Output.concat("vpc/", vpc_id))),
                {"Sid": "EncryptedVolumes", "Effect": "Allow", "Action": "kms:CreateGrant",
                 "Resource": [keys.data, keys.models],
                 "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
            ]), opts=child)
        self.sagemaker_training_role = role
        group_name = stack.name("sagemaker-training")
        self.training_security_group = aws.ec2.SecurityGroup(
            f"{name}-sagemaker-training", vpc_id=vpc_id, name=group_name,
            description="SageMaker training instances: traffic between the job's own instances",
            tags={"Name": group_name}, opts=child)
        group = self.training_security_group
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-sagemaker-training-self", security_group_id=group.id, referenced_security_group_id=group.id,
            ip_protocol="-1", description="distributed training between the job's instances", opts=child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-sagemaker-training-egress", security_group_id=group.id, cidr_ipv4="0.0.0.0/0",
            ip_protocol="-1", description="S3, ECR and AWS APIs; the job's own instances", opts=child)
