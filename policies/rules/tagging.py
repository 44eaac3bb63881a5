"""Required tags on every taggable AWS resource, counting the provider's default tags as the engine does."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from .core import Resource, RuleSet

rules = RuleSet("tagging")

# The AWS types that take tags (their provider schema has `tagsAll`), generated from the installed pulumi-aws by
# `python -m policies.rules.tagging` and checked against it by the tests, so the pack needs no schema at runtime.
TAGGABLE_FILE = Path(__file__).with_name("taggable_types.txt")
REQUIRED_TAGS = ["environment", "owner", "cost-center", "managed-by"]


@lru_cache(maxsize=1)
def taggable_types() -> frozenset[str]:
    return frozenset(line.strip() for line in TAGGABLE_FILE.read_text().splitlines() if line.strip())


def scan_taggable_types() -> list[str]:
    """Every resource token in the installed pulumi-aws whose class computes `tags_all`."""
    import pulumi_aws

    token = re.compile(r"__init__\(\s*'(aws:[^']+)'")
    found: set[str] = set()
    for path in Path(pulumi_aws.__file__).parent.glob("*/*.py"):
        text = path.read_text()
        if '"tags_all"' in text:
            match = token.search(text)
            if match:
                found.add(match.group(1))
    return sorted(found)


@rules.resource(
    "required-tags", types=(), severity="low", enforcement="advisory",
    config={"requiredTags": {"type": "array", "items": {"type": "string"}, "default": REQUIRED_TAGS,
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


if __name__ == "__main__":
    TAGGABLE_FILE.write_text("\n".join(scan_taggable_types()) + "\n")
    print(f"wrote {TAGGABLE_FILE}: {len(taggable_types.__wrapped__())} taggable types")
