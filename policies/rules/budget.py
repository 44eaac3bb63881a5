"""Cost: the stack's estimated monthly cost stays within the configured budget (same estimate as `aiinfra cost`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core import RuleSet, Stack, Violation, number
from .cost_model import estimate

rules = RuleSet("cost")


@rules.stack(
    "monthly-budget", severity="medium",
    config={"monthlyBudgetUsd": {"type": "number", "default": 40000, "minimum": 0,
                                 "description": "highest estimated monthly cost (USD) a stack may reach"}},
    description="The stack's estimated monthly cost (priced kinds, on-demand and spot) is at or under the "
                "configured budget.",
    remediation="Shrink node groups or endpoint instance counts, use spot for dev and batch pools, or raise "
                "monthlyBudgetUsd after FinOps review; `python -m aiinfra cost --stack <name>` shows the breakdown.")
def monthly_budget(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    budget = number(config.get("monthlyBudgetUsd"), 40000) or 0
    result = estimate(stack)
    if result.total > budget:
        top = sorted(result.lines, key=lambda line: line.monthly, reverse=True)[:3]
        drivers = ", ".join(f"{line.resource.name} ${line.monthly:,.0f}" for line in top)
        yield Violation(f"estimated monthly cost ${result.total:,.2f} exceeds the budget ${budget:,.2f} "
                        f"(largest: {drivers})")
