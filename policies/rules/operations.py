"""Operations: rules that look at several resources together (rollout safety, alarms, flow logs, bucket
baselines) plus per-resource hygiene for tags and log retention."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .core import (Resource, RuleSet, Stack, Violation, as_list, find_all, items, number, strings, truthy)
from .types import (ECR_REPOSITORY, EKS_CLUSTER, FLOW_LOG, LOG_GROUP, METRIC_ALARM, MSK_CLUSTER, REDIS_GROUP,
                    S3_BUCKETS, S3_PUBLIC_ACCESS_BLOCK, S3_SSE, S3_VERSIONING, SAGEMAKER_ENDPOINT,
                    SAGEMAKER_ENDPOINT_CONFIG, SCALING_POLICY, SCALING_TARGET, VPC)

rules = RuleSet("operations")


def endpoint_config(stack: Stack, endpoint: Resource) -> Resource | None:
    found = stack.referenced(endpoint, [SAGEMAKER_ENDPOINT_CONFIG], "endpointConfigName")
    return found[0] if found else None


def scaling_targets(stack: Stack, endpoint: Resource) -> list[Resource]:
    name = endpoint.props.get("name")
    return [t for t in stack.of_type(SCALING_TARGET) if t.props.get("serviceNamespace") == "sagemaker"
            and (stack.references(t, endpoint, "resourceId")
                 or (isinstance(name, str) and str(t.props.get("resourceId", "")).startswith(f"endpoint/{name}/")))]


@rules.stack(
    "sagemaker-prod-min-instances", severity="high",
    description="In prod, every SageMaker endpoint variant starts with, and scales down to, at least 2 instances "
                "(one per AZ), so an instance or AZ failure does not take the endpoint down.",
    remediation="Set initialInstanceCount>=2 on each production variant and minCapacity>=2 on its scaling target.")
def prod_min_instances(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for endpoint in stack.of_type(SAGEMAKER_ENDPOINT):
        if endpoint.environment != "prod":
            continue
        cfg = endpoint_config(stack, endpoint)
        for variant in items(cfg.props.get("productionVariants")) if cfg else []:
            count = number(variant.get("initialInstanceCount"), 0) or 0
            if variant.get("serverlessConfig") or count < 2:
                yield Violation(f"endpoint {endpoint.name} variant {variant.get('variantName', '?')} starts with "
                                f"{int(count)} instance(s); prod needs at least 2", endpoint.urn)
        for target in scaling_targets(stack, endpoint):
            floor = number(target.props.get("minCapacity"), 0) or 0
            if floor < 2:
                yield Violation(f"endpoint {endpoint.name} may scale in to {int(floor)} instance(s); prod needs "
                                f"minCapacity >= 2", endpoint.urn)


@rules.stack(
    "sagemaker-safe-rollout", severity="high",
    description="SageMaker endpoints update blue/green with automatic rollback on CloudWatch alarms that exist in "
                "the stack.",
    remediation="Set deploymentConfig={blueGreenUpdatePolicy: {...}, autoRollbackConfiguration: {alarms: "
                "[{alarmName: <alarm declared in this stack>}]}}.")
def safe_rollout(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    alarms = stack.of_type(METRIC_ALARM)
    alarm_names = {a.props.get("name") for a in alarms} | {a.props.get("alarmName") for a in alarms}
    for endpoint in stack.of_type(SAGEMAKER_ENDPOINT):
        deployment = endpoint.props.get("deploymentConfig") or {}
        if not deployment.get("blueGreenUpdatePolicy"):
            yield Violation(f"endpoint {endpoint.name} has no blue/green update policy "
                            f"(deploymentConfig.blueGreenUpdatePolicy)", endpoint.urn)
        rollback = items((deployment.get("autoRollbackConfiguration") or {}).get("alarms"))
        if not rollback:
            yield Violation(f"endpoint {endpoint.name} does not roll back automatically on alarms "
                            f"(deploymentConfig.autoRollbackConfiguration.alarms)", endpoint.urn)
        linked = any(stack.references(endpoint, a, "deploymentConfig") for a in alarms)
        for alarm in rollback:
            name = alarm.get("alarmName")
            if name not in alarm_names and not (name is None and linked):
                yield Violation(f"endpoint {endpoint.name} rolls back on alarm {name!r}, which this stack does "
                                f"not declare", endpoint.urn)


@rules.stack(
    "sagemaker-autoscaling", severity="medium",
    description="Every SageMaker endpoint has an Application Auto Scaling target and a scaling policy.",
    remediation="Declare aws.appautoscaling.Target (serviceNamespace 'sagemaker', resourceId "
                "endpoint/<name>/variant/<variant>) and a target-tracking aws.appautoscaling.Policy on it.")
def autoscaling(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    policies = stack.of_type(SCALING_POLICY)
    for endpoint in stack.of_type(SAGEMAKER_ENDPOINT):
        targets = scaling_targets(stack, endpoint)
        if not targets:
            yield Violation(f"endpoint {endpoint.name} has no auto scaling target", endpoint.urn)
            continue
        for target in targets:
            if not any(stack.references(p, target, "resourceId")
                       or p.props.get("resourceId") == target.props.get("resourceId") for p in policies):
                yield Violation(f"endpoint {endpoint.name}'s scaling target {target.name} has no scaling policy",
                                endpoint.urn)


def _alarm_watches(stack: Stack, alarm: Resource, target: Resource) -> bool:
    dimensions = find_all(alarm.props, "dimensions")
    if stack.references(alarm, target, "dimensions") or stack.references(alarm, target, "metricQueries"):
        return True
    values = strings(dimensions)
    group_id = target.props.get("replicationGroupId")
    # ElastiCache publishes per-node metrics: CacheClusterId is "<replication group id>-00N".
    return isinstance(group_id, str) and any(v == group_id or v.startswith(group_id + "-") for v in values)


@rules.stack(
    "data-services-alarmed", severity="high",
    description="Every SageMaker endpoint, MSK cluster and Redis replication group has at least one CloudWatch "
                "alarm that notifies someone (alarmActions).",
    remediation="Declare MetricAlarms on the service's metrics (dimensions naming it) with alarmActions = [<SNS "
                "topic ARN>].")
def alarmed(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    alarms = stack.of_type(METRIC_ALARM)
    for target in stack.of_type(SAGEMAKER_ENDPOINT, MSK_CLUSTER, REDIS_GROUP):
        watching = [a for a in alarms if _alarm_watches(stack, a, target)]
        if not watching:
            yield Violation(f"{target.type.rsplit(':', 1)[-1]} {target.name} has no CloudWatch alarm", target.urn)
        elif not any(as_list(a.props.get("alarmActions")) for a in watching):
            yield Violation(f"{target.type.rsplit(':', 1)[-1]} {target.name}'s alarms notify nobody (alarmActions)",
                            target.urn)


@rules.stack(
    "vpc-flow-logs", severity="medium",
    description="Every VPC records flow logs.",
    remediation="Declare aws.ec2.FlowLog(vpc_id=vpc.id, traffic_type='ALL') to an encrypted log group.")
def flow_logs(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    logs = stack.of_type(FLOW_LOG)
    for vpc in stack.of_type(VPC):
        if not any(stack.references(f, vpc, "vpcId") for f in logs):
            yield Violation(f"VPC {vpc.name} has no flow log", vpc.urn)


def _buckets_without(stack: Stack, types: tuple[str, ...], ok: Callable[[Mapping[str, Any]], bool]
                     ) -> Iterator[Resource]:
    """Buckets that no companion resource of `types` (referring to the bucket) satisfies."""
    companions = stack.of_type(*types)
    for bucket in stack.of_type(*S3_BUCKETS):
        if not any(stack.references(c, bucket, "bucket") and ok(c.props) for c in companions):
            yield bucket


@rules.stack(
    "s3-bucket-encrypted", severity="high",
    description="Every bucket has default encryption, inline or as a BucketServerSideEncryptionConfiguration.",
    remediation="Declare aws.s3.BucketServerSideEncryptionConfiguration for the bucket with aws:kms and its key.")
def bucket_encrypted(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    inline = ("serverSideEncryptionConfiguration", "serverSideEncryptionConfigurations")
    for bucket in _buckets_without(stack, S3_SSE, lambda p: bool(find_all(p, "sseAlgorithm"))):
        if not any(find_all(bucket.props.get(k), "sseAlgorithm") for k in inline):
            yield Violation(f"bucket {bucket.name} has no default encryption", bucket.urn)


def _versioned(props: Any) -> bool:
    """BucketVersioning's versioningConfiguration.status, or the inline versioning(s).enabled of Bucket/BucketV2."""
    return "Enabled" in find_all(props, "status") or any(truthy(v) for v in find_all(props, "enabled"))


