"""Data-layer facts the stack and `workloads.features` share: topics, schemas, env vars, port, S3 prefix.

The stack creates these topics and registers these schemas; the materializer reads and writes them. A
feature view's full definition (transformation, features, TTLs) lives in `workloads/features/definitions.py`;
what the infrastructure must agree on lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# JSON Schema files, one per version: `<schema>.v<N>.json`, shipped with this package (package data). The stack
# registers the newest in Glue; producers and the materializer check records against each.
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


@dataclass(frozen=True)
class StreamSpec:
    """One feature view's event stream: its topics, partitions and schema."""

    view: str
    source_topic: str
    dead_letter_topic: str
    partitions: int
    schema_name: str
    schema_versions: tuple[int, ...]

    @property
    def topics(self) -> tuple[str, str]:
        return (self.source_topic, self.dead_letter_topic)

    def schema_file(self, version: int | None = None) -> Path:
        return SCHEMA_DIR / f"{self.schema_name}.v{version or max(self.schema_versions)}.json"


USER_ACTIVITY = StreamSpec(view="user_activity", source_topic="user-activity",
                           dead_letter_topic="user-activity-dead-letters", partitions=6,
                           schema_name="user_activity", schema_versions=(1, 2))
STREAMS: tuple[StreamSpec, ...] = (USER_ACTIVITY,)

# Under the datasets bucket: events/ and features/ Parquet, written only by the materializer and backfill.
OFFLINE_PREFIX = "features/"
METRICS_PORT = 9400
# The materializer's consumer group is `<project>-<env>-<view>-materializer`, inside the MSK consumer policy's
# `<project>-<env>-*` group scope.
GROUP_SUFFIX = "-materializer"


def consumer_group(name_prefix: str, view: str) -> str:
    """The materializer's consumer group on the platform (also the lag alarm's `Consumer Group` dimension)."""
    return f"{name_prefix}{view}{GROUP_SUFFIX}"


# Every flag of `python -m workloads.features` has a FEATURES_<FLAG> variable; these are the ones the stack sets.
ENV_BOOTSTRAP = "FEATURES_BOOTSTRAP"
ENV_KAFKA_AUTH = "FEATURES_KAFKA_AUTH"
ENV_REGION = "FEATURES_REGION"
ENV_REDIS_URL = "FEATURES_REDIS_URL"
ENV_REDIS_AUTH_SECRET_ARN = "FEATURES_REDIS_AUTH_SECRET_ARN"
ENV_OFFLINE_URI = "FEATURES_OFFLINE_URI"
ENV_OFFLINE_KMS_KEY_ID = "FEATURES_OFFLINE_KMS_KEY_ID"
ENV_GROUP = "FEATURES_GROUP"
ENV_VIEW = "FEATURES_VIEW"
ENV_METRICS_PORT = "FEATURES_METRICS_PORT"
ENV_REPLICATION = "FEATURES_REPLICATION"
ENV_BATCH = "FEATURES_BATCH"
