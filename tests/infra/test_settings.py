"""Stack settings: defaults per environment, and one-line errors that name the file, the key and what is allowed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aiinfra.stackfile import ROOT, load_stack_config
from components.settings import parse_settings


def shipped(stack: str):
    config = load_stack_config(stack, ROOT)
    return parse_settings(config.values, project=config.project, stack=stack, source=config.source)


def test_environments_differ_by_data_only() -> None:
    dev, staging, prod = shipped("dev"), shipped("staging"), shipped("prod")
    assert (dev.network.az_count, staging.network.az_count, prod.network.az_count) == (2, 3, 3)
    assert dev.network.nat_gateways == "single" and prod.network.nat_gateways == "per-az"
    assert prod.encryption.deletion_window_days == 30
    assert dev.storage.force_destroy is True and prod.storage.force_destroy is False
    assert prod.tags == {"environment": "prod", "owner": "ml-platform", "cost-center": "ml-production",
                         "managed-by": "pulumi", "project": "aiinfra"}


def test_unset_keys_take_the_environments_default(write_stack: Callable) -> None:
    path = write_stack({"aiinfra:network": None, "aiinfra:encryption": None, "aiinfra:storage": None}, base="dev")
    config = load_stack_config("dev", ROOT, path)
    dev = parse_settings(config.values, project="aiinfra", stack="dev", source=config.source)
    assert dev.network.az_count == 2 and dev.network.flow_log_retention_days == 30
    assert dev.encryption.deletion_window_days == 7
    assert dev.network.cidr == "10.0.0.0/16"


def test_subnets_are_carved_without_overlap() -> None:
    private, public = shipped("prod").network.subnet_layout
    assert private == ("10.30.0.0/20", "10.30.16.0/20", "10.30.32.0/20")
    assert public == ("10.30.128.0/21", "10.30.136.0/21", "10.30.144.0/21")


BAD_CONFIG = [
    pytest.param({"aiinfra:network": {"cidrr": "10.0.0.0/16"}}, "dev",
                 "Pulumi.dev.yaml: aiinfra:network.cidrr: unknown key; did you mean 'cidr'?", id="misspelled-key"),
    pytest.param({"aiinfra:netwrok": {}}, "dev",
                 "Pulumi.dev.yaml: aiinfra:netwrok: unknown key; did you mean 'network'?", id="misspelled-section"),
    pytest.param({"aiinfra:environment": "qa"}, "dev",
                 "aiinfra:environment = 'qa': unknown environment; allowed: dev, staging, prod", id="unknown-env"),
    pytest.param({"aiinfra:network": {"azCount": "three"}}, "dev",
                 "aiinfra:network.azCount = 'three': expected a whole number", id="wrong-type-int"),
    pytest.param({"aiinfra:storage": {"forceDestroy": "yes"}}, "dev",
                 "aiinfra:storage.forceDestroy = 'yes': expected true or false", id="wrong-type-bool"),
    pytest.param({"aiinfra:network": {"cidr": "10.0.0.300/16"}}, "dev",
                 "aiinfra:network.cidr = '10.0.0.300/16': not a valid IPv4 CIDR block", id="cidr-unparsable"),
    pytest.param({"aiinfra:network": {"cidr": "10.0.0.1/16"}}, "dev",
                 "has host bits set", id="cidr-host-bits"),
    pytest.param({"aiinfra:network": {"cidr": "10.0.0.0/8"}}, "dev",
                 "aiinfra:network.cidr = '10.0.0.0/8': VPC prefix must be between /16 and /24", id="cidr-too-big"),
    pytest.param({"aiinfra:network": {"privateSubnetCidrs": ["10.10.0.0/20", "10.10.8.0/21"]}}, "dev",
                 "aiinfra:network.privateSubnetCidrs: privateSubnetCidrs[1] overlaps privateSubnetCidrs[0]",
                 id="cidrs-overlap"),
    pytest.param({"aiinfra:network": {"publicSubnetCidrs": ["10.99.0.0/24", "10.10.200.0/24"]}}, "dev",
                 "aiinfra:network.publicSubnetCidrs[0] = '10.99.0.0/24': not inside the VPC CIDR 10.10.0.0/16",
                 id="cidr-outside-vpc"),
    pytest.param({"aiinfra:network": {"azCount": 7}}, "dev",
                 "aiinfra:network.azCount = 7: out of range; allowed: 2..6", id="az-count-too-high"),
    pytest.param({"aiinfra:network": {"azCount": 1}}, "dev",
                 "aiinfra:network.azCount = 1: out of range; allowed: 2..6", id="az-count-too-low"),
    pytest.param({"aiinfra:network": {"azCount": 2}}, "prod",
                 "aiinfra:network.azCount = 2: prod must be multi-AZ across at least 3 availability zones",
                 id="prod-without-multi-az"),
    pytest.param({"aiinfra:network": {"natGateways": "single"}}, "prod",
                 "aiinfra:network.natGateways = 'single': prod needs one NAT gateway per AZ", id="prod-single-nat"),
    pytest.param({"aiinfra:network": {"natGateways": "shared"}}, "dev",
                 "aiinfra:network.natGateways = 'shared': allowed: single, per-az", id="bad-choice"),
    pytest.param({"aiinfra:network": {"flowLogRetentionDays": 45}}, "dev",
                 "aiinfra:network.flowLogRetentionDays = 45: allowed: 1, 3, 5, 7, 14, 30", id="bad-retention"),
    pytest.param({"aiinfra:encryption": {"deletionWindowDays": 7}}, "prod",
                 "aiinfra:encryption.deletionWindowDays = 7: prod keeps the full 30-day window", id="prod-key-window"),
    pytest.param({"aiinfra:encryption": {"deletionWindowDays": 3}}, "dev",
                 "aiinfra:encryption.deletionWindowDays = 3: out of range; allowed: 7..30", id="key-window-range"),
    pytest.param({"aiinfra:storage": {"forceDestroy": True}}, "prod",
                 "aiinfra:storage.forceDestroy = true: prod protects its data from deletion", id="prod-force-destroy"),
    pytest.param({"aiinfra:owner": ""}, "dev", "aiinfra:owner = '': must not be empty", id="empty-owner"),
    pytest.param({"aiinfra:owner": None}, "dev", "aiinfra:owner: is required", id="missing-owner"),
    pytest.param({"aws:region": None}, "dev", "aws:region: is required", id="missing-region"),
    pytest.param({"aiinfra:extraTags": {"owner": "someone-else"}}, "dev",
                 "aiinfra:extraTags: 'owner' is set from settings and cannot be overridden", id="reserved-tag"),
    pytest.param({"aiinfra:network": "not-a-mapping"}, "dev",
                 "aiinfra:network = 'not-a-mapping': expected a mapping of keys", id="section-not-mapping"),
]


@pytest.mark.parametrize(("overrides", "base", "expected"), BAD_CONFIG)
def test_bad_config_is_one_line_naming_file_and_key(settings_error: Callable, overrides: dict, base: str,
                                                     expected: str) -> None:
    message = settings_error(overrides, base=base)
    assert message.startswith(f"Pulumi.{base}.yaml") or f"Pulumi.{base}.yaml" in message.split(":")[0]
    assert expected in message


def test_secret_config_becomes_a_marked_placeholder(write_stack: Callable) -> None:
    path = write_stack({"aiinfra:extraTags": {"ticket": {"secure": "AAABAKxyz"}}}, base="dev")
    config = load_stack_config("dev", ROOT, path)
    settings = parse_settings(config.values, project="aiinfra", stack="dev", source=config.source)
    assert settings.extra_tags["ticket"].startswith("[secret:")
