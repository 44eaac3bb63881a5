"""Facts every settings section shares: the environments, and the values AWS accepts for log retention and tags."""

from __future__ import annotations

from typing import Literal

ENVIRONMENTS = ("dev", "staging", "prod")
Environment = Literal["dev", "staging", "prod"]

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)

# AWS tag rules (all services): keys 1-128 characters, values 0-256, letters, digits, spaces and _ . : / = + - @;
# the `aws:` prefix is reserved for AWS's own tags.
TAG_CHARACTERS = r"[\w _.:/=+\-@]"
TAG_KEY = rf"(?!aws:){TAG_CHARACTERS}{{1,128}}"
TAG_VALUE = rf"{TAG_CHARACTERS}{{0,256}}"
TAG_RULE = "not a valid AWS tag value; allowed: up to 256 letters, digits, spaces and _ . : / = + - @"
TAG_KEY_RULE = ("not a valid AWS tag key; allowed: 1 to 128 letters, digits, spaces and _ . : / = + - @, "
                "not starting with aws:")
