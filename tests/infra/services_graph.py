"""Lookups the data-and-serving-services tests share: records by type and name, key ARNs, peers of a security group."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from aiinfra.graph import ResourceGraph, ResourceRecord

MSK = "aws:msk/cluster:Cluster"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL = "aws:sagemaker/model:Model"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"


def record(graph: ResourceGraph, type_token: str, name: str) -> ResourceRecord:
    """The one resource of `type_token` with logical name `name`."""
    found = [r for r in graph.of_type(type_token) if r.name == name]
    assert len(found) == 1, f"expected one {type_token} named {name}, found {len(found)}"
    return found[0]


def only(graph: ResourceGraph, type_token: str) -> ResourceRecord:
    found = graph.of_type(type_token)
    assert len(found) == 1, f"expected one {type_token}, found {len(found)}"
    return found[0]


def key_arn(graph: ResourceGraph, domain: str) -> str:
    return record(graph, "aws:kms/key:Key", f"keys-{domain}").outputs["arn"]


def bucket_name(graph: ResourceGraph, role: str) -> str:
    return record(graph, "aws:s3/bucket:Bucket", f"storage-{role}").inputs["bucket"]


def private_subnet_ids(graph: ResourceGraph) -> list[str]:
    """Sorted: registration order of sibling resources is not the program's list order."""
    return sorted(r.id for r in graph.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["tier"] == "private")


def peers(graph: ResourceGraph, group_id: str) -> list[dict[str, Any]]:
    """Every way into `group_id`: its inline ingress, standalone ingress rules and legacy rule resources."""
    group = [r for r in graph.of_type(SECURITY_GROUP) if r.id == group_id]
    assert len(group) == 1, group_id
    ways = [dict(rule) for rule in group[0].inputs.get("ingress") or []]
    ways += [dict(r.inputs) for r in graph.of_type(INGRESS_RULE) if r.inputs.get("securityGroupId") == group_id]
    ways += [dict(r.inputs) for r in graph.of_type(LEGACY_RULE)
             if r.inputs.get("securityGroupId") == group_id and r.inputs.get("type") == "ingress"]
    return ways


def alarm_dimensions(alarm: Mapping[str, Any]) -> Iterator[Mapping[str, str]]:
    """The dimensions an alarm watches: its own, or those of each metric in its metric-math queries."""
    if alarm.get("dimensions"):
        yield alarm["dimensions"]
    for query in alarm.get("metricQueries") or []:
        if query.get("metric"):
            yield query["metric"].get("dimensions") or {}


def statements(policy: str) -> list[dict[str, Any]]:
    return json.loads(policy)["Statement"]
