"""The resource graph: every resource the program declared, as the engine would record it.

One graph feeds every offline consumer (preview summary, policy pack, cost, diagram, stack export), so they can
never disagree about what the program declares.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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

    def children(self, urn: str) -> list[ResourceRecord]:
        return [r for r in self.records if r.parent == urn]

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
