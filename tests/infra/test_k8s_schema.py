"""Every Kubernetes object the stacks render validates against the OpenAPI schema of the cluster's version.

Strict: a misspelt or misplaced field (which the API server would drop or refuse) fails here, not at apply.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

# A Helm release is a Pulumi resource, not an API object; KEDA's custom resources are not in the cluster's
# OpenAPI schema (tests/infra/test_telemetry.py checks them against KEDA's CRD fields).
NOT_OBJECTS = ("kubernetes:helm.sh/", "kubernetes:keda.sh/")


def as_api_object(value: Any) -> Any:
    """Pulumi's engine view (numbers as floats) back to the JSON the API server receives."""
    if isinstance(value, dict):
        return {k: as_api_object(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_api_object(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def cluster_version(graph: Any) -> str:
    """`cluster.version` from the stack's config (the settings default when the stack file leaves it out)."""
    from components.settings import ClusterSettings

    raw = graph.config.get("aiinfra:cluster") or "{}"
    return str((json.loads(raw) if isinstance(raw, str) else raw).get("version") or ClusterSettings().version)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_kubernetes_object_validates_against_the_cluster_version(stack_graph, stack):
    graph = stack_graph(stack)
    version = cluster_version(graph)
    objects = [r for r in graph.records
               if r.type.startswith("kubernetes:") and r.custom and not r.is_provider
               and not r.type.startswith(NOT_OBJECTS)]
    assert len(objects) >= 15, [r.type for r in objects]
    failures = []
    for record in objects:
        body = as_api_object(dict(record.inputs))
        try:
            kubernetes_validate.validate(body, f"{version}.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{record.type} {record.name}: {exc.path}: {exc.message}")
    assert failures == []


def test_a_misplaced_field_is_caught():
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i", "securityContext": {"readOnlyRootFs": True}}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33.0", strict=True)
