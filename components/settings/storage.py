"""The buckets and repositories section: lifecycle, retention and deletion safety."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from contracts.config import Section, Where, field


@dataclass(frozen=True)
class StorageSettings(Section):
    """Buckets and image repositories: lifecycle, retention and whether a stack may delete non-empty ones."""

    force_destroy: bool = field(False, doc="allow deleting non-empty buckets and repositories")
    noncurrent_version_days: int = field(90, min=1, max=3650)
    infrequent_access_after_days: int = field(30, min=30, max=3650)
    log_expiration_days: int = field(365, min=1, max=3650)
    image_retention_count: int = field(100, min=1, max=10000, doc="tagged images kept per repository")

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "dev": {"force_destroy": True, "noncurrent_version_days": 7, "log_expiration_days": 30,
                "image_retention_count": 20},
        "staging": {"noncurrent_version_days": 30, "log_expiration_days": 90},
    }

    def check(self, where: Where) -> None:
        if where.environment == "prod" and self.force_destroy:
            raise where.child("forceDestroy").error("prod protects its data from deletion; allowed: false", True)
        if self.log_expiration_days <= self.infrequent_access_after_days and self.log_expiration_days > 30:
            raise where.child("logExpirationDays").error(
                f"must exceed infrequentAccessAfterDays ({self.infrequent_access_after_days})",
                self.log_expiration_days)
