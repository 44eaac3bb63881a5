"""SageMaker endpoints: private models, encrypted volumes and data capture, canary rollout with alarm rollback.

The endpoints' security group is its own small component, built before MSK and Redis, because those name it as
a client; the endpoints themselves are built after monitoring, because their rollout names its alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.context import AccountContext
from components.encryption import KeyArns
from components.iam import policy_document, service_assume_role_policy, vpc_interface_statements
from components.log_groups import encrypted_log_group
from components.monitoring import EndpointAlarms, EndpointWatch
from components.network import VpcNetwork
from components.settings import EndpointSettings, StackIdentity
from components.storage import StorageRefs
from contracts import outputs
from contracts.ports import HTTPS, KAFKA_IAM, REDIS
from contracts.storage import capture_prefix

# One variant per endpoint, named the same in every configuration: blue/green updates require that.
VARIANT_NAME = "primary"
# Where endpoints reach the data services (TCP ports), inside the VPC only.
DATA_SERVICE_PORTS = {"kafka": KAFKA_IAM, "redis": REDIS}
METRICS_NAMESPACE = "aiinfra/serving"


def endpoint_name(stack: StackIdentity, spec: EndpointSettings) -> str:
    """The endpoint's physical name; alarms watch this name, so it is derived in one place."""
    return stack.name(spec.name)


def endpoint_watches(stack: StackIdentity, endpoints: Sequence[EndpointSettings]) -> dict[str, EndpointWatch]:
    """What monitoring alarms on for each endpoint: built before the endpoints, named by the same rule."""
    return {spec.name: EndpointWatch(endpoint_name(stack, spec), VARIANT_NAME, spec.alarms) for spec in endpoints}


class ServingSecurityGroup(pulumi.ComponentResource):
    """The endpoints' own security group: no ingress (SageMaker fronts invocations), egress only where needed."""

    security_group: aws.ec2.SecurityGroup

    def __init__(self, name: str, *, stack: StackIdentity, network: VpcNetwork,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:inference:ServingSecurityGroup", name, None, opts)
        egress = [{"protocol": "tcp", "from_port": HTTPS, "to_port": HTTPS, "cidr_blocks": [network.cidr],
                   "description": "AWS APIs through the interface VPC endpoints"},
                  {"protocol": "tcp", "from_port": HTTPS, "to_port": HTTPS,
                   "prefix_list_ids": [network.s3_prefix_list_id],
                   "description": "model artifacts and data capture through the S3 gateway endpoint"}]
        egress += [{"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": [network.cidr],
                    "description": f"{service} inside the VPC"} for service, port in DATA_SERVICE_PORTS.items()]
        self.security_group = aws.ec2.SecurityGroup(
            name, vpc_id=network.vpc_id, name=stack.name("serving"),
            description="SageMaker endpoints: no inbound; outbound to AWS endpoints, S3, Kafka and Redis",
            ingress=[], egress=egress, tags={"Name": stack.name("serving")},
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"securityGroupId": self.security_group.id})


