"""The feature pipeline's pods as the dev stack renders them, run on this machine against a real Tansu broker and
a real redis-server: the topic Job's command creates the topics (and succeeds again when re-run), and the
materializer Deployment's command fills Redis with what the demo events fold to.

Each container runs with its rendered command, args and env; only what cannot exist here is replaced, and the
replacements are these: the MSK bootstrap and IAM auth become the local broker and plain TCP, the ElastiCache TLS
URL and its AUTH secret become the local Redis, the S3 offline store becomes a folder, the metrics port a free one,
and the materializer is told to exit once idle (a pod runs until stopped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from confluent_kafka import Producer
from features_services import ROOT, RedisServer, TansuBroker, free_port

from contracts import features as facts
from workloads.features import demo, online
from workloads.features.definitions import USER_ACTIVITY as VIEW
from workloads.features.fold import fold
from workloads.features.kafka import client_config, producer_config


def rendered(stack_graph: Callable, type_token: str, name: str) -> dict:
    [record] = [r for r in stack_graph("dev").of_type(type_token) if r.name == name]
    return record.inputs["spec"]["template"]["spec"]["containers"][0]


def run_container(container: Mapping, replace: Mapping[str, str | None], timeout: float) -> dict:
    """The container's command with its env, `replace` applied (None removes a variable); its JSON output."""
    env = {e["name"]: e["value"] for e in container["env"]}
    for key, value in replace.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    assert container["command"][0] == "python"
    done = subprocess.run([sys.executable, *container["command"][1:], *container["args"]], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}


@pytest.fixture
def broker(tmp_path: Path):
    b = TansuBroker(tmp_path)
    yield b
    b.stop()


def test_the_rendered_topic_job_and_materializer_run_the_projects_commands(
        stack_graph: Callable, broker: TansuBroker, tmp_path: Path) -> None:
    local_kafka = {facts.ENV_BOOTSTRAP: broker.bootstrap, facts.ENV_KAFKA_AUTH: "none"}
    job = rendered(stack_graph, "kubernetes:batch/v1:Job", "features-topics-user_activity")
    # dev leaves replication to the brokers' default (-1); the local broker is asked for the same.
    assert {e["name"]: e["value"] for e in job["env"]}[facts.ENV_REPLICATION] == "-1"
    assert run_container(job, local_kafka, 60) == {t: "created" for t in facts.USER_ACTIVITY.topics}
    assert run_container(job, local_kafka, 60) == {t: "exists" for t in facts.USER_ACTIVITY.topics}  # safe to re-run

    events = demo.events(800, users=20, seed=13)
    demo.produce(Producer(producer_config(client_config(broker.bootstrap))), VIEW, events)
    server = RedisServer()
    try:
        container = rendered(stack_graph, "kubernetes:apps/v1:Deployment", "features-materializer-user_activity")
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env[facts.ENV_REDIS_URL].startswith("rediss://") and env[facts.ENV_OFFLINE_URI].startswith("s3://")
        run_container(container, {**local_kafka, facts.ENV_REDIS_URL: server.url,
                                  facts.ENV_REDIS_AUTH_SECRET_ARN: None, facts.ENV_OFFLINE_URI: str(tmp_path / "offline"),
                                  facts.ENV_OFFLINE_KMS_KEY_ID: None, facts.ENV_METRICS_PORT: str(free_port()),
                                  "FEATURES_EXIT_WHEN_IDLE": "3", "FEATURES_OFFLINE_FLUSH_S": "1"}, 120)
        assert online.dump(server.client(), VIEW) == fold(VIEW, events)
        assert any((tmp_path / "offline").rglob("*.parquet"))
    finally:
        server.stop()
