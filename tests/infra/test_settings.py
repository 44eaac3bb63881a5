"""Stack settings: defaults per environment, and one-line errors that name the file, the key and what is allowed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aiinfra.stackfile import ROOT, load_stack_config
from components.settings import parse_settings


def shipped(stack: str):
    config = load_stack_config(stack, ROOT)
    return parse_settings(config.values, project=config.project, stack=stack, source=config.source)


# What each environment gets when its stack file leaves a key out (README's settings tables).
ENV_DEFAULTS = {
    "dev": {"az_count": 2, "nat_gateways": "single", "flow_log_retention_days": 30, "deletion_window_days": 7,
            "force_destroy": True, "cluster_log_retention_days": 30, "deletion_protection": False,
            "broker_instance_type": "kafka.t3.small", "cache_node_type": "cache.t4g.small", "replicas": 0},
    "staging": {"az_count": 3, "nat_gateways": "single", "flow_log_retention_days": 90, "deletion_window_days": 30,
                "force_destroy": False, "cluster_log_retention_days": 90, "deletion_protection": False,
                "broker_instance_type": "kafka.m7g.large", "cache_node_type": "cache.t4g.medium", "replicas": 1},
    "prod": {"az_count": 3, "nat_gateways": "per-az", "flow_log_retention_days": 365, "deletion_window_days": 30,
             "force_destroy": False, "cluster_log_retention_days": 365, "deletion_protection": True,
             "broker_instance_type": "kafka.m7g.large", "cache_node_type": "cache.r7g.large", "replicas": 2},
}
UNSET = {"aiinfra:network": None, "aiinfra:encryption": None, "aiinfra:storage": None, "aiinfra:streaming": None,
         "aiinfra:featureStore": None,
         "aiinfra:cluster": {"logRetentionDays": None, "deletionProtection": None, "endpointPublicAccess": None}}


@pytest.mark.parametrize("environment", sorted(ENV_DEFAULTS))
def test_unset_keys_take_their_environments_default(write_stack: Callable, environment: str) -> None:
    # The stack files are stripped of these keys, so only the code's per-environment defaults decide.
    config = load_stack_config(environment, ROOT, write_stack(UNSET, base=environment))
    settings = parse_settings(config.values, project="aiinfra", stack=environment, source=config.source)
    chosen = {
        "az_count": settings.network.az_count, "nat_gateways": settings.network.nat_gateways,
        "flow_log_retention_days": settings.network.flow_log_retention_days,
        "deletion_window_days": settings.encryption.deletion_window_days,
        "force_destroy": settings.storage.force_destroy,
        "cluster_log_retention_days": settings.cluster.log_retention_days,
        "deletion_protection": settings.cluster.deletion_protection,
        "broker_instance_type": settings.streaming.broker_instance_type,
        "cache_node_type": settings.feature_store.node_type, "replicas": settings.feature_store.replicas,
    }
    assert chosen == ENV_DEFAULTS[environment]
    assert settings.network.cidr == "10.0.0.0/16"


def test_tags_come_from_the_settings_and_the_stack_identity() -> None:
    for stack in ("dev", "staging", "prod"):
        settings = shipped(stack)
        assert settings.tags == {"environment": stack, "owner": settings.owner, "cost-center": settings.cost_center,
                                 "managed-by": "pulumi", "project": "aiinfra", **settings.extra_tags}
        assert settings.identity.name("vpc") == f"aiinfra-{stack}-vpc"


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
    pytest.param({"aiinfra:owner": {"nested": ["x"]}}, "dev",
                 'aiinfra:owner = {"nested": ["x"]}: expected a string', id="owner-not-a-string"),
    pytest.param({"aiinfra:costCenter": "ml research!"}, "dev",
                 "aiinfra:costCenter = 'ml research!': not a valid AWS tag value", id="cost-center-bad-chars"),
    pytest.param({"aiinfra:owner": "x" * 257}, "dev", "not a valid AWS tag value; allowed: up to 256",
                 id="owner-too-long"),
    pytest.param({"aiinfra:extraTags": {"team": {"nested": 1}}}, "dev",
                 'aiinfra:extraTags.team = {"nested": 1}: expected a string', id="tag-value-not-a-string"),
    pytest.param({"aiinfra:extraTags": {"aws:team": "vision"}}, "dev",
                 "aiinfra:extraTags.aws:team: not a valid AWS tag key", id="tag-key-reserved-prefix"),
    pytest.param({"aiinfra:extraTags": {"k" * 129: "v"}}, "dev", "not a valid AWS tag key", id="tag-key-too-long"),
    pytest.param({"aiinfra:cluster": {"logRetentionDays": 45}}, "dev",
                 "aiinfra:cluster.logRetentionDays = 45: allowed: 1, 3, 5, 7, 14, 30", id="cluster-log-retention"),
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
    path = write_stack({"aiinfra:extraTags": {"ticket": {"secure": "AAABAKxyz"}}, "aiinfra:x": {"secure": "AAAB"}},
                       base="dev")
    config = load_stack_config("dev", ROOT, path)
    assert config.values["aiinfra:x"].startswith("[secret:aiinfra:x - ")
    assert "aiinfra:x" in config.secret_keys
    assert "[secret:(nested)" in config.values["aiinfra:extraTags"]


def test_a_secret_is_never_a_tag_value(settings_error: Callable) -> None:
    # Tags are readable by anyone who can describe the resource; a secret there is refused like any bad value.
    message = settings_error({"aiinfra:extraTags": {"ticket": {"secure": "AAABAKxyz"}}})
    assert "aiinfra:extraTags.ticket = '[secret:" in message and "not a valid AWS tag value" in message