class Inference(pulumi.ComponentResource):
    """For each endpoint in settings: role, model, endpoint configuration, endpoint and autoscaling."""

    endpoints: dict[str, aws.sagemaker.Endpoint]
    configurations: dict[str, aws.sagemaker.EndpointConfiguration]
    roles: dict[str, aws.iam.Role]
    scaling_targets: dict[str, aws.appautoscaling.Target]

    def __init__(self, name: str, settings: Sequence[EndpointSettings], *, stack: StackIdentity,
                 network: VpcNetwork, keys: KeyArns, storage: StorageRefs, security_group_id: pulumi.Input[str],
                 alarms: Mapping[str, EndpointAlarms], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiinfra:inference:Inference", name, None, opts)
        self._stack = stack
        self._ctx = AccountContext.lookup(stack.region, self)
        self._vpc_arn = self._ctx.arn("ec2", pulumi.Output.concat("vpc/", network.vpc_id))
        self.endpoints, self.configurations, self.roles, self.scaling_targets = {}, {}, {}, {}
        self.summary: dict[str, Any] = {}
        # One-line summaries per endpoint (`textClassifierEndpoint`), for stack outputs and previews.
        self.descriptions: dict[str, pulumi.Output[str]] = {}
        for spec in settings:
            self._endpoint(f"{name}-{spec.name}", spec, network=network, keys=keys, storage=storage,
                           security_group_id=security_group_id, rollback=alarms[spec.name].rollback)
        self.register_outputs({"endpoints": self.summary})

    def _endpoint(self, rid: str, spec: EndpointSettings, *, network: VpcNetwork, keys: KeyArns,
                  storage: StorageRefs, security_group_id: pulumi.Input[str],
                  rollback: Sequence[aws.cloudwatch.MetricAlarm]) -> None:
        stack = self._stack
        child = pulumi.ResourceOptions(parent=self)
        name = endpoint_name(stack, spec)
        models = storage.buckets["models"]
        data = storage.buckets["datasets"]
        # SageMaker writes container logs to this fixed group; declaring it first makes it encrypted and bounded.
        log_group = encrypted_log_group(
            f"{rid}-logs", log_group_name=f"/aws/sagemaker/Endpoints/{name}", retention_days=spec.log_retention_days,
            kms_key_arn=keys.logs, parent=self)
        role = aws.iam.Role(
            f"{rid}-execution", name=stack.name(f"{spec.name}-sagemaker"),
            description=f"SageMaker execution role of endpoint {name}",
            assume_role_policy=service_assume_role_policy(
                self._ctx.service_principal("sagemaker"),
                conditions={"StringEquals": {"aws:SourceAccount": self._ctx.account_id}}),
            opts=child)
        grant = aws.iam.RolePolicy(
            f"{rid}-execution", role=role.id,
            policy=self._execution_policy(spec, keys=keys, storage=storage, log_group=log_group),
            opts=child)
        self.roles[spec.name] = role

        model = aws.sagemaker.Model(
            f"{rid}-model", execution_role_arn=role.arn,
            primary_container={
                "image": pulumi.Output.concat(storage.repositories["serving"].url, ":", spec.image_tag),
                "model_data_url": pulumi.Output.concat(
                    "s3://", models.name, "/", spec.model_prefix, "/", spec.model_archive),
                "environment": dict(spec.environment),
            },
            vpc_config={"subnets": network.private_subnet_ids, "security_group_ids": [security_group_id]},
            # SageMaker checks the role's access when the model is created: the grant must be in place first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]))

        configuration = aws.sagemaker.EndpointConfiguration(
            f"{rid}-config", kms_key_arn=keys.models,
            production_variants=[{
                "variant_name": VARIANT_NAME, "model_name": model.name, "instance_type": spec.instance_type,
                "initial_instance_count": spec.instance_count, "initial_variant_weight": 1.0,
            }],
            data_capture_config={
                "enable_capture": True, "initial_sampling_percentage": spec.capture_percent,
                "destination_s3_uri": pulumi.Output.concat("s3://", data.name, "/", capture_prefix(spec.name)),
                "kms_key_id": keys.data,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {"json_content_types": ["application/json"],
                                                "csv_content_types": ["text/csv"]},
            },
            opts=child)
        rollout = spec.rollout
        endpoint = aws.sagemaker.Endpoint(
            rid, name=name, endpoint_config_name=configuration.name,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": {
                        "type": "CANARY",
                        "canary_size": {"type": "CAPACITY_PERCENT", "value": rollout.canary_percent},
                        "wait_interval_in_seconds": rollout.bake_seconds,
                    },
                    "termination_wait_in_seconds": rollout.termination_wait_seconds,
                    "maximum_execution_timeout_in_seconds": rollout.max_execution_seconds,
                },
                # The monitoring component's own alarm objects: a rollback watches exactly what pages people.
                "auto_rollback_configuration": {"alarms": [{"alarm_name": alarm.name} for alarm in rollback]},
            },
            opts=child)
        scaling = spec.autoscaling
        target = aws.appautoscaling.Target(
            f"{rid}-scaling", service_namespace="sagemaker", scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=pulumi.Output.concat("endpoint/", endpoint.name, "/variant/", VARIANT_NAME),
            min_capacity=scaling.min_instances, max_capacity=scaling.max_instances, opts=child)
        aws.appautoscaling.Policy(
            f"{rid}-scaling", name=f"{name}-invocations", policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace, scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": float(scaling.invocations_per_instance),
                "predefined_metric_specification": {"predefined_metric_type": "SageMakerVariantInvocationsPerInstance"},
                "scale_in_cooldown": scaling.scale_in_cooldown_seconds,
                "scale_out_cooldown": scaling.scale_out_cooldown_seconds,
            }, opts=child)

        self.endpoints[spec.name] = endpoint
        self.configurations[spec.name] = configuration
        self.scaling_targets[spec.name] = target
        self.descriptions[outputs.endpoint(spec.name)] = pulumi.Output.concat(
            endpoint.name, f": {spec.instance_type} x{scaling.min_instances}-{scaling.max_instances} "
            f"@{scaling.invocations_per_instance}/instance, canary {rollout.canary_percent}% bake "
            f"{rollout.bake_seconds}s, rollback on {len(rollback)} alarms")
        self.summary[spec.name] = {
            "endpointName": endpoint.name,
            "instanceType": spec.instance_type,
            "autoscaling": {"min": scaling.min_instances, "max": scaling.max_instances,
                            "invocationsPerInstance": scaling.invocations_per_instance},
            "rollout": {"type": "blue/green canary", "canaryPercent": rollout.canary_percent,
                        "bakeSeconds": rollout.bake_seconds},
            "rollbackAlarms": [alarm.name for alarm in rollback],
        }

    def _execution_policy(self, spec: EndpointSettings, *, keys: KeyArns, storage: StorageRefs,
                          log_group: aws.cloudwatch.LogGroup) -> pulumi.Output[str]:
        """Read its own model prefix, pull the serving image, capture data under its own prefix, log, emit metrics."""
        models = storage.buckets["models"].arn
        data = storage.buckets["datasets"].arn
        ctx = self._ctx
        return policy_document([
            {"Sid": "ReadModel", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": pulumi.Output.concat(models, "/", spec.model_prefix, "/*")},
            {"Sid": "ListModelPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": models,
             "Condition": {"StringLike": {"s3:prefix": [f"{spec.model_prefix}/*"]}}},
            {"Sid": "DecryptModel", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:DescribeKey"],
             "Resource": keys.models,
             "Condition": {"StringEquals": {"kms:ViaService": [ctx.service_host("s3"), ctx.service_host("ecr")]}}},
            {"Sid": "PullServingImage", "Effect": "Allow",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
             "Resource": storage.repositories["serving"].arn},
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "WriteDataCapture", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": pulumi.Output.concat(data, "/", capture_prefix(spec.name), "/*")},
            {"Sid": "EncryptDataCapture", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Encrypt"],
             "Resource": keys.data,
             "Condition": {"StringEquals": {"kms:ViaService": ctx.service_host("s3")}}},
            {"Sid": "WriteLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": [log_group.arn, pulumi.Output.concat(log_group.arn, ":*")]},
            {"Sid": "PutMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
             "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}}},
            # Endpoints in a VPC: SageMaker attaches ENIs in the private subnets on the role's behalf.
            *vpc_interface_statements("VpcNetworkInterfaces", self._vpc_arn),
        ])
