"""The list of taggable AWS types the pack ships (policies/rules/taggable_types.txt), scanned from the installed
pulumi-aws. Lives with the tests, not in the pack: the pack runs without pulumi-aws. Regenerate after upgrading
the provider: `python tests/policies/taggable_types.py`."""

from __future__ import annotations

import re
from pathlib import Path

import pulumi_aws

TAGGABLE_FILE = Path(__file__).resolve().parents[2] / "policies" / "rules" / "taggable_types.txt"


def scan_taggable_types() -> list[str]:
    """Every resource token in the installed pulumi-aws whose class computes `tags_all`."""
    token = re.compile(r"__init__\(\s*'(aws:[^']+)'")
    found: set[str] = set()
    for path in Path(pulumi_aws.__file__).parent.glob("*/*.py"):
        text = path.read_text()
        if '"tags_all"' in text:
            match = token.search(text)
            if match:
                found.add(match.group(1))
    return sorted(found)


if __name__ == "__main__":
    found = scan_taggable_types()
    TAGGABLE_FILE.write_text("\n".join(found) + "\n")
    print(f"wrote {TAGGABLE_FILE}: {len(found)} taggable types")
