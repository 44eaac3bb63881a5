"""Build one component by itself under the offline mocks, with stand-ins for its upstream outputs.

The same engine path as the whole program (`aiinfra.engine.run_program`), with mocks that also record the
provider calls made and can answer for another partition, so a test sees what the component chose from its
own settings and inputs, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from aiinfra import engine
from aiinfra.graph import ResourceGraph, ResourceRecord
from aiinfra.mocks import PlatformMocks
from aiinfra.stackfile import StackConfig
from components.settings import StackIdentity
from contracts.config import Where, parse

PARTITIONS = {
    "aws": {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"},
    "aws-cn": {"partition": "aws-cn", "dnsSuffix": "amazonaws.com.cn", "id": "aws-cn",
               "reverseDnsPrefix": "cn.com.amazonaws"},
}


@dataclass
class Built:
    graph: ResourceGraph
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def one(self, type_token: str, name: str | None = None) -> ResourceRecord:
        found = [r for r in self.graph.of_type(type_token) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_token} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def all(self, type_token: str) -> list[ResourceRecord]:
        return self.graph.of_type(type_token)


def section(cls: type, raw: Mapping[str, Any] | None = None, environment: str = "dev") -> Any:
    """A settings section parsed as the stack loader parses it (defaults and checks included)."""
    return parse(cls, dict(raw or {}), Where("test.yaml", "aiinfra:test", environment=environment))


def identity(region: str = "us-east-1", environment: str = "dev") -> StackIdentity:
    return StackIdentity(project="aiinfra", stack=environment, region=region, environment=environment)


def build(monkeypatch: pytest.MonkeyPatch, program: Callable[[], Any], *, region: str = "us-east-1",
          partition: str = "aws", stack: str = "dev") -> Built:
    """Run `program` (which declares the component) alone; returns its resources and the provider calls."""
    built = Built(ResourceGraph("aiinfra", stack, config={}))

    class Recording(PlatformMocks):
        def call(self, args: Any) -> dict[str, Any]:
            built.calls.append((args.token, dict(args.args)))
            if args.token == "aws:index/getPartition:getPartition":
                return dict(PARTITIONS[partition])
            return super().call(args)

    monkeypatch.setattr(engine, "PlatformMocks", Recording)
    config = StackConfig("aiinfra", stack, "test.yaml", {"aws:region": region}, ())
    built.graph = engine.run_program(program, config)
    return built


def serving_metrics(cluster: str = "standin-eks") -> Any:
    """Where a stand-in cluster's model-server metrics land, as `Telemetry` would describe them."""
    from components.telemetry import PROMETHEUS, ServingMetrics

    return ServingMetrics(cluster_name=cluster, region="us-east-1", prometheus_namespace=PROMETHEUS,
                          dimensions={"ClusterName": cluster, "Namespace": "serving", "Service": "model-server"},
                          log_namespace=f"aiinfra/eks/{cluster}")
