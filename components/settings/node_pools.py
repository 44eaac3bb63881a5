"""The node pool section: one EKS managed node group per entry, declared by accelerator profile."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional

from components.accelerators import (
    INSTANCE_TYPES,
    PROFILE_SPECS,
    Profile,
    allowed_types,
    family_of,
    profile_of_family,
    reserved_label_keys,
    reserved_taint_keys,
)
from contracts.config import Section, Where, field

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_RESERVATION = re.compile(r"^cr-[0-9a-f]{8}([0-9a-f]{9})?$")


@dataclass(frozen=True)
class TaintSettings(Section):
    """An extra taint on a pool, beyond the one its profile adds."""

    key: str = field(doc="taint key")
    value: str = field("true")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = field("NoSchedule")


@dataclass(frozen=True)
class NodePoolSettings(Section):
    """One EKS managed node group, declared by accelerator profile."""

    name: str = field(doc="pool name, lowercase letters, digits and dashes")
    profile: Profile = field(doc="cpu, nvidia-gpu, trainium or inferentia")
    instance_types: tuple[str, ...] = field(doc="EC2 instance types matching the profile")
    min_size: int = field(1, min=0, max=1000)
    desired_size: Optional[int] = field(None, min=0, max=1000, doc="defaults to minSize")
    max_size: int = field(3, min=1, max=1000)
    capacity_type: Literal["on-demand", "spot", "capacity-block"] = field("on-demand")
    capacity_reservation_id: Optional[str] = field(None, doc="the Capacity Block reservation (cr-...)")
    disk_size_gib: int = field(100, min=20, max=16384)
    efa: Optional[bool] = field(None, doc="EFA interfaces; default: on where every instance type supports it")
    efa_availability_zone: int = field(0, min=0, max=5, doc="index of the AZ an EFA pool is pinned to")
    pod_instance_metadata: bool = field(False, doc="let pods reach instance metadata: refused, pods use IRSA")
    labels: Mapping[str, str] = field({})
    taints: tuple[TaintSettings, ...] = field(())

    def check(self, where: Where) -> None:
        pool = f"pool '{self.name}'"
        if not _NAME.match(self.name):
            raise where.child("name").error(
                "pool names are 2-32 lowercase letters, digits and dashes, starting with a letter", self.name)
        types = where.child("instanceTypes")
        if not self.instance_types:
            raise types.error(f"{pool}: list at least one instance type", [])
        for i, instance_type in enumerate(self.instance_types):
            self._check_type(instance_type, types.child(i), pool)
        if self.min_size > self.max_size:
            raise where.child("minSize").error(
                f"{pool}: minSize must not exceed maxSize ({self.max_size})", self.min_size)
        desired = self.desired
        if not self.min_size <= desired <= self.max_size:
            raise where.child("desiredSize").error(
                f"{pool}: must lie between minSize and maxSize; allowed: {self.min_size}..{self.max_size}", desired)
        if self.pod_instance_metadata:
            raise where.child("podInstanceMetadata").error(
                f"{pool}: an IMDS hop limit of 2 lets every pod on the node read the node role's credentials "
                "(mandatory policy imdsv2-hop-limit-1); pods get AWS access through IRSA service accounts; "
                "allowed: false", True)
        self._check_capacity(where, pool)
        self._check_efa(where, pool)
        for key, value in self.labels.items():
            if key in reserved_label_keys():
                raise where.child("labels").child(key).error(f"{pool}: set from the profile and pool name", value)
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise where.child("labels").child(key).error(f"{pool}: not a valid Kubernetes label", value)
        for i, taint in enumerate(self.taints):
            if taint.key in reserved_taint_keys():
                raise where.child("taints").child(i).child("key").error(
                    f"{pool}: the {self.profile} profile sets its own accelerator taint; a second one would leave "
                    "the device plugins and workloads unable to tolerate the pool", taint.key)

    def _check_type(self, instance_type: str, where: Where, pool: str) -> None:
        owner = profile_of_family(family_of(instance_type))
        allowed = ", ".join(allowed_types(self.profile))
        if owner is None:
            raise where.error(f"{pool}: not an instance family {self.profile} pools take; allowed: {allowed}",
                              instance_type)
        if owner != self.profile:
            article = "an" if owner in ("inferentia", "nvidia-gpu") else "a"
            raise where.error(f"{pool}: {article} {owner} instance type, not {self.profile}; allowed: {allowed}",
                              instance_type)
        if self.profile == "cpu":
            if not re.fullmatch(r"[a-z0-9]+\.[a-z0-9-]+", instance_type):
                raise where.error(f"{pool}: not an EC2 instance type; allowed: {allowed}", instance_type)
        elif instance_type not in INSTANCE_TYPES:
            raise where.error(f"{pool}: unknown {self.profile} instance type; allowed: {allowed}", instance_type)

    def _check_capacity(self, where: Where, pool: str) -> None:
        if self.capacity_type == "capacity-block":
            if not self.capacity_reservation_id or not _RESERVATION.match(self.capacity_reservation_id):
                raise where.child("capacityReservationId").error(
                    f"{pool}: a capacity-block pool needs its reservation id (cr- and 8 or 17 hex digits)",
                    self.capacity_reservation_id)
            if len(self.instance_types) != 1:
                raise where.child("instanceTypes").error(
                    f"{pool}: a Capacity Block reserves one instance type; allowed: exactly one",
                    list(self.instance_types))
            if not PROFILE_SPECS[self.profile].is_accelerated:
                raise where.child("capacityType").error(
                    f"{pool}: Capacity Blocks reserve accelerated instances; allowed: on-demand, spot",
                    "capacity-block")
        elif self.capacity_reservation_id is not None:
            raise where.child("capacityReservationId").error(
                f"{pool}: only used with capacityType: capacity-block", self.capacity_reservation_id)

    def _check_efa(self, where: Where, pool: str) -> None:
        catalog = [INSTANCE_TYPES.get(t) for t in self.instance_types]
        supported = all(t is not None and t.efa for t in catalog)
        if self.efa and not supported:
            lacking = next(t for t, c in zip(self.instance_types, catalog) if c is None or not c.efa)
            raise where.child("efa").error(
                f"{pool}: {lacking} has no EFA support; allowed: false, or EFA types "
                + ", ".join(n for n, t in INSTANCE_TYPES.items() if t.efa), True)
        if self.efa_enabled:
            cards = {c.network_cards for c in catalog if c is not None}
            if len(cards) > 1:
                raise where.child("instanceTypes").error(
                    f"{pool}: EFA pools need one network-card layout; these types differ ({sorted(cards)} cards)",
                    list(self.instance_types))

    @property
    def desired(self) -> int:
        return self.min_size if self.desired_size is None else self.desired_size

    @property
    def efa_enabled(self) -> bool:
        if self.efa is not None:
            return self.efa
        return all(INSTANCE_TYPES.get(t) is not None and INSTANCE_TYPES[t].efa for t in self.instance_types)

    @property
    def catalog(self) -> list[Any]:
        return [INSTANCE_TYPES[t] for t in self.instance_types if t in INSTANCE_TYPES]
