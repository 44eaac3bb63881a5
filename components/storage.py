"""Buckets for datasets, models and logs, and the image repositories the workloads are pulled from."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.context import AccountContext
from components.encryption import KeyArns
from components.iam import policy_document
from components.settings import StackIdentity, StorageSettings


@dataclass(frozen=True)
class BucketSpec:
    role: str
    key_domain: str
    purpose: str


BUCKETS = (
    BucketSpec("datasets", "data", "training and validation data, checkpoints, endpoint data capture"),
    BucketSpec("models", "models", "trained and compiled model artifacts"),
    BucketSpec("logs", "logs", "training logs and exported metrics"),
)
REPOSITORIES = ("training", "compilation", "serving")


@dataclass(frozen=True)
class BucketRef:
    """A bucket as its users see it: the name (for URIs) and the ARN (for policies)."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]


@dataclass(frozen=True)
class RepositoryRef:
    """An image repository as its users see it: the URL (for image references) and the ARN (for policies)."""

    url: pulumi.Output[str]
    arn: pulumi.Output[str]


@dataclass(frozen=True)
class StorageRefs:
    """The buckets by role (datasets, models, logs) and the repositories by workload."""

    buckets: dict[str, BucketRef]
    repositories: dict[str, RepositoryRef]


def tls_only_policy(bucket_arn: pulumi.Output[str]) -> pulumi.Output[str]:
    """Deny any request over plain HTTP or TLS older than 1.2, and uploads that name another encryption."""
    objects = pulumi.Output.concat(bucket_arn, "/*")
    return policy_document([
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [bucket_arn, objects], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "DenyOutdatedTls", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [bucket_arn, objects], "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}}},
        {"Sid": "DenyNonKmsUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": objects,
         "Condition": {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
    ])


def image_lifecycle_policy(keep_tagged: int) -> str:
    """Untagged layers go after a week; only the newest tagged images are kept."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": "expire untagged images after 7 days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": 7},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the newest {keep_tagged} images",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_tagged},
         "action": {"type": "expire"}},
    ]})


class Storage(pulumi.ComponentResource):
    """Private, versioned, KMS-encrypted buckets and immutable, scanned, KMS-encrypted ECR repositories."""

    buckets: dict[str, aws.s3.Bucket]
    repositories: dict[str, aws.ecr.Repository]
    refs: StorageRefs

    def __init__(self, name: str, settings: StorageSettings, *, stack: StackIdentity, keys: KeyArns,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:storage:Storage", name, None, opts)
        config = settings
        ctx = AccountContext.lookup(stack.region, self)
        self.buckets = {spec.role: self._bucket(name, spec, stack, config, ctx, keys) for spec in BUCKETS}
        self.repositories = {repo: self._repository(name, repo, stack, config, keys) for repo in REPOSITORIES}
        self.refs = StorageRefs(
            buckets={role: BucketRef(b.bucket, b.arn) for role, b in self.buckets.items()},
            repositories={repo: RepositoryRef(r.repository_url, r.arn) for repo, r in self.repositories.items()})
        self.register_outputs({
            **{f"{role}Bucket": bucket.bucket for role, bucket in self.buckets.items()},
            **{f"{repo}RepositoryUrl": r.repository_url for repo, r in self.repositories.items()},
        })

    def _bucket(self, name: str, spec: BucketSpec, stack: StackIdentity, config: StorageSettings,
                ctx: AccountContext, keys: KeyArns) -> aws.s3.Bucket:
        rid = f"{name}-{spec.role}"
        child = pulumi.ResourceOptions(parent=self)
        # Bucket names are global: the account id and region make them unique without random suffixes.
        bucket = aws.s3.Bucket(
            rid, bucket=pulumi.Output.concat(stack.name(spec.role), "-", ctx.account_id, "-", stack.region),
            force_destroy=config.force_destroy, tags={"purpose": spec.purpose}, opts=child)
        after = pulumi.ResourceOptions(parent=self, depends_on=[bucket])
        aws.s3.BucketOwnershipControls(
            rid, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=after)
        aws.s3.BucketPublicAccessBlock(
            rid, bucket=bucket.id, block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
            restrict_public_buckets=True, opts=after)
        aws.s3.BucketServerSideEncryptionConfiguration(
            rid, bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms", "kms_master_key_id": getattr(keys, spec.key_domain)},
                "bucket_key_enabled": True}],
            opts=after)
        versioning = aws.s3.BucketVersioning(
            rid, bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=after)
        aws.s3.BucketPolicy(rid, bucket=bucket.id, policy=tls_only_policy(bucket.arn), opts=after)
        aws.s3.BucketLifecycleConfiguration(
            rid, bucket=bucket.id, rules=self._lifecycle_rules(spec, config),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]))
        return bucket

    @staticmethod
    def _lifecycle_rules(spec: BucketSpec, config: StorageSettings) -> list[dict[str, object]]:
        rules: list[dict[str, object]] = [
            {"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {},
             "abort_incomplete_multipart_upload": {"days_after_initiation": 7}},
            {"id": "expire-noncurrent-versions", "status": "Enabled", "filter": {},
             "noncurrent_version_expiration": {"noncurrent_days": config.noncurrent_version_days}},
        ]
        if spec.role == "logs":
            rules.append({"id": "expire-logs", "status": "Enabled", "filter": {},
                          "expiration": {"days": config.log_expiration_days}})
        if spec.role == "logs" and config.log_expiration_days > config.infrequent_access_after_days:
            rules.append({"id": "logs-to-infrequent-access", "status": "Enabled", "filter": {},
                          "transitions": [{"days": config.infrequent_access_after_days,
                                           "storage_class": "STANDARD_IA"}]})
        elif spec.role == "datasets":
            rules.append({"id": "datasets-intelligent-tiering", "status": "Enabled", "filter": {},
                          "transitions": [{"days": config.infrequent_access_after_days,
                                           "storage_class": "INTELLIGENT_TIERING"}]})
        return rules

    def _repository(self, name: str, repo: str, stack: StackIdentity, config: StorageSettings,
                    keys: KeyArns) -> aws.ecr.Repository:
        child = pulumi.ResourceOptions(parent=self)
        repository = aws.ecr.Repository(
            f"{name}-{repo}", name=f"{stack.project}/{stack.stack}/{repo}",
            image_tag_mutability="IMMUTABLE", image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": keys.models}],
            force_delete=config.force_destroy, opts=child)
        aws.ecr.LifecyclePolicy(f"{name}-{repo}", repository=repository.name,
                                policy=image_lifecycle_policy(config.image_retention_count), opts=child)
        return repository
