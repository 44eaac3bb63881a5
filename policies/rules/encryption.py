"""Encryption at rest with customer-managed KMS keys, and in transit, for every store the platform declares."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from contracts.instances import LOCAL_NVME_FAMILIES, family_of

from .core import Resource, RuleSet, Stack, Violation, find_all, items, policy_json, statements, truthy
from .types import (ECR_REPOSITORY, EKS_CLUSTER, KARPENTER_NODE_CLASS, KMS_KEY, LAUNCH_TEMPLATE, LOG_GROUP, MSK_CLUSTER, REDIS_GROUP,
                    S3_BUCKET_POLICY, S3_BUCKETS, S3_SSE, SAGEMAKER_ENDPOINT_CONFIG, SNS_TOPIC)

rules = RuleSet("encryption")

KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
AWS_MANAGED_KEY_PREFIX = "alias/aws/"

# SageMaker refuses a KMS key for the ML storage volume of local-NVMe instances (the catalog says which).


def _customer_key(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and not value.startswith(AWS_MANAGED_KEY_PREFIX)


def _sse_problems(props: Mapping[str, Any]) -> Iterator[str]:
    for algorithm in find_all(props, "sseAlgorithm"):
        if algorithm not in KMS_ALGORITHMS:
            yield f"default encryption uses {algorithm!r}, not a customer-managed KMS key (aws:kms)"
    keys = find_all(props, "kmsMasterKeyId")
    if find_all(props, "sseAlgorithm") and not any(_customer_key(k) for k in keys):
        yield "default encryption names no customer-managed KMS key (kmsMasterKeyId)"


@rules.resource(
    "s3-inline-encryption-cmk", types=S3_BUCKETS, severity="high",
    description="A bucket's inline default encryption, where declared, uses a customer-managed KMS key.",
    remediation="Set serverSideEncryptionConfiguration to aws:kms with the data domain's key ARN, or declare a "
                "BucketServerSideEncryptionConfiguration resource instead.")
def s3_inline_encryption(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    yield from _sse_problems({k: resource.props.get(k) for k in ("serverSideEncryptionConfiguration",
                                                                  "serverSideEncryptionConfigurations")})


@rules.resource(
    "s3-encryption-configuration-cmk", types=S3_SSE, severity="high",
    description="Bucket encryption configurations use aws:kms with a customer-managed key.",
    remediation="Use rules=[{applyServerSideEncryptionByDefault: {sseAlgorithm: 'aws:kms', "
                "kmsMasterKeyId: <key ARN>}, bucketKeyEnabled: true}].")
def s3_encryption_configuration(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if not find_all(resource.props, "sseAlgorithm"):
        yield "declares no default encryption rule"
    yield from _sse_problems(resource.props)


@rules.stack(
    "s3-bucket-tls-only", severity="high",
    description="Every bucket's policy denies requests that do not use TLS (aws:SecureTransport = false).",
    remediation="Attach a BucketPolicy with a Deny statement for s3:* when aws:SecureTransport is false.")
def s3_tls_only(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for bucket in stack.of_type(*S3_BUCKETS):
        documents = [policy_json(bucket.props.get("policy"))]
        documents += [policy_json(p.props.get("policy"))
                      for p in stack.referrers(bucket, [S3_BUCKET_POLICY], "bucket")]
        if not any(_denies_plain_http(doc) for doc in documents):
            yield Violation(f"bucket {bucket.name} has no policy that denies non-TLS requests", bucket.urn)


def _denies_plain_http(document: Mapping[str, Any] | None) -> bool:
    for statement in statements(document):
        condition = statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport") if isinstance(condition, Mapping) else None
        if statement.get("Effect") == "Deny" and str(secure).lower() == "false":
            return True
    return False


@rules.resource(
    "launch-template-ebs-encrypted", types=(LAUNCH_TEMPLATE, KARPENTER_NODE_CLASS), severity="high",
    description="Launch templates and Karpenter EC2NodeClasses encrypt every EBS volume, the root volume "
                "included, with a customer-managed KMS key.",
    remediation="Declare blockDeviceMappings with ebs={encrypted: 'true', kmsKeyId: <data key ARN>} for the root "
                "volume (and any other volume); an EC2NodeClass sets spec.blockDeviceMappings[].ebs={encrypted: "
                "true, kmsKeyID: <data key ARN>} with rootVolume: true.")
def launch_template_ebs(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    node_class = resource.type == KARPENTER_NODE_CLASS
    props = (resource.props.get("spec") or {}) if node_class else resource.props
    key_field = "kmsKeyID" if node_class else "kmsKeyId"
    mappings = items(props.get("blockDeviceMappings"))
    if not mappings:
        yield "declares no block device mappings, so the root volume is not encrypted with a customer key"
    for mapping in mappings:
        device = mapping.get("deviceName", "?")
        ebs = mapping.get("ebs") or {}
        if not ebs:
            continue
        if not truthy(ebs.get("encrypted")):
            yield f"EBS volume {device} is not encrypted (ebs.encrypted must be {'true' if node_class else repr('true')})"
        elif not _customer_key(ebs.get(key_field)):
            yield f"EBS volume {device} is encrypted with the AWS-managed key; set ebs.{key_field}"


@rules.resource(
    "eks-secrets-encryption", types=(EKS_CLUSTER,), severity="high",
    description="EKS clusters envelope-encrypt Kubernetes secrets with a customer-managed KMS key.",
    remediation="Set encryptionConfig={resources: ['secrets'], provider: {keyArn: <cluster key ARN>}}.")
def eks_secrets(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    configs = items(resource.props.get("encryptionConfig"))
    good = [c for c in configs if "secrets" in (c.get("resources") or [])
            and _customer_key((c.get("provider") or {}).get("keyArn"))]
    if not good:
        yield "Kubernetes secrets are not envelope-encrypted with a customer-managed key (encryptionConfig)"


@rules.resource(
    "msk-encryption", types=(MSK_CLUSTER,), severity="high",
    description="MSK encrypts data at rest with a customer-managed key and uses TLS between clients and brokers "
                "and inside the cluster.",
    remediation="Set encryptionInfo={encryptionAtRestKmsKeyArn: <streaming key>, encryptionInTransit: "
                "{clientBroker: 'TLS', inCluster: true}}.")
def msk_encryption(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    info = resource.props.get("encryptionInfo") or {}
    if not _customer_key(info.get("encryptionAtRestKmsKeyArn")):
        yield "data at rest uses the AWS-managed key; set encryptionInfo.encryptionAtRestKmsKeyArn"
    transit = info.get("encryptionInTransit") or {}
    if transit.get("clientBroker", "TLS") != "TLS":
        yield f"client-broker traffic allows plain text (clientBroker = {transit.get('clientBroker')!r}; allowed: TLS)"
    if transit.get("inCluster") is False:
        yield "traffic between brokers is not encrypted (encryptionInTransit.inCluster = false)"


@rules.resource(
    "elasticache-encryption", types=(REDIS_GROUP,), severity="high",
    description="Redis replication groups encrypt at rest with a customer-managed key and require TLS.",
    remediation="Set atRestEncryptionEnabled=true, kmsKeyId=<data key ARN>, transitEncryptionEnabled=true and "
                "transitEncryptionMode='required'.")
def elasticache_encryption(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    props = resource.props
    if not truthy(props.get("atRestEncryptionEnabled")):
        yield "data at rest is not encrypted (atRestEncryptionEnabled)"
    elif not _customer_key(props.get("kmsKeyId")):
        yield "data at rest uses the AWS-managed key; set kmsKeyId"
    if not truthy(props.get("transitEncryptionEnabled")):
        yield "clients may connect without TLS (transitEncryptionEnabled)"
    elif props.get("transitEncryptionMode") == "preferred":
        yield "TLS is only preferred (transitEncryptionMode = 'preferred'; allowed: required)"


@rules.resource(
    "sagemaker-endpoint-storage-cmk", types=(SAGEMAKER_ENDPOINT_CONFIG,), severity="high",
    description="SageMaker endpoint configurations encrypt the instances' ML storage volume with a customer key "
                "(instances with local NVMe storage are hardware-encrypted and exempt).",
    remediation="Set kmsKeyArn=<models key ARN> on the endpoint configuration.")
def sagemaker_storage(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    variants = items(resource.props.get("productionVariants")) + items(resource.props.get("shadowProductionVariants"))
    needs_key = [v for v in variants if v.get("instanceType")
                 and family_of(str(v["instanceType"])) not in LOCAL_NVME_FAMILIES]
    if needs_key and not _customer_key(resource.props.get("kmsKeyArn")):
        types = sorted({str(v["instanceType"]) for v in needs_key})
        yield f"ML storage volumes of {', '.join(types)} are not encrypted with a customer key (kmsKeyArn)"


@rules.resource(
    "sagemaker-data-capture-cmk", types=(SAGEMAKER_ENDPOINT_CONFIG,), severity="high",
    description="Endpoint data capture (requests and responses) is written to S3 encrypted with a customer key.",
    remediation="Set dataCaptureConfig.kmsKeyId=<data key ARN> and capture to the datasets bucket.")
def sagemaker_capture(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    capture = resource.props.get("dataCaptureConfig")
    for block in items(capture):
        if block.get("enableCapture") is False:
            continue
        if not _customer_key(block.get("kmsKeyId")):
            yield "data capture is written without a customer-managed key (dataCaptureConfig.kmsKeyId)"
        destination = str(block.get("destinationS3Uri") or "")
        if destination and not destination.startswith("s3://"):
            yield f"data capture destination {destination!r} is not an S3 URI"


@rules.resource(
    "log-group-cmk", types=(LOG_GROUP,), severity="medium",
    description="CloudWatch log groups are encrypted with a customer-managed key.",
    remediation="Declare log groups with components.log_groups.encrypted_log_group (kmsKeyId = logs key ARN).")
def log_group_key(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if not _customer_key(resource.props.get("kmsKeyId")):
        yield "log group is not encrypted with a customer-managed key (kmsKeyId)"


@rules.resource(
    "sns-topic-cmk", types=(SNS_TOPIC,), severity="medium",
    description="SNS topics are encrypted with a customer-managed key (not alias/aws/sns, which CloudWatch "
                "cannot publish to).",
    remediation="Set kmsMasterKeyId=<monitoring key ARN>.")
def sns_key(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if not _customer_key(resource.props.get("kmsMasterKeyId")):
        yield f"topic is not encrypted with a customer-managed key (kmsMasterKeyId = {resource.props.get('kmsMasterKeyId')!r})"


@rules.resource(
    "ecr-cmk", types=(ECR_REPOSITORY,), severity="medium",
    description="ECR repositories encrypt images with a customer-managed KMS key.",
    remediation="Set encryptionConfigurations=[{encryptionType: 'KMS', kmsKey: <models key ARN>}].")
def ecr_key(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    blocks = items(resource.props.get("encryptionConfigurations"))
    if not any(b.get("encryptionType") == "KMS" and _customer_key(b.get("kmsKey")) for b in blocks):
        yield "images are encrypted with AES256 or the AWS-managed key, not a customer key"


@rules.resource(
    "kms-key-rotation", types=(KMS_KEY,), severity="high",
    description="Symmetric customer-managed keys rotate their key material yearly.",
    remediation="Set enableKeyRotation=true.")
def kms_rotation(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    spec = resource.props.get("customerMasterKeySpec") or resource.props.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and not truthy(resource.props.get("enableKeyRotation")):
        yield "key rotation is disabled (enableKeyRotation)"


@rules.resource(
    "kms-key-policy-no-public", types=(KMS_KEY,), severity="critical",
    description="Key policies never allow any principal ('*') without a condition that narrows it.",
    remediation="Grant the account root (arn:<partition>:iam::<account>:root) and named service principals; "
                "add a Condition (aws:SourceAccount, kms:CallerAccount) to any '*' principal.")
def kms_policy(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    for statement in statements(policy_json(resource.props.get("policy"))):
        if statement.get("Effect") == "Allow" and _wildcard_principal(statement.get("Principal")) \
                and not statement.get("Condition"):
            yield f"statement {statement.get('Sid', '(no Sid)')!r} allows any principal without a condition"


def _wildcard_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(v == "*" or (isinstance(v, list) and "*" in v) for v in principal.values())
    return False
