"""Kubernetes names the platform's objects and the cluster's controllers agree on."""

from __future__ import annotations

# The EKS pod identity webhook reads these service-account annotations (IRSA); the same in every partition.
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
IRSA_REGIONAL_STS_ANNOTATION = "eks.amazonaws.com/sts-regional-endpoints"

__all__ = ["IRSA_REGIONAL_STS_ANNOTATION", "IRSA_ROLE_ANNOTATION"]
