"""Small readers over recorded resources that every view of the diagram shares."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiinfra.graph import ResourceRecord


def strings(value: Any) -> Iterable[str]:
    """Every string inside a JSON-like value, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings(item)


def keyed_strings(value: Any, key: str = "") -> Iterable[tuple[str, str]]:
    """(nearest enclosing key, string) for every string inside a JSON-like value."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from keyed_strings(item, str(name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from keyed_strings(item, key)


def service_of(type_token: str) -> str:
    """`aws:s3/bucket:Bucket` -> `aws:s3`: resources of one cloud service fold into each other."""
    provider, _, rest = type_token.partition(":")
    return f"{provider}:{rest.split('/', 1)[0]}"


def class_of(type_token: str) -> str:
    return type_token.rsplit(":", 1)[-1]


def words(camel: str) -> str:
    """`ReplicationGroup` -> `replication group`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", camel).lower()


def display_name(record: ResourceRecord) -> str:
    """What an operator calls the resource: its cloud name, a Kubernetes object's name, else the logical name."""
    props = record.props
    metadata = props.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        return str(metadata["name"])
    for key in ("name", "nodeGroupName", "addonName", "bucket", "replicationGroupId", "clusterName"):
        value = props.get(key)
        if isinstance(value, str) and value:
            return value
    tags = props.get("tags")
    if isinstance(tags, Mapping) and isinstance(tags.get("Name"), str):
        return str(tags["Name"])
    return record.name


def policy_document(value: Any) -> dict[str, Any]:
    """An IAM policy as a dict, whether the record holds it as JSON text or as an object."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def common_prefix_stripped(names: list[str]) -> list[str]:
    """`[net-a, net-b]` -> `[a, b]`: the members of a collapsed node without the prefix they share."""
    if len(names) < 2:
        return names
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind(sep) for sep in "-./_") + 1 if prefix else 0
    return [name[cut:] or name for name in names]
