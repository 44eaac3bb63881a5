"""Rules against the other shapes the provider allows for the same thing: legacy V2 buckets, inline and separate
security-group rules, provider defaults, prod-only rules outside prod, and documented exemptions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi_aws as aws
import pytest

from policy_programs import KEY_ARN, findings
from test_rules import deployment, endpoint_config, gpu_group, launch_template, msk, node_group, redis

SHAPES: list[tuple[str, str, Callable[[], Any], str, str | None]] = [
    # (id, rule, program, stack, expected message fragment or None when it must pass)
    ("bucketv2-legacy-inline-aes", "s3-inline-encryption-cmk",
     lambda: aws.s3.BucketV2("data", server_side_encryption_configurations=[{"rules": [{
         "apply_server_side_encryption_by_defaults": [{"sse_algorithm": "AES256"}]}]}]), "dev", "'AES256'"),
    ("bucketv2-separate-sse-counts", "s3-bucket-encrypted",
     lambda: aws.s3.BucketServerSideEncryptionConfigurationV2("data", bucket=aws.s3.BucketV2("data").id, rules=[{
         "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": KEY_ARN}}]),
     "dev", None),
    ("bucket-inline-versioning", "s3-bucket-versioned",
     lambda: aws.s3.Bucket("data", versioning={"enabled": True}), "dev", None),
    ("inline-world-ingress", "security-group-no-world-ingress",
     lambda: aws.ec2.SecurityGroup("sg", ingress=[{"protocol": "-1", "from_port": 0, "to_port": 0,
                                                   "ipv6_cidr_blocks": ["::/0"]}]), "dev", "ingress on all ports is open to ::/0"),
    ("legacy-sg-rule", "security-group-no-world-ingress",
     lambda: aws.ec2.SecurityGroupRule("r", type="ingress", security_group_id="sg-1", protocol="tcp", from_port=443,
                                       to_port=443, cidr_blocks=["0.0.0.0/0"]), "dev", "ingress rule on port 443"),
    ("egress-to-world-is-fine", "security-group-no-world-ingress",
     lambda: aws.ec2.SecurityGroupRule("r", type="egress", security_group_id="sg-1", protocol="tcp", from_port=443,
                                       to_port=443, cidr_blocks=["0.0.0.0/0"]), "dev", None),
    ("instance-public-ip", "no-public-ip-on-instances",
     lambda: aws.ec2.Instance("vm", ami="ami-1", instance_type="m6i.large", associate_public_ip_address=True),
     "dev", "instance gets a public IP address"),
    ("instance-imdsv1", "imdsv2-hop-limit-1",
     lambda: aws.ec2.Instance("vm", ami="ami-1", instance_type="m6i.large"), "dev", "IMDSv1 is allowed"),
    ("launch-template-without-volumes", "launch-template-ebs-encrypted",
     lambda: launch_template(block_device_mappings=None), "dev", "declares no block device mappings"),
    ("eks-public-to-named-cidrs", "eks-endpoint-private",
     lambda: aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks", vpc_config={
         "subnet_ids": ["s"], "endpoint_private_access": True, "endpoint_public_access": True,
         "public_access_cidrs": ["203.0.113.0/24"]}), "dev", None),
    ("msk-transit-defaults-to-tls", "msk-encryption",
     lambda: msk(encryption_info={"encryption_at_rest_kms_key_arn": KEY_ARN}), "dev", None),
    ("redis-tls-preferred", "elasticache-encryption",
     lambda: redis(transit_encryption_mode="preferred"), "dev", "TLS is only preferred"),
    ("nvme-endpoint-needs-no-volume-key", "sagemaker-endpoint-storage-cmk",
     lambda: endpoint_config(kms_key_arn=None, production_variants=[{
         "variant_name": "primary", "model_name": "m", "instance_type": "ml.g5.xlarge", "initial_instance_count": 2}]),
     "dev", None),
    ("neuron-pool-untainted", "accelerator-pools-tainted",
     lambda: gpu_group(instance_types=["inf2.8xlarge"], ami_type="AL2023_x86_64_NEURON", taints=[]),
     "dev", "no NoSchedule taint aws.amazon.com/neuron or aws.amazon.com/neuroncore"),
    ("cpu-pool-on-gpu-ami", "accelerator-pools-matching-ami",
     lambda: node_group(ami_type="AL2023_x86_64_NVIDIA"), "dev", "CPU node group ng uses the accelerated AMI type"),
    ("instance-type-from-launch-template", "accelerator-pools-tainted",
     lambda: node_group("gpu", instance_types=None, launch_template={
         "id": launch_template("gpu", instance_type="g6.xlarge").id, "version": "1"}),
     "dev", "g6.xlarge node group gpu has no NoSchedule taint nvidia.com/gpu"),
    ("spot-serving-fine-in-dev", "no-spot-for-prod-serving",
     lambda: node_group("serving", capacity_type="SPOT"), "dev", None),
    ("spot-training-fine-in-prod", "no-spot-for-prod-serving",
     lambda: node_group("training", capacity_type="SPOT"), "prod", None),
    ("redis-single-az-fine-in-dev", "prod-data-services-multi-az",
     lambda: redis(automatic_failover_enabled=False, multi_az_enabled=False), "dev", None),
    ("privileged-init-container", "pods-not-privileged",
     lambda: deployment(init_containers=[{"name": "setup", "image": "busybox:1.36",
                                          "security_context": {"capabilities": {"add": ["SYS_ADMIN"]}}}]),
     "dev", "container setup adds capabilities SYS_ADMIN"),
    ("image-without-tag", "images-pinned",
     lambda: deployment(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/serving"), "dev", "unpinned image"),
    ("registry-port-is-not-a-tag", "images-pinned",
     lambda: deployment(image="registry.internal:5000/serving"), "dev", "unpinned image"),
    ("iam-inline-role-policy", "iam-no-star-on-star",
     lambda: aws.iam.Role("r", assume_role_policy="{}", inline_policies=[{"name": "all", "policy": (
         '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}]}')}]),
     "dev", "allows '*' on '*'"),
    ("sagemaker-model-network-isolation", "sagemaker-model-isolated",
     lambda: aws.sagemaker.Model("m", execution_role_arn="arn:aws:iam::123456789012:role/sm",
                                 primary_container={"image": "img:1"}, enable_network_isolation=True), "dev", None),
]


@pytest.mark.parametrize("rule, program, stack, expected", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_rule_shape(rule: str, program: Callable[[], Any], stack: str, expected: str | None) -> None:
    messages = [f.message for f in findings(rule, program, stack)]
    if expected is None:
        assert messages == []
    else:
        assert any(expected in m for m in messages), messages
