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
