"""Every rule, against a program that violates it and one that passes it, built from the real provider classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

import admission_programs as admission
from contracts.instances import POOL_LABEL, ROLE_LABEL, SERVING_ROLE
from policy_programs import KEY_ARN, RULES, findings, policy, tagged_provider

Program = Callable[[], Any]


@dataclass(frozen=True)
class Case:
    rule: str
    good: Program
    bad: Program
    message: str
    stack: str = "dev"


# --- building blocks ---------------------------------------------------------------------------------------

def bucket(name: str = "data", **kwargs: Any) -> aws.s3.Bucket:
    return aws.s3.Bucket(name, bucket=f"aiinfra-dev-{name}", **kwargs)


def sse(target: aws.s3.Bucket, algorithm: str = "aws:kms", key: str | None = KEY_ARN) -> None:
    default: dict[str, Any] = {"sse_algorithm": algorithm}
    if key:
        default["kms_master_key_id"] = key
    aws.s3.BucketServerSideEncryptionConfiguration(
        target._name, bucket=target.id, rules=[{"apply_server_side_encryption_by_default": default}])


def launch_template(name: str = "lt", **kwargs: Any) -> aws.ec2.LaunchTemplate:
    base: dict[str, Any] = {
        "block_device_mappings": [{"device_name": "/dev/xvda",
                                   "ebs": {"encrypted": "true", "kms_key_id": KEY_ARN, "volume_size": 100}}],
        "metadata_options": {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1},
    }
    return aws.ec2.LaunchTemplate(name, **{**base, **kwargs})


def node_group(name: str = "ng", **kwargs: Any) -> aws.eks.NodeGroup:
    base: dict[str, Any] = {
        "cluster_name": "aiinfra-dev", "node_role_arn": "arn:aws:iam::123456789012:role/node",
        "subnet_ids": ["subnet-a", "subnet-b"], "instance_types": ["m6i.xlarge"],
        "scaling_config": {"desired_size": 2, "min_size": 1, "max_size": 3}, "ami_type": "AL2023_x86_64_STANDARD",
    }
    return aws.eks.NodeGroup(name, **{**base, **kwargs})


def gpu_group(**kwargs: Any) -> aws.eks.NodeGroup:
    base: dict[str, Any] = {"instance_types": ["g5.2xlarge"], "ami_type": "AL2023_x86_64_NVIDIA",
                            "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]}
    return node_group("gpu", **{**base, **kwargs})


def msk(**kwargs: Any) -> aws.msk.Cluster:
    base: dict[str, Any] = {
        "cluster_name": "aiinfra-dev-stream", "kafka_version": "3.7.x", "number_of_broker_nodes": 3,
        "broker_node_group_info": {"instance_type": "kafka.m5.large", "client_subnets": ["subnet-a", "subnet-b"],
                                   "security_groups": ["sg-kafka"],
                                   "storage_info": {"ebs_storage_info": {"volume_size": 100}}},
        "encryption_info": {"encryption_at_rest_kms_key_arn": KEY_ARN,
                            "encryption_in_transit": {"client_broker": "TLS", "in_cluster": True}},
        "client_authentication": {"sasl": {"iam": True}},
    }
    return aws.msk.Cluster("stream", **{**base, **kwargs})


def redis(**kwargs: Any) -> aws.elasticache.ReplicationGroup:
    base: dict[str, Any] = {
        "replication_group_id": "aiinfra-dev-features", "description": "features", "engine": "redis",
        "node_type": "cache.r7g.large", "num_cache_clusters": 2, "at_rest_encryption_enabled": True,
        "kms_key_id": KEY_ARN, "transit_encryption_enabled": True, "transit_encryption_mode": "required",
        "security_group_ids": ["sg-redis"], "subnet_group_name": "aiinfra-dev-cache", "auth_token": "x" * 32,
        "automatic_failover_enabled": True, "multi_az_enabled": True,
    }
    return aws.elasticache.ReplicationGroup("features", **{**base, **kwargs})


def endpoint_config(**kwargs: Any) -> aws.sagemaker.EndpointConfiguration:
    base: dict[str, Any] = {
        "name": "aiinfra-dev-classifier",
        "production_variants": [{"variant_name": "primary", "model_name": "classifier", "instance_type": "ml.m5.xlarge",
                                 "initial_instance_count": 2}],
        "kms_key_arn": KEY_ARN,
    }
    return aws.sagemaker.EndpointConfiguration("classifier", **{**base, **kwargs})


def alarm(name: str, dimensions: dict[str, Any], actions: bool = True, **kwargs: Any) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        name, name=name, comparison_operator="GreaterThanThreshold", evaluation_periods=1, metric_name="Errors",
        namespace="AWS/SageMaker", period=60, statistic="Sum", threshold=1, dimensions=dimensions,
        alarm_actions=["arn:aws:sns:us-east-1:123456789012:alerts"] if actions else [], **kwargs)


def serving_endpoint(*, blue_green: bool = True, rollback_alarm: str | None = "aiinfra-dev-5xx",
                     declare_alarm: bool = True, scaling: bool = True, policy_too: bool = True, count: int = 2,
                     min_capacity: int = 2, alarm_actions: bool = True) -> None:
    config = endpoint_config(production_variants=[{
        "variant_name": "primary", "model_name": "classifier", "instance_type": "ml.m5.xlarge",
        "initial_instance_count": count}])
    deployment: dict[str, Any] = {}
    if blue_green:
        deployment["blue_green_update_policy"] = {"traffic_routing_configuration": {
            "type": "CANARY", "wait_interval_in_seconds": 300, "canary_size": {"type": "CAPACITY_PERCENT", "value": 10}}}
    if rollback_alarm:
        deployment["auto_rollback_configuration"] = {"alarms": [{"alarm_name": rollback_alarm}]}
    endpoint = aws.sagemaker.Endpoint("classifier", name="aiinfra-dev-classifier", endpoint_config_name=config.name,
                                      deployment_config=deployment or None)
    if declare_alarm:
        alarm("aiinfra-dev-5xx", {"EndpointName": endpoint.name, "VariantName": "primary"}, actions=alarm_actions)
    if scaling:
        target = aws.appautoscaling.Target(
            "classifier", service_namespace="sagemaker", scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=pulumi.Output.concat("endpoint/", endpoint.name, "/variant/primary"),
            min_capacity=min_capacity, max_capacity=6)
        if policy_too:
            aws.appautoscaling.Policy(
                "classifier", policy_type="TargetTrackingScaling", resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension, service_namespace=target.service_namespace,
                target_tracking_scaling_policy_configuration={
                    "target_value": 100, "predefined_metric_specification": {
                        "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"}})


def deployment(name: str = "server", image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:1.4.2",
               namespace: str = "serving", **pod: Any) -> k8s.apps.v1.Deployment:
    container = {"name": "server", "image": image, **pod.pop("container", {})}
    return k8s.apps.v1.Deployment(name, metadata={"namespace": namespace}, spec={
        "selector": {"match_labels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container], **pod}}})


def neuron_pool(name: str = "serve", types: tuple[str, ...] = ("inf2.8xlarge",), **limits: str
                ) -> k8s.apiextensions.CustomResource:
    """A Karpenter NodePool as the capacity component renders one, with its EC2NodeClass."""
    k8s.apiextensions.CustomResource(f"{name}-class", api_version="karpenter.k8s.aws/v1", kind="EC2NodeClass",
                                     metadata={"name": name}, spec={"amiSelectorTerms": [{"alias": "al2023@v20251101"}]})
    return k8s.apiextensions.CustomResource(
        f"{name}-pool", api_version="karpenter.sh/v1", kind="NodePool", metadata={"name": name}, spec={
            "template": {"metadata": {"labels": {POOL_LABEL: name}}, "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
                "taints": [{"key": "aws.amazon.com/neuron", "value": "true", "effect": "NoSchedule"}],
                "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(types)}]}},
            "limits": limits})


def neuron_server(max_replicas: int, *, autoscaler: str = "hpa", pool: str = "serve") -> None:
    k8s.apps.v1.Deployment("model-server", metadata={"name": "model-server", "namespace": "serving"}, spec={
        "replicas": 1, "selector": {"match_labels": {"app": "model-server"}},
        "template": {"metadata": {"labels": {"app": "model-server"}}, "spec": {
            "nodeSelector": {POOL_LABEL: pool}, "containers": [{
                "name": "server", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:1.4.2",
                "resources": {"limits": {"aws.amazon.com/neuroncore": "1"},
                              "requests": {"aws.amazon.com/neuroncore": "1"}}}]}}})
    target = {"kind": "Deployment", "name": "model-server"}
    if autoscaler == "hpa":
        k8s.autoscaling.v2.HorizontalPodAutoscaler("model-server", metadata={"name": "model-server", "namespace": "serving"},
                                                   spec={"scaleTargetRef": {**target, "apiVersion": "apps/v1"},
                                                         "minReplicas": 1, "maxReplicas": max_replicas})
    else:
        k8s.apiextensions.CustomResource("model-server", api_version="keda.sh/v1alpha1", kind="ScaledObject",
                                         metadata={"name": "model-server", "namespace": "serving"},
                                         spec={"scaleTargetRef": target, "maxReplicaCount": max_replicas})


def priority_classes() -> None:
    k8s.scheduling.v1.PriorityClass("serving", metadata={"name": "aiinfra-serving"}, value=1000)


def network(public_data: bool) -> None:
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16")
    igw = aws.ec2.InternetGateway("igw", vpc_id=vpc.id)
    public = aws.ec2.Subnet("public-a", vpc_id=vpc.id, cidr_block="10.0.128.0/24")
    private = aws.ec2.Subnet("private-a", vpc_id=vpc.id, cidr_block="10.0.0.0/20")
    table = aws.ec2.RouteTable("public", vpc_id=vpc.id, routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}])
    aws.ec2.RouteTableAssociation("public-a", subnet_id=public.id, route_table_id=table.id)
    aws.elasticache.SubnetGroup("cache", subnet_ids=[(public if public_data else private).id])


# --- the cases ---------------------------------------------------------------------------------------------

CASES = [
    # encryption
    Case("s3-inline-encryption-cmk",
         lambda: bucket(server_side_encryption_configuration={"rule": {"apply_server_side_encryption_by_default": {
             "sse_algorithm": "aws:kms", "kms_master_key_id": KEY_ARN}}}),
         lambda: bucket(server_side_encryption_configuration={"rule": {"apply_server_side_encryption_by_default": {
             "sse_algorithm": "AES256"}}}),
         "'AES256', not a customer-managed KMS key"),
    Case("s3-encryption-configuration-cmk", lambda: sse(bucket()), lambda: sse(bucket(), key=None),
         "names no customer-managed KMS key"),
    Case("s3-bucket-tls-only",
         lambda: aws.s3.BucketPolicy("data", bucket=(b := bucket()).id, policy=b.arn.apply(lambda arn: policy([{
             "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [arn, f"{arn}/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]))),
         lambda: bucket(), "has no policy that denies non-TLS requests"),
    Case("launch-template-ebs-encrypted", lambda: launch_template(),
         lambda: launch_template(block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {"encrypted": "false"}}]),
         "EBS volume /dev/xvda is not encrypted"),
    Case("eks-secrets-encryption",
         lambda: aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks",
                                 vpc_config={"subnet_ids": ["subnet-a"]},
                                 encryption_config={"resources": ["secrets"], "provider": {"key_arn": KEY_ARN}}),
         lambda: aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks",
                                 vpc_config={"subnet_ids": ["subnet-a"]}),
         "secrets are not envelope-encrypted"),
    Case("msk-encryption", lambda: msk(),
         lambda: msk(encryption_info={"encryption_in_transit": {"client_broker": "TLS_PLAINTEXT"}}),
         "clientBroker = 'TLS_PLAINTEXT'"),
    Case("elasticache-encryption", lambda: redis(),
         lambda: redis(at_rest_encryption_enabled=False, kms_key_id=None), "data at rest is not encrypted"),
    Case("sagemaker-endpoint-storage-cmk", lambda: endpoint_config(), lambda: endpoint_config(kms_key_arn=None),
         "ml.m5.xlarge are not encrypted with a customer key"),
    Case("sagemaker-data-capture-cmk",
         lambda: endpoint_config(data_capture_config={
             "destination_s3_uri": "s3://aiinfra-dev-datasets/capture", "initial_sampling_percentage": 10,
             "kms_key_id": KEY_ARN, "capture_options": [{"capture_mode": "Input"}]}),
         lambda: endpoint_config(data_capture_config={
             "destination_s3_uri": "s3://aiinfra-dev-datasets/capture", "initial_sampling_percentage": 10,
             "capture_options": [{"capture_mode": "Input"}]}),
         "data capture is written without a customer-managed key"),
    Case("log-group-cmk", lambda: aws.cloudwatch.LogGroup("logs", kms_key_id=KEY_ARN, retention_in_days=30),
         lambda: aws.cloudwatch.LogGroup("logs", retention_in_days=30), "not encrypted with a customer-managed key"),
    Case("sns-topic-cmk", lambda: aws.sns.Topic("alerts", kms_master_key_id=KEY_ARN),
         lambda: aws.sns.Topic("alerts", kms_master_key_id="alias/aws/sns"), "'alias/aws/sns'"),
    Case("ecr-cmk",
         lambda: aws.ecr.Repository("repo", encryption_configurations=[{"encryption_type": "KMS", "kms_key": KEY_ARN}]),
         lambda: aws.ecr.Repository("repo"), "not a customer key"),
    Case("kms-key-rotation", lambda: aws.kms.Key("key", enable_key_rotation=True), lambda: aws.kms.Key("key"),
         "key rotation is disabled"),
    Case("kms-key-policy-no-public",
         lambda: aws.kms.Key("key", enable_key_rotation=True, policy=policy([{
             "Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": "kms:*", "Resource": "*"}])),
         lambda: aws.kms.Key("key", enable_key_rotation=True, policy=policy([{
             "Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}])),
         "'Everyone' allows any principal"),
    # exposure
    Case("security-group-no-world-ingress",
         lambda: aws.ec2.SecurityGroup("sg", vpc_id="vpc-1", ingress=[{
             "protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["10.0.0.0/16"]}]),
         lambda: aws.vpc.SecurityGroupIngressRule("ssh", security_group_id="sg-1", ip_protocol="tcp", from_port=22,
                                                  to_port=22, cidr_ipv4="0.0.0.0/0"),
         "ingress rule on port 22 is open to 0.0.0.0/0"),
    Case("eks-endpoint-private",
         lambda: aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks", vpc_config={
             "subnet_ids": ["subnet-a"], "endpoint_private_access": True, "endpoint_public_access": False}),
         lambda: aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks", vpc_config={
             "subnet_ids": ["subnet-a"], "endpoint_private_access": True}),
         "public to the whole internet"),
    Case("no-public-ip-on-instances",
         lambda: launch_template(network_interfaces=[{"device_index": 0, "associate_public_ip_address": "false"}]),
         lambda: launch_template(network_interfaces=[{"device_index": 0, "associate_public_ip_address": "true"}]),
         "network interface 0 gets a public IP address"),
    Case("s3-no-public-acl", lambda: aws.s3.BucketAcl("acl", bucket="b", acl="private"),
         lambda: aws.s3.BucketAcl("acl", bucket="b", acl="public-read"), "canned ACL 'public-read'"),
    Case("s3-public-access-block-strict",
         lambda: aws.s3.BucketPublicAccessBlock("pab", bucket="b", block_public_acls=True, block_public_policy=True,
                                                ignore_public_acls=True, restrict_public_buckets=True),
         lambda: aws.s3.BucketPublicAccessBlock("pab", bucket="b", block_public_acls=True),
         "leaves blockPublicPolicy, ignorePublicAcls, restrictPublicBuckets off"),
    Case("msk-no-public-access", lambda: msk(),
         lambda: msk(broker_node_group_info={"instance_type": "kafka.m5.large", "client_subnets": ["subnet-a"],
                                             "security_groups": ["sg-kafka"], "connectivity_info": {
                                                 "public_access": {"type": "SERVICE_PROVIDED_EIPS"}}}),
         "public access (SERVICE_PROVIDED_EIPS)"),
    Case("msk-authenticated-clients", lambda: msk(),
         lambda: msk(client_authentication={"unauthenticated": True}), "unauthenticated client access is enabled"),
    Case("data-services-named-security-groups", lambda: redis(),
         lambda: redis(security_group_ids=[], subnet_group_name=None), "uses the VPC's default security group"),
    Case("data-services-private-subnets", lambda: network(public_data=False), lambda: network(public_data=True),
         "is placed in public subnet(s) public-a"),
    Case("sagemaker-notebook-private",
         lambda: aws.sagemaker.NotebookInstance("nb", role_arn="arn:aws:iam::123456789012:role/nb",
                                                instance_type="ml.t3.medium", direct_internet_access="Disabled",
                                                subnet_id="subnet-a", security_groups=["sg-nb"]),
         lambda: aws.sagemaker.NotebookInstance("nb", role_arn="arn:aws:iam::123456789012:role/nb",
                                                instance_type="ml.t3.medium"),
         "notebook has direct internet access"),
    Case("sagemaker-model-isolated",
         lambda: aws.sagemaker.Model("model", execution_role_arn="arn:aws:iam::123456789012:role/sm",
                                     primary_container={"image": "img:1"},
                                     vpc_config={"subnets": ["subnet-a"], "security_group_ids": ["sg-sm"]}),
         lambda: aws.sagemaker.Model("model", execution_role_arn="arn:aws:iam::123456789012:role/sm",
                                     primary_container={"image": "img:1"}),
         "no vpcConfig and no enableNetworkIsolation"),
    Case("elasticache-auth", lambda: redis(), lambda: redis(auth_token=None), "clients connect without authentication"),
    # identity
    Case("iam-no-star-on-star",
         lambda: aws.iam.Policy("p", policy=policy([{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}])),
         lambda: aws.iam.RolePolicy("p", role="r", policy=policy([{"Sid": "All", "Effect": "Allow", "Action": "*",
                                                                   "Resource": "*"}])),
         "'All' allows '*' on '*'"),
    Case("iam-no-user-policies",
         lambda: aws.iam.RolePolicyAttachment("a", role="r", policy_arn="arn:aws:iam::aws:policy/ReadOnlyAccess"),
         lambda: aws.iam.UserPolicyAttachment("a", user="alice", policy_arn="arn:aws:iam::aws:policy/ReadOnlyAccess"),
         "attaches a policy to user 'alice'"),
    Case("iam-no-admin-managed-policies",
         lambda: aws.iam.RolePolicyAttachment("a", role="node", policy_arn="arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"),
         lambda: aws.iam.RolePolicyAttachment("a", role="node", policy_arn="arn:aws:iam::aws:policy/AdministratorAccess"),
         "administrator policy AdministratorAccess"),
    Case("iam-trust-no-wildcard-principal",
         lambda: aws.iam.Role("r", assume_role_policy=policy([{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                               "Principal": {"Service": "sagemaker.amazonaws.com"}}])),
         lambda: aws.iam.Role("r", assume_role_policy=policy([{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                               "Principal": {"AWS": "*"}}])),
         "any AWS principal assume the role"),
    Case("iam-password-policy-strength",
         lambda: aws.iam.AccountPasswordPolicy("pw", minimum_password_length=14, require_lowercase_characters=True,
                                               require_uppercase_characters=True, require_numbers=True,
                                               require_symbols=True, password_reuse_prevention=24, max_password_age=90),
         lambda: aws.iam.AccountPasswordPolicy("pw", minimum_password_length=8, require_symbols=True),
         "minimum password length 8.0 is below 14"),
    # hardening
    Case("imdsv2-hop-limit-1", lambda: launch_template(),
         lambda: launch_template(metadata_options={"http_tokens": "required", "http_put_response_hop_limit": 2}),
         "metadata hop limit is 2"),
    Case("nodes-no-ssh", lambda: node_group(),
         lambda: node_group(remote_access={"ec2_ssh_key": "ops"}), "node group allows SSH"),
    Case("pods-not-privileged", lambda: deployment(),
         lambda: deployment(container={"security_context": {"privileged": True}}), "container server runs privileged"),
    Case("pods-no-host-namespaces", lambda: deployment(), lambda: deployment(host_network=True),
         "pod uses the node's namespace (hostNetwork)"),
    # admission
    Case("pods-fit-namespace-limits", admission.admitted, admission.refused_by_default_limit,
         "Job training/trainer container train: cpu request 6 exceeds the default limit of LimitRange "
         "training-limits (1) in namespace training: the pod is refused"),
    Case("pods-meet-pod-security", admission.admitted, admission.not_restricted,
         "Job training/trainer: refused by Pod Security 'restricted' in namespace training: container train does "
         "not set allowPrivilegeEscalation: false"),
    Case("images-pinned", lambda: deployment(image="registry.example/serving@sha256:" + "a" * 64),
         lambda: deployment(image="nginx:latest"), "unpinned image 'nginx:latest'"),
    # accelerators
    Case("accelerator-pools-tainted", lambda: gpu_group(), lambda: gpu_group(taints=[]),
         "g5.2xlarge node group gpu has no NoSchedule taint nvidia.com/gpu"),
    Case("accelerator-pools-matching-ami", lambda: gpu_group(),
         lambda: gpu_group(ami_type="AL2023_x86_64_STANDARD"), "uses AMI type AL2023_x86_64_STANDARD"),
    Case("efa-pools-single-az-cluster-placement",
         lambda: node_group("efa", subnet_ids=["subnet-a"], instance_types=None, launch_template={
             "id": launch_template("efa", instance_type="p5.48xlarge", placement={
                 "group_name": aws.ec2.PlacementGroup("efa", strategy="cluster").name},
                 network_interfaces=[{"device_index": 0, "interface_type": "efa"}]).id, "version": "1"}),
         lambda: node_group("efa", instance_types=None, launch_template={
             "id": launch_template("efa", instance_type="p5.48xlarge",
                                   network_interfaces=[{"device_index": 0, "interface_type": "efa"}]).id,
             "version": "1"}),
         "spans 2 subnets; allowed: exactly 1"),
    # Serving pools by their role label, not their name: a spot pool named "serving" in another role passes.
    Case("no-spot-for-prod-serving",
         lambda: (node_group("online", capacity_type="ON_DEMAND", labels={ROLE_LABEL: SERVING_ROLE}),
                  node_group("serving", capacity_type="SPOT", labels={ROLE_LABEL: "compilation"})),
         lambda: node_group("online", capacity_type="SPOT", labels={ROLE_LABEL: SERVING_ROLE}),
         "prod serving node group online runs on SPOT capacity", stack="prod"),
    Case("instance-types-allowed", lambda: node_group(instance_types=["m6i.2xlarge", "c7a.large", "r5.xlarge"]),
         lambda: node_group(instance_types=["p4de.24xlarge"]),
         "instance type p4de.24xlarge is not allowed for profile nvidia-gpu"),
    # capacity
    Case("karpenter-nodepool-limits", lambda: neuron_pool(cpu="256", **{"aws.amazon.com/neuron": "8"}),
         lambda: neuron_pool(cpu="256"), "NodePool serve sets no spec.limits on aws.amazon.com/neuron"),
    # 8 Neuron devices = 8 inf2.8xlarge at the limit = 16 NeuronCores: 12 pods fit by an HPA, 20 by KEDA do not.
    Case("workloads-fit-their-pool",
         lambda: (neuron_pool(cpu="256", **{"aws.amazon.com/neuron": "8"}), neuron_server(12)),
         lambda: (neuron_pool(cpu="256", **{"aws.amazon.com/neuron": "8"}), neuron_server(20, autoscaler="keda")),
         "Deployment serving/model-server: up to 20 pods (ScaledObject serving/model-server maxReplicaCount) x 1 "
         "aws.amazon.com/neuroncore, but node pool serve (NodePool serve) holds 16 such pods at its limit "
         "(limits aws.amazon.com/neuron=8, cpu=256: 8 x inf2.8xlarge x 2 pod(s) per node)"),
    Case("workload-pods-priority-class",
         lambda: (priority_classes(), deployment(priorityClassName="aiinfra-serving"),
                  deployment("tool", namespace="tools")),
         lambda: (priority_classes(), deployment(priorityClassName="aiinfra-batch")),
         "Deployment serving/server names priorityClassName 'aiinfra-batch', which no PriorityClass in the stack "
         "declares (declared: aiinfra-serving)"),
    # operations
    Case("sagemaker-prod-min-instances", lambda: serving_endpoint(), lambda: serving_endpoint(count=1, min_capacity=1),
         "variant primary starts with 1 instance(s); prod needs at least 2", stack="prod"),
    Case("sagemaker-safe-rollout", lambda: serving_endpoint(),
         lambda: serving_endpoint(rollback_alarm="someone-elses-alarm"),
         "rolls back on alarm 'someone-elses-alarm', which this stack does not declare"),
    Case("sagemaker-autoscaling", lambda: serving_endpoint(), lambda: serving_endpoint(policy_too=False),
         "has no scaling policy"),
    Case("data-services-alarmed",
         lambda: alarm("redis-memory", {"CacheClusterId": redis().replication_group_id.apply(lambda i: f"{i}-001")}),
         lambda: (redis(), alarm("unrelated", {"CacheClusterId": "other-001"})),
         "ReplicationGroup features has no CloudWatch alarm"),
    Case("vpc-flow-logs",
         lambda: aws.ec2.FlowLog("fl", vpc_id=aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16").id, traffic_type="ALL",
                                 log_destination="arn:aws:logs:us-east-1:123456789012:log-group:flow"),
         lambda: aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16"), "VPC vpc has no flow log"),
    Case("s3-bucket-encrypted", lambda: sse(bucket()), lambda: bucket(), "bucket data has no default encryption"),
    Case("s3-bucket-versioned",
         lambda: aws.s3.BucketVersioning("data", bucket=bucket().id, versioning_configuration={"status": "Enabled"}),
         lambda: aws.s3.BucketVersioning("data", bucket=bucket().id, versioning_configuration={"status": "Suspended"}),
         "bucket data does not keep object versions"),
    Case("s3-bucket-public-access-block",
         lambda: aws.s3.BucketPublicAccessBlock("data", bucket=bucket().id, block_public_acls=True),
         lambda: (bucket(), aws.s3.BucketPublicAccessBlock("other", bucket="someone-elses-bucket")),
         "bucket data has no public access block"),
    Case("log-retention-minimum", lambda: aws.cloudwatch.LogGroup("logs", retention_in_days=30),
         lambda: aws.cloudwatch.LogGroup("logs", retention_in_days=7), "retention is 7 days; minimum 30"),
    Case("ecr-immutable-and-scanned",
         lambda: aws.ecr.Repository("repo", image_tag_mutability="IMMUTABLE",
                                    image_scanning_configuration={"scan_on_push": True}),
         lambda: aws.ecr.Repository("repo", image_tag_mutability="MUTABLE"), "tags are mutable"),
    Case("eks-control-plane-logging",
         lambda: aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks", vpc_config={"subnet_ids": ["s"]},
                                 enabled_cluster_log_types=["api", "audit", "authenticator"]),
         lambda: aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks", vpc_config={"subnet_ids": ["s"]},
                                 enabled_cluster_log_types=["api"]),
         "control-plane log types audit, authenticator are off"),
    Case("prod-data-services-multi-az", lambda: redis(),
         lambda: redis(automatic_failover_enabled=False, multi_az_enabled=False),
         "Redis does not fail over across AZs", stack="prod"),
    Case("required-tags", lambda: aws.sns.Topic("alerts", opts=tagged_provider()), lambda: aws.sns.Topic("alerts"),
         "missing required tag(s) environment, owner, cost-center, managed-by"),
    Case("monthly-budget", lambda: gpu_group(scaling_config={"desired_size": 2, "min_size": 1, "max_size": 2}),
         lambda: gpu_group(instance_types=["p5.48xlarge"], scaling_config={"desired_size": 4, "min_size": 1, "max_size": 4}),
         "(floor: scaled pools at their minimum) exceeds the budget $40,000.00 (largest: gpu $40,179"),
]


def test_every_rule_has_a_case() -> None:
    assert sorted(c.rule for c in CASES) == sorted(RULES), "each rule needs a passing and a violating program"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_passes_compliant_program(case: Case) -> None:
    assert findings(case.rule, case.good, case.stack) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_reports_violation(case: Case) -> None:
    reported = findings(case.rule, case.bad, case.stack)
    assert reported, f"{case.rule} did not fire"
    assert all(f.policy == case.rule and f.enforcement == RULES[case.rule].enforcement for f in reported)
    assert any(case.message in f.message for f in reported), [f.message for f in reported]
