"""Cost: the stack's estimated monthly cost stays within the configured budget (same estimate as `aiinfra cost`),
on a stated basis: the floor (scaled pools at their minimum) or the ceiling (scaled pools at their limits)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core import RuleSet, Stack, Violation, number
from .cost_model import BASES, estimate

rules = RuleSet("cost")


@rules.stack(
    "monthly-budget", severity="medium",
    config={"monthlyBudgetUsd": {"type": "number", "default": 40000, "minimum": 0,
                                 "description": "highest estimated monthly cost (USD) a stack may reach"},
            "basis": {"type": "string", "enum": list(BASES), "default": "floor",
                      "description": "floor: scaled pools (node groups, NodePools, endpoint variants) at their "
                                     "minimum; ceiling: at their limits (maxSize, spec.limits, maxCapacity)"}},
    description="The stack's estimated monthly cost (priced kinds, on-demand and spot, EBS root volumes) is at or "
                "under the configured budget, on the configured basis: the floor (scaled pools at their minimum, "
                "the default) or the ceiling (scaled pools at their limits).",
    remediation="Shrink node groups or endpoint instance counts, use spot for dev and batch pools, or raise "
                "monthlyBudgetUsd after FinOps review; `python -m aiinfra cost --stack <name>` shows the breakdown.")
def monthly_budget(stack: Stack, config: Mapping[str, Any]) -> Iterator[Violation]:
    budget = number(config.get("monthlyBudgetUsd"), 40000) or 0
    basis = "ceiling" if config.get("basis") == "ceiling" else "floor"
    result = estimate(stack)
    total = result.total_at(basis)
    if total > budget:
        top = sorted(result.lines, key=lambda line: line.at(basis), reverse=True)[:3]
        drivers = ", ".join(f"{line.resource.name} ${line.at(basis):,.0f}" for line in top)
        yield Violation(f"estimated monthly cost ${total:,.2f} ({basis}: scaled pools at their "
                        f"{'limits' if basis == 'ceiling' else 'minimum'}) exceeds the budget ${budget:,.2f} "
                        f"(largest: {drivers})")
