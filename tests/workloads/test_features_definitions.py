"""Feature definitions, schemas, validation and the batch fold: no services needed."""

from __future__ import annotations

import dataclasses
import json
import time

import jsonschema
import pytest

from workloads.features import demo
from workloads.features.definitions import USER_ACTIVITY as VIEW
from workloads.features.fold import fold
from workloads.features.validation import REASONS, DeadLetter, Event, validate

NOW = 1_796_000_000_000


def test_schema_files_are_valid_draft7_and_v2_reads_every_v1_record() -> None:
    for version in VIEW.schema_versions:
        jsonschema.Draft7Validator.check_schema(VIEW.schemas[version])
        assert VIEW.schemas[version]["$schema"].startswith("http://json-schema.org/draft-07")
    v1_events = [e for e in demo.events(60, now_ms=NOW) if e["schema_version"] == 1]
    assert v1_events
    for event in v1_events:  # BACKWARD: the newest schema accepts data written with the previous one
        jsonschema.validate(event, VIEW.schemas[1])
        jsonschema.validate(event, VIEW.schemas[2])


def test_valid_events_of_both_versions_are_accepted() -> None:
    for event in demo.events(30, now_ms=NOW):
        result = validate(VIEW, demo.encode(event), NOW)
        assert isinstance(result, Event), result
        assert (result.entity, result.event_id, result.schema_version) == (
            event["user_id"], event["event_id"], event["schema_version"])


@pytest.mark.parametrize("reason", REASONS)
def test_each_bad_record_kind_gets_its_own_dead_letter_reason(reason: str) -> None:
    raw = demo.bad_records(VIEW, NOW)[reason]
    result = validate(VIEW, raw, NOW)
    assert isinstance(result, DeadLetter) and result.reason == reason, result
    assert result.detail and "\n" not in result.detail


def test_dead_letter_details_name_what_is_wrong() -> None:
    bad = demo.bad_records(VIEW, NOW)
    assert "action" in validate(VIEW, bad["schema"], NOW).detail
    assert "user_id" in validate(VIEW, bad["missing_entity_key"], NOW).detail
    assert "99" in validate(VIEW, bad["unknown_schema_version"], NOW).detail
    assert "limit 16384" in validate(VIEW, bad["oversized"], NOW).detail
    # A v1 record may not carry the v2-only field: each version is checked against its own schema.
    v1 = {"schema_version": 1, "event_id": "x", "user_id": "u", "event_time_ms": NOW, "action": "view",
          "text": "t", "amount_cents": 5}
    letter = validate(VIEW, demo.encode(v1), NOW)
    assert isinstance(letter, DeadLetter) and letter.reason == "schema"
    assert isinstance(validate(VIEW, demo.encode({**v1, "schema_version": 2}), NOW), Event)
    assert validate(VIEW, json.dumps([1]).encode(), NOW).reason == "not_json"
    assert validate(VIEW, None, NOW).reason == "not_json"


def test_fold_ignores_order_and_duplicates() -> None:
    events = demo.events(400, users=7, seed=3, now_ms=NOW)
    expected = fold(VIEW, events)
    for seed in range(3):
        assert fold(VIEW, demo.shuffled_with_duplicates(events, seed=seed)) == expected
    assert set(expected) == {e["user_id"] for e in events}


def test_fold_semantics_latest_and_window() -> None:
    hour = 3600 * 1000
    base = (NOW // hour) * hour
    e = lambda i, t, action="view", amount=None: {  # noqa: E731
        "schema_version": 2, "event_id": f"e{i}", "user_id": "u", "event_time_ms": t, "action": action,
        "text": "x" * i, **({"amount_cents": amount} if amount is not None else {})}
    events = [e(1, base - 10), e(2, base + 5, "purchase", 250), e(3, base + 7, "click"), e(4, base + 1, "purchase", 100)]
    values = fold(VIEW, events)["u"]
    # newest by event time is e3 even though e4 arrived last; the window is e3's hour (e2, e3, e4; not e1)
    assert values["last_action"] == "click" and values["last_text_length"] == 3
    assert (values["events_1h"], values["purchases_1h"], values["amount_1h_cents"]) == (3, 2, 350)
    # as of just before e3, e2 was the newest
    earlier = fold(VIEW, events, as_of_ms=base + 6)["u"]
    assert earlier["last_action"] == "purchase" and earlier["events_1h"] == 2
    assert fold(VIEW, events, as_of_ms=base - 11) == {}


def test_a_view_whose_ttl_is_shorter_than_its_lateness_is_refused() -> None:
    with pytest.raises(ValueError, match="online TTL .* must outlast lateness"):
        dataclasses.replace(VIEW, online_ttl_s=3600)


def test_msk_iam_config_signs_a_token_with_the_pods_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.features.kafka import client_config

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    config = client_config("b-1.example:9098", auth="iam", region="us-east-1")
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    token, expiry = config["oauth_cb"](None)
    assert isinstance(token, str) and len(token) > 100
    assert time.time() < expiry < time.time() + 3600
    with pytest.raises(ValueError, match="needs a region"):
        client_config("b:9098", auth="iam", region=None)
    assert "security.protocol" not in client_config("127.0.0.1:9092")
