"""Required tags on every taggable AWS resource, counting the provider's default tags as the engine does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from .core import Resource, RuleSet

rules = RuleSet("tagging")

# The AWS types that take tags (their provider schema has `tagsAll`), generated from the installed pulumi-aws by
# `python tests/policies/taggable_types.py` and checked against it by the tests, so the pack needs no provider
# (and no schema) at runtime.
TAGGABLE_FILE = Path(__file__).with_name("taggable_types.txt")
REQUIRED_TAGS = ["environment", "owner", "cost-center", "managed-by"]


@lru_cache(maxsize=1)
def taggable_types() -> frozenset[str]:
    return frozenset(line.strip() for line in TAGGABLE_FILE.read_text().splitlines() if line.strip())


@rules.resource(
    "required-tags", types=(), severity="low", enforcement="advisory",
    config={"requiredTags": {"type": "array", "default": REQUIRED_TAGS, "uniqueItems": True,
                             "items": {"type": "string", "minLength": 1, "maxLength": 128},
                             "description": "tag keys every taggable AWS resource must carry (default tags count)"}},
    description="Every taggable AWS resource carries the required tags (environment, owner, cost-center, "
                "managed-by), from the provider's default tags or its own.",
    remediation="Create resources through the platform's AWS provider (default_tags from settings.tags) or add the "
                "missing tags.")
def required_tags(resource: Resource, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.type not in taggable_types():
        return
    missing = [t for t in (config.get("requiredTags") or []) if not resource.tags.get(t)]
    if missing:
        yield f"missing required tag(s) {', '.join(missing)}"

