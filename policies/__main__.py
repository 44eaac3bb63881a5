"""The aiinfra guardrails pack: `pulumi preview --policy-pack policies`. Only builds the pack (which starts
its server and blocks); the rules live in `policies.rules`, which `python -m aiinfra policy` runs offline.

The pack's venv has `policies` (editable) and `contracts` installed from requirements.txt, so these imports
resolve without the repository root on sys.path."""

from pulumi_policy import PolicyPack

from policies.rules import ALL_RULES
from policies.rules.crossguard import to_policy

POLICIES = [to_policy(rule) for rule in ALL_RULES]

PolicyPack(name="aiinfra-guardrails", policies=POLICIES)
