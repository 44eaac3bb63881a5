"""The VPC section: address space, AZ spread, NAT layout, flow-log retention and private endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from components.settings.common import LOG_RETENTION_DAYS
from contracts.config import Section, Where, field, first_overlap, parse_cidr

# What a private EKS cluster, its nodes and private SageMaker endpoints reach without a NAT hop.
DEFAULT_INTERFACE_ENDPOINTS = (
    "sts", "ecr.api", "ecr.dkr", "logs", "monitoring", "kms", "ec2", "elasticloadbalancing", "autoscaling",
    "ssm", "ssmmessages", "ec2messages", "secretsmanager", "sagemaker.api", "sagemaker.runtime", "eks",
    "eks-auth",
)


@dataclass(frozen=True)
class NetworkSettings(Section):
    """The VPC: address space, AZ spread, NAT layout, flow-log retention and private endpoints."""

    cidr: str = field("10.0.0.0/16", doc="VPC IPv4 CIDR block")
    az_count: int = field(3, min=2, max=6, doc="availability zones to spread subnets over")
    nat_gateways: Literal["single", "per-az"] = field("per-az")
    private_subnet_cidrs: tuple[str, ...] = field((), doc="explicit private subnet CIDRs, one per AZ")
    public_subnet_cidrs: tuple[str, ...] = field((), doc="explicit public subnet CIDRs, one per AZ")
    flow_log_retention_days: int = field(365, choices=LOG_RETENTION_DAYS)
    interface_endpoints: tuple[str, ...] = field(DEFAULT_INTERFACE_ENDPOINTS)

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"az_count": 2, "nat_gateways": "single", "flow_log_retention_days": 30},
        "staging": {"nat_gateways": "single", "flow_log_retention_days": 90},
    }

    def check(self, where: Where) -> None:
        vpc = parse_cidr(self.cidr, where.child("cidr"))
        if not 16 <= vpc.prefixlen <= 24:
            raise where.child("cidr").error("VPC prefix must be between /16 and /24", self.cidr)
        if where.environment in ("staging", "prod") and self.az_count < 3:
            raise where.child("azCount").error(
                f"{where.environment} must be multi-AZ across at least 3 availability zones; allowed: 3..6",
                self.az_count)
        if where.environment == "prod" and self.nat_gateways != "per-az":
            raise where.child("natGateways").error(
                "prod needs one NAT gateway per AZ so an AZ outage cannot cut egress; allowed: per-az",
                self.nat_gateways)
        named = []
        for key, cidrs in (("privateSubnetCidrs", self.private_subnet_cidrs),
                           ("publicSubnetCidrs", self.public_subnet_cidrs)):
            if cidrs and len(cidrs) != self.az_count:
                raise where.child(key).error(f"needs exactly one CIDR per AZ ({self.az_count})", list(cidrs))
            for i, text in enumerate(cidrs):
                net = parse_cidr(text, where.child(key).child(i))
                if not net.subnet_of(vpc):
                    raise where.child(key).child(i).error(f"not inside the VPC CIDR {self.cidr}", text)
                named.append((f"{key}[{i}]", net))
        clash = first_overlap(named)
        if clash:
            raise where.child(clash[1].split("[")[0]).error(f"{clash[1]} overlaps {clash[0]}")
        unknown = [e for e in self.interface_endpoints if not e.replace(".", "").replace("-", "").isalnum()]
        if unknown:
            raise where.child("interfaceEndpoints").error("not an AWS service name", unknown[0])

    @property
    def subnet_layout(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(private, public) CIDRs per AZ: explicit ones, or carved from the VPC block.

        Private subnets get the larger blocks: EKS gives every pod a VPC address.
        """
        if self.private_subnet_cidrs and self.public_subnet_cidrs:
            return self.private_subnet_cidrs, self.public_subnet_cidrs
        vpc = parse_cidr(self.cidr, Where("", "network.cidr"))
        halves = list(vpc.subnets(prefixlen_diff=1))
        private = [str(s) for s in halves[0].subnets(prefixlen_diff=3)][: self.az_count]
        public = [str(s) for s in halves[1].subnets(prefixlen_diff=4)][: self.az_count]
        return (self.private_subnet_cidrs or tuple(private), self.public_subnet_cidrs or tuple(public))
