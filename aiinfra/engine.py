"""Runs the real Pulumi program for a stack under Pulumi's mocks and records every resource it declares.

The program is `__main__.py` itself, executed as the CLI's language host would execute it: the offline path
never forks the program's logic. Each synth runs in a fresh `contextvars` context with its own event loop, so
several stacks can be rendered in one process (tests, benchmarks) without leaking Pulumi's global state.

Speed (see BENCHMARKS.md, engine section): a mock run needs three things the SDK does for a real deployment
not at all, or not the way it does them, and none of them changes what the program declares (the golden-export
test proves it byte for byte):
- the SDK captures a stack trace (every frame, with source lines) for every resource so the engine can point at
  source positions; the recording monitor never reads it, so `_get_stack_trace` answers an empty trace while a
  synth runs (the SDK has no switch for it; the original is put back afterwards);
- the SDK's final wait re-waits on every outstanding output after each one completes (`asyncio.wait(...,
  FIRST_COMPLETED)` over the whole set), quadratic in the number of outputs; the engine first waits on each
  output once, in turn, so the SDK's own wait finds nothing left to do but re-raise a failure;
- Pulumi's futures, tasks and outputs are reference cycles by the ten thousand: the cyclic garbage collector
  stays off during a synth (nothing in it is garbage before the synth ends) and is switched back on after.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from inspect import isawaitable
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_in_stack

from aiinfra.graph import STACK_TYPE, ResourceGraph, ResourceRecord, canonical_order
from aiinfra.mocks import PlatformMocks
from aiinfra.stackfile import ROOT, StackConfig, load_stack_config
from components import settings as settings_module

# Pulumi's wire markers (see sdk/proto): secrets and resource references inside property structs.
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET_MARK = "[secret]"

Progress = Callable[[ResourceRecord], None]


def plain(value: Any) -> Any:
    """Unwrap Pulumi's wire markers: secrets become a visible placeholder, references their URN."""
    if isinstance(value, dict):
        sig = value.get(SIG_KEY)
        if sig == SECRET_SIG:
            return SECRET_MARK
        if sig == RESOURCE_SIG:
            return value.get("urn", "")
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if value == UNKNOWN:
        return None
    return value


def secret_paths(value: Any, prefix: str = "") -> list[str]:
    """Property paths that hold secrets in a wire-format property struct."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return [prefix]
        return [p for k, v in value.items() for p in secret_paths(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in secret_paths(v, f"{prefix}[{i}]")]
    return []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock resource monitor, plus a record of what the engine would see for each registration."""

    def __init__(self, mocks: PlatformMocks, graph: ResourceGraph, progress: Progress | None) -> None:
        super().__init__(mocks)
        self.graph = graph
        self.progress = progress

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """As the real engine does: the root stack is not part of its children's qualified type."""
        if parent and parent.split("::")[2] == STACK_TYPE:
            parent = ""
        return super().make_urn(parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        raw_inputs = json_format.MessageToDict(request.object)
        raw_outputs = json_format.MessageToDict(response.object) if response.object else {}
        # The SDK collects dependencies in sets: sort them so every run records the same lists.
        deps = {k: tuple(sorted(v.urns)) for k, v in request.propertyDependencies.items()}
        # The mock echoes secret inputs back in plain text; mask them in the outputs as the engine would,
        # together with the outputs the provider schema declares secret (e.g. a generated password).
        secret_outputs = set(request.additionalSecretOutputs) | {
            path.split(".")[0].split("[")[0] for path in secret_paths(raw_inputs)}
        outputs = {k: (SECRET_MARK if k in secret_outputs else v) for k, v in plain(raw_outputs).items()}
        record = ResourceRecord(
            urn=response.urn, type=request.type, name=request.name, custom=bool(request.custom),
            parent=request.parent, provider=request.provider, id=response.id,
            dependencies=tuple(sorted(request.dependencies)), property_dependencies=deps,
            inputs=plain(raw_inputs), outputs=outputs if request.type != STACK_TYPE else {},
        )
        self.graph.records.append(record)
        if self.progress is not None:
            self.progress(record)
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        if request.urn.split("::")[2] == STACK_TYPE:
            self.graph.stack_outputs.update(plain(json_format.MessageToDict(request.outputs)))
        return super().RegisterResourceOutputs(request)


def synthesize(stack: str, *, root: Path = ROOT, stack_file: Path | None = None,
               progress: Progress | None = None) -> ResourceGraph:
    """Render `stack` by running `__main__.py` offline; bad config raises `SettingsError`."""
    config = load_stack_config(stack, root, stack_file)
    program = str(root / "__main__.py")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return run_program(lambda: runpy.run_path(program, run_name="__main__"), config, progress=progress)


def run_program(program: Callable[[], Any], config: StackConfig, *,
                progress: Progress | None = None) -> ResourceGraph:
    """Run any Pulumi program callable under the recording mocks, with `config` as its stack config.

    `synthesize` uses this for the real program; tests use it for small programs built from the same
    provider classes, so both go through one engine path.
    """
    with _mock_run_switches():
        return contextvars.Context().run(_run, program, config, progress)


@contextlib.contextmanager
def _mock_run_switches() -> Iterator[None]:
    """What a mock run does without: per-resource stack traces and the cyclic GC (module docstring)."""
    capture = runtime_resource._get_stack_trace
    collecting = gc.isenabled()
    runtime_resource._get_stack_trace = source_pb2.StackTrace
    gc.disable()
    try:
        yield
    finally:
        runtime_resource._get_stack_trace = capture
        if collecting:
            gc.enable()


async def _settle(program: Callable[[], Any]) -> None:
    """Run the program, then wait for every output it left pending, each once (module docstring).

    A failed output is left where it is: the SDK's own wait re-raises it as it would have.
    """
    result = program()
    if isawaitable(result):
        await result
    tracked = runtime_settings.SETTINGS
    while True:
        with tracked.lock:
            pending = [task for task in tracked.outputs if not task.done()]
        if not pending:
            return
        for task in pending:
            if not task.done():
                await asyncio.wait((task,))


def _run(program: Callable[[], Any], config: StackConfig, progress: Progress | None) -> ResourceGraph:
    graph = ResourceGraph(config.project, config.stack, config={**config.values})
    region = config.values.get("aws:region", "us-east-1")
    monitor = RecordingMonitor(PlatformMocks(region), graph, progress)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        runtime_settings.configure(pulumi_mocks.MockSettings(
            monitor=monitor, monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
            engine=pulumi_mocks.MockEngine(None), project=config.project, stack=config.stack,
            dry_run=False, organization="organization", callbacks=None,
            # The SDK's tracked outputs default to one set shared by every context: give each synth its own,
            # so a failed synth's outputs (bound to its closed loop) never reach the next one.
            outputs=set(), lock=threading.Lock(),
        ))
        runtime_settings.ROOT.set(None)
        runtime_config.set_all_config(dict(config.values), list(config.secret_keys))
        settings_module.STACK_SOURCE.set(config.source)
        loop.run_until_complete(run_in_stack(lambda: _settle(program)))
    finally:
        _drain(loop)
        asyncio.set_event_loop(None)
        loop.close()
    graph.records[:] = canonical_order(graph.records)
    return graph


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """After a failed program, cancel what Pulumi left scheduled so it dies quietly with the loop."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
