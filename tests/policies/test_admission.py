"""The admission rules against the defects they exist for, and against the shipped stacks."""

from __future__ import annotations

import admission_programs as admission
import pytest
from policy_programs import findings

from policies.rules.admission import quantity


@pytest.mark.parametrize(("text", "value"), [("250m", 0.25), ("6", 6.0), (6.0, 6.0), ("24Gi", 24 * 2**30),
                                             ("512Mi", 512 * 2**20), ("1G", 1e9), ("x", None), (True, None)])
def test_quantities(text, value):
    assert quantity(text) == value


def test_quota_counts_every_pod_at_the_declared_parallelism():
    reported = findings("pods-fit-namespace-limits", admission.over_quota)
    assert [f.message for f in reported] == [
        f"namespace training: its workloads need {key} 12 at their declared parallelism and replicas, above "
        "ResourceQuota training-quota (8): the last pods are refused" for key in ("limits.cpu", "requests.cpu")]
    assert {f.enforcement for f in reported} == {"mandatory"}


def test_a_quota_on_limits_without_a_default_refuses_a_container_without_one():
    def program():
        import pulumi_kubernetes as k8s

        k8s.core.v1.ResourceQuota("q", metadata={"name": "q", "namespace": "training"},
                                  spec={"hard": {"limits.cpu": "64"}})
        admission.job(cpu_limit=None)

    [finding] = findings("pods-fit-namespace-limits", program)
    assert "sets no cpu limit and namespace training has no default for it" in finding.message


def test_a_baseline_namespace_is_not_held_to_restricted():
    def program():
        admission.namespace(level="baseline")
        admission.job(secure=False)

    assert findings("pods-meet-pod-security", program) == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_are_admitted(stack_graph, stack):
    from aiinfra.policy_runner import evaluate
    from policies.rules import ALL_RULES

    rules = [r for r in ALL_RULES if r.name in ("pods-fit-namespace-limits", "pods-meet-pod-security")]
    assert evaluate(stack_graph(stack), rules=rules) == []


def test_quota_counts_a_deployment_at_its_scaled_objects_maximum():
    def program():
        import pulumi_kubernetes as k8s

        admission.namespace("serving", cpu="16")
        container = {"name": "server", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:1.0.0",
                     "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
                     "security_context": admission.RESTRICTED_CONTAINER}
        k8s.apps.v1.Deployment("model-server", metadata={"name": "model-server", "namespace": "serving"}, spec={
            "replicas": 2, "selector": {"match_labels": {"app": "s"}},
            "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": 1, "max_unavailable": 0}},
            "template": {"metadata": {"labels": {"app": "s"}},
                         "spec": {"containers": [container], **admission.RESTRICTED_POD}}})
        k8s.apiextensions.CustomResource(
            "model-server-scaler", api_version="keda.sh/v1alpha1", kind="ScaledObject",
            metadata={"name": "model-server", "namespace": "serving"},
            spec={"scaleTargetRef": {"name": "model-server"}, "minReplicaCount": 2, "maxReplicaCount": 8,
                  "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}]})

    # 8 replicas + 1 surge at 2 CPUs: 18 > 16, though spec.replicas alone (2 + 1) would fit.
    messages = [f.message for f in findings("pods-fit-namespace-limits", program)]
    assert messages == [
        f"namespace serving: its workloads need {key} 18 at their declared parallelism and replicas, above "
        "ResourceQuota serving-quota (16): the last pods are refused" for key in ("limits.cpu", "requests.cpu")]
