"""The EKS control-plane section: version, API endpoint exposure, administrators, logs and managed add-ons."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from components.settings.common import LOG_RETENTION_DAYS
from contracts.config import Section, Where, field, parse_cidr

KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34")
REQUIRED_ADDONS = ("vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver")
# Add-on builds published for Kubernetes 1.33 (`aws eks describe-addon-versions`).
DEFAULT_ADDON_VERSIONS = {
    "vpc-cni": "v1.20.4-eksbuild.1",
    "coredns": "v1.12.2-eksbuild.4",
    "kube-proxy": "v1.33.3-eksbuild.10",
    "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
    "aws-ebs-csi-driver": "v1.50.1-eksbuild.1",
}
_ROLE_NAME = re.compile(r"^[\w+=,.@/-]{1,64}$")
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-.+][0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class ClusterSettings(Section):
    """The EKS control plane: version, API endpoint exposure, administrators, logs and managed add-ons."""

    version: str = field("1.33", choices=KUBERNETES_VERSIONS, doc="Kubernetes minor version")
    endpoint_public_access: bool = field(False, doc="expose the API endpoint publicly (dev only, with CIDRs)")
    public_access_cidrs: tuple[str, ...] = field((), doc="CIDRs allowed to reach a public API endpoint")
    admin_role_names: tuple[str, ...] = field((), doc="IAM role names granted cluster-admin access entries")
    log_retention_days: int = field(365, choices=LOG_RETENTION_DAYS, doc="control-plane log retention")
    deletion_protection: bool = field(False, doc="refuse to delete the cluster")
    addon_versions: Mapping[str, str] = field(DEFAULT_ADDON_VERSIONS, doc="EKS managed add-on versions")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"log_retention_days": 30},
        "staging": {"log_retention_days": 90},
        "prod": {"deletion_protection": True},
    }

    def check(self, where: Where) -> None:
        if self.endpoint_public_access and where.environment != "dev":
            raise where.child("endpointPublicAccess").error(
                f"{where.environment} keeps the API endpoint private; allowed: false", True)
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise where.child("publicAccessCidrs").error(
                "a public API endpoint needs an explicit CIDR allow-list; allowed: one or more CIDR blocks", [])
        if self.public_access_cidrs and not self.endpoint_public_access:
            raise where.child("publicAccessCidrs").error(
                "only used with endpointPublicAccess: true", list(self.public_access_cidrs))
        for i, cidr in enumerate(self.public_access_cidrs):
            net = parse_cidr(cidr, where.child("publicAccessCidrs").child(i))
            if net.prefixlen < 16:
                raise where.child("publicAccessCidrs").child(i).error(
                    "too wide for an API allow-list; allowed: prefixes /16 to /32", cidr)
        if not self.admin_role_names:
            raise where.child("adminRoleNames").error(
                "name at least one IAM role to administer the cluster (the deploying role included)", [])
        for i, role in enumerate(self.admin_role_names):
            if not _ROLE_NAME.match(role) or role.startswith("arn:"):
                raise where.child("adminRoleNames").child(i).error("not an IAM role name (give the name, not an ARN)",
                                                                   role)
        if where.environment == "prod" and not self.deletion_protection:
            raise where.child("deletionProtection").error("prod protects its cluster from deletion; allowed: true",
                                                          False)
        versions = where.child("addonVersions")
        for addon, version in self.addon_versions.items():
            if addon not in REQUIRED_ADDONS:
                raise versions.child(addon).error("unknown add-on; allowed: " + ", ".join(REQUIRED_ADDONS), version)
            if not _VERSION.match(version):
                raise versions.child(addon).error("not an add-on version (like v1.20.4-eksbuild.1)", version)
        missing = [a for a in REQUIRED_ADDONS if a not in self.addon_versions]
        if missing:
            raise versions.child(missing[0]).error("is required (pin every managed add-on's version)")
