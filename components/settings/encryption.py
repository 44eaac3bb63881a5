"""The KMS key section: how long a scheduled key deletion can still be cancelled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from contracts.config import Section, Where, field


@dataclass(frozen=True)
class EncryptionSettings(Section):
    """Customer-managed KMS keys: how long a scheduled deletion can still be cancelled."""

    deletion_window_days: int = field(30, min=7, max=30)

    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {"dev": {"deletion_window_days": 7}}

    def check(self, where: Where) -> None:
        if where.environment == "prod" and self.deletion_window_days < 30:
            raise where.child("deletionWindowDays").error(
                "prod keeps the full 30-day window to recover a key deleted by mistake; allowed: 30",
                self.deletion_window_days)
