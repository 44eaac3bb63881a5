"""Every rule of the pack, grouped by concern; the pack's `__main__` and the offline runner both import this."""

from __future__ import annotations

from . import (accelerators, admission, budget, capacity, encryption, exposure, hardening, identity, operations,
               tagging)
from .core import Resource, Rule, Stack, Violation

ALL_RULES: tuple[Rule, ...] = tuple(
    rule for module in (encryption, exposure, identity, hardening, admission, accelerators, capacity, operations,
                        tagging, budget)
    for rule in module.rules)

__all__ = ["ALL_RULES", "Resource", "Rule", "Stack", "Violation"]
