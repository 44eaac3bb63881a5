"""Namespaces with a LimitRange, a quota and a Pod Security level, and workloads in them: the admission rules'
violating and compliant programs (shared by test_rules' per-rule cases and test_admission)."""

from __future__ import annotations

from typing import Any

import pulumi_kubernetes as k8s

RESTRICTED_POD = {"security_context": {"run_as_non_root": True, "run_as_user": 1000,
                                       "seccomp_profile": {"type": "RuntimeDefault"}}}
RESTRICTED_CONTAINER = {"allow_privilege_escalation": False, "capabilities": {"drop": ["ALL"]}}


def namespace(name: str = "training", *, level: str = "restricted", cpu: str = "64",
              default_cpu: str = "1") -> None:
    """A namespace as KubernetesAddons declares one: quota on requests and limits, default container limits."""
    k8s.core.v1.Namespace(name, metadata={"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}})
    k8s.core.v1.ResourceQuota(f"{name}-quota", metadata={"name": f"{name}-quota", "namespace": name},
                              spec={"hard": {"requests.cpu": cpu, "limits.cpu": cpu, "requests.memory": "256Gi",
                                             "limits.memory": "256Gi", "pods": "20"}})
    k8s.core.v1.LimitRange(f"{name}-limits", metadata={"name": f"{name}-limits", "namespace": name},
                           spec={"limits": [{"type": "Container", "defaultRequest": {"cpu": "250m", "memory": "512Mi"},
                                             "default": {"cpu": default_cpu, "memory": "2Gi"}}]})


def job(*, cpu: str = "6", cpu_limit: str | None = "6", parallelism: int = 2, secure: bool = True,
        name: str = "trainer") -> None:
    limits: dict[str, Any] = {"memory": "24Gi"}
    if cpu_limit is not None:
        limits["cpu"] = cpu_limit
    container = {"name": "train", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/training:1.0.0",
                 "resources": {"requests": {"cpu": cpu, "memory": "24Gi"}, "limits": limits},
                 **({"security_context": RESTRICTED_CONTAINER} if secure else {})}
    k8s.batch.v1.Job(name, metadata={"name": name, "namespace": "training"}, spec={
        "parallelism": parallelism, "completions": parallelism,
        "template": {"spec": {"restart_policy": "Never", "containers": [container],
                              **(RESTRICTED_POD if secure else {})}}})


def admitted() -> None:
    namespace()
    job()


def refused_by_default_limit() -> None:
    """What main declared: a CPU request and no CPU limit, under a LimitRange whose default limit is 1."""
    namespace()
    job(cpu_limit=None)


def over_quota() -> None:
    namespace(cpu="8")
    job(parallelism=2)


def not_restricted() -> None:
    namespace()
    job(secure=False)