@rules.stack(
    "s3-bucket-versioned", severity="medium",
    description="Every bucket keeps object versions, inline or as a BucketVersioning resource.",
    remediation="Declare aws.s3.BucketVersioning(bucket=..., versioning_configuration={'status': 'Enabled'}).")
def bucket_versioned(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for bucket in _buckets_without(stack, S3_VERSIONING, _versioned):
        if not any(_versioned(bucket.props.get(k)) for k in ("versioning", "versionings")):
            yield Violation(f"bucket {bucket.name} does not keep object versions", bucket.urn)


@rules.stack(
    "s3-bucket-public-access-block", severity="critical",
    description="Every bucket has its own public access block.",
    remediation="Declare aws.s3.BucketPublicAccessBlock for the bucket with all four flags true.")
def bucket_pab(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    for bucket in _buckets_without(stack, (S3_PUBLIC_ACCESS_BLOCK,), lambda p: True):
        yield Violation(f"bucket {bucket.name} has no public access block", bucket.urn)


@rules.resource(
    "log-retention-minimum", types=(LOG_GROUP,), severity="low", enforcement="advisory",
    config={"minimumRetentionDays": {"type": "integer", "default": 30, "minimum": 1, "maximum": 3653,
                                     "description": "shortest log retention a log group may have (days)"}},
    description="Log groups keep events at least the configured minimum (never-expiring groups pass).",
    remediation="Raise retentionInDays to at least minimumRetentionDays.")
def log_retention(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    minimum = number(config.get("minimumRetentionDays"), 30) or 30
    days = number(resource.props.get("retentionInDays"), 0) or 0
    if 0 < days < minimum:
        yield f"retention is {int(days)} days; minimum {int(minimum)}"


@rules.resource(
    "ecr-immutable-and-scanned", types=(ECR_REPOSITORY,), severity="low", enforcement="advisory",
    description="Image repositories have immutable tags and scan on push.",
    remediation="Set imageTagMutability='IMMUTABLE' and imageScanningConfiguration={scanOnPush: true}.")
def ecr_hygiene(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.props.get("imageTagMutability") != "IMMUTABLE":
        yield "tags are mutable (imageTagMutability)"
    if not truthy(resource.get("imageScanningConfiguration.scanOnPush")):
        yield "images are not scanned on push"


@rules.resource(
    "eks-control-plane-logging", types=(EKS_CLUSTER,), severity="low", enforcement="advisory",
    description="EKS sends api, audit and authenticator control-plane logs to CloudWatch.",
    remediation="Set enabledClusterLogTypes=['api', 'audit', 'authenticator'] (add controllerManager, scheduler "
                "when debugging).")
def eks_logging(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    missing = {"api", "audit", "authenticator"} - set(as_list(resource.props.get("enabledClusterLogTypes")))
    if missing:
        yield f"control-plane log types {', '.join(sorted(missing))} are off"


@rules.resource(
    "prod-data-services-multi-az", types=(REDIS_GROUP, MSK_CLUSTER), severity="medium", enforcement="advisory",
    description="In prod, Redis fails over automatically across AZs and MSK runs at least 3 brokers.",
    remediation="Redis: automaticFailoverEnabled=true, multiAzEnabled=true, numCacheClusters>=2; MSK: "
                "numberOfBrokerNodes>=3 spread over 3 AZs.")
def prod_multi_az(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.environment != "prod":
        return
    if resource.type == REDIS_GROUP:
        if not (truthy(resource.props.get("automaticFailoverEnabled")) and truthy(resource.props.get("multiAzEnabled"))):
            yield "Redis does not fail over across AZs (automaticFailoverEnabled, multiAzEnabled)"
    elif (number(resource.props.get("numberOfBrokerNodes"), 0) or 0) < 3:
        yield f"MSK runs {int(number(resource.props.get('numberOfBrokerNodes'), 0) or 0)} brokers; prod needs 3+"
