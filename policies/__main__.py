"""The aiinfra guardrails pack: `pulumi preview --policy-pack policies`. Only builds the pack (which starts
its server and blocks); the rules live in `policies.rules`, which `python -m aiinfra policy` runs offline."""

import sys
from pathlib import Path

# The pack runs from policies/; the rules and the cost model they share are imported from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.rules import ALL_RULES  # noqa: E402
from policies.rules.crossguard import to_policy  # noqa: E402

POLICIES = [to_policy(rule) for rule in ALL_RULES]

PolicyPack(name="aiinfra-guardrails", policies=POLICIES)
