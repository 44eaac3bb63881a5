"""The resource graph: every resource the program declared, as the engine would record it.

One graph feeds every offline consumer (preview summary, policy pack, cost, diagram, stack export), so they can
never disagree about what the program declares.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class ResourceRecord:
    """One registered resource: identity, place in the tree, and its inputs and outputs as plain JSON."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str = ""
    provider: str = ""
    id: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def props(self) -> Mapping[str, Any]:
        """What a policy sees: the inputs, completed by computed outputs the inputs do not set."""
        return {**self.outputs, **self.inputs}

    @property
    def is_provider(self) -> bool:
        return self.type.startswith("pulumi:providers:")


def canonical_order(records: Iterable[ResourceRecord]) -> list[ResourceRecord]:
    """Records in a deterministic order the engine would accept: the stack first, and every resource after its
    parent, its provider and its dependencies; among resources that are free to go, the smaller URN first.

    The SDK's registration order depends on thread scheduling and its dependency lists on set iteration (string
    hashes differ per process), so the order they arrive in is not stable from run to run; this one is.
    """
    records = list(records)
    by_urn = {r.urn: r for r in records}
    waiting_on: dict[str, set[str]] = {}
    blocks: dict[str, list[str]] = {}
    for record in records:
        before = {record.parent, record.provider.rsplit("::", 1)[0], *record.dependencies} & by_urn.keys()
        before.discard(record.urn)
        waiting_on[record.urn] = before
        for urn in before:
            blocks.setdefault(urn, []).append(record.urn)
    ready = [(r.type != STACK_TYPE, r.urn) for r in records if not waiting_on[r.urn]]
    heapq.heapify(ready)
    ordered: list[ResourceRecord] = []
    while ready:
        _, urn = heapq.heappop(ready)
        ordered.append(by_urn[urn])
        for later in blocks.get(urn, ()):
            waiting_on[later].discard(urn)
            if not waiting_on[later]:
                heapq.heappush(ready, (by_urn[later].type != STACK_TYPE, later))
    if len(ordered) != len(records):
        # A cycle cannot come from a real program (the SDK waits on each dependency); keep what is left as is.
        placed = {r.urn for r in ordered}
        ordered.extend(r for r in records if r.urn not in placed)
    return ordered


@dataclass
class ResourceGraph:
    """All records of one synth, in registration order, plus the stack's exported outputs."""

    project: str
    stack: str
    records: list[ResourceRecord] = field(default_factory=list)
    stack_outputs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, ResourceRecord] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __iter__(self) -> Iterator[ResourceRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def by_urn(self) -> dict[str, ResourceRecord]:
        """URN -> record; built once and rebuilt only when records were added (the synth appends them)."""
        if len(self._index) != len(self.records):
            self._index = {r.urn: r for r in self.records}
        return self._index

    def of_type(self, *types: str) -> list[ResourceRecord]:
        return [r for r in self.records if r.type in types]

    def component_of(self, record: ResourceRecord) -> ResourceRecord | None:
        """The nearest enclosing `aiinfra:` component: what a summary groups a resource under."""
        index = self.by_urn
        parent = index.get(record.parent)
        while parent is not None and not parent.type.startswith("aiinfra:"):
            parent = index.get(parent.parent)
        if parent is None:
            return None
        # Prefer the outermost child of the platform: `aiinfra:platform:AiPlatform` groups everything.
        grand = index.get(parent.parent)
        while grand is not None and grand.type.startswith("aiinfra:") and grand.type != "aiinfra:platform:AiPlatform":
            parent, grand = grand, index.get(grand.parent)
        return parent
