"""Both sides of every contract: what the rendered platform sets and exports, and what the workloads read.

`workloads/` is tied to `components/` only by names (env vars, stack outputs, S3 prefixes, secret fields,
ports). The components take them from `contracts/`; the workloads are scanned statically (their images do not
ship `contracts/` yet, so they keep their own spelling, which must equal the contract's).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import env, outputs, ports, secrets, storage

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "workloads"
EXPANSION = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
STACKS = ("dev", "staging", "prod")


def workload_strings() -> set[str]:
    """Every string constant in workloads/ (f-string parts included), and the value of every `contracts.env`
    name a workload refers to (`names.RUN`, `env.RUN`, or imported by name): the names the workloads can read."""
    found: set[str] = set()
    for path in WORKLOADS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
            elif isinstance(node, ast.Attribute) and isinstance(getattr(env, node.attr, None), str):
                found.add(getattr(env, node.attr))
            elif isinstance(node, ast.ImportFrom) and node.module == "contracts.env":
                found.update(getattr(env, alias.name) for alias in node.names
                             if isinstance(getattr(env, alias.name, None), str))
    return found


def serving_options() -> set[str]:
    """SERVING_<OPTION> for every field of the model server's config (each option reads that variable)."""
    import dataclasses

    from workloads.serving.config import ServerConfig, env_of

    return {env_of(f) for f in dataclasses.fields(ServerConfig)}


def features_options(names: set[str]) -> set[str]:
    """Those of `names` that `python -m workloads.features` reads: every flag defaults to FEATURES_<FLAG> (its
    `env()` lower-cases the name, so no string constant spells it); a variable counts as read when setting it
    to a marker makes some flag's default that marker."""
    import os
    from unittest import mock

    from workloads.features.__main__ import parser

    marker, read = "7391", set()
    for name in names:
        with mock.patch.dict(os.environ, {name: marker}):
            p = parser()
        actions = [a for sub in p._subparsers._group_actions for choice in sub.choices.values()  # type: ignore[union-attr]
                   for a in choice._actions] + list(p._actions)
        if any(str(a.default).removesuffix(".0") == marker for a in actions):
            read.add(name)
    return read


def containers(graph: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner/name, container) for every container of every rendered Kubernetes workload."""
    for record in graph:
        if record.type in ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"):
            pod = record.inputs["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                yield f"{record.name}/{container['name']}", container


def read_by_a_workload(name: str, strings: set[str], serving: set[str]) -> bool:
    return (name in strings or name in serving or name == env.AWS_REGION
            or name.startswith(env.RUNTIME_PREFIXES))


# Set by components/cluster_workloads.py for the runtime, not for this project's code: HOME points the
# libraries' caches at the writable /tmp of a read-only root filesystem.
SET_BUT_UNREAD = {"HOME"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_variable_a_container_gets_is_read_by_it(stack_graph: Callable, stack: str) -> None:
    strings, serving = workload_strings(), serving_options()
    unread = set()
    for where, container in containers(stack_graph(stack)):
        command = " ".join([*container.get("command", []), *container.get("args", [])])
        for variable in container.get("env", []):
            name = variable["name"]
            if not (read_by_a_workload(name, strings, serving) or f"$({name})" in command):
                unread.add(name)
    unread -= features_options({n for n in unread if n.startswith("FEATURES_")})
    assert unread - SET_BUT_UNREAD == set()
    assert SET_BUT_UNREAD - unread == set(), "now read: delete these from SET_BUT_UNREAD"


@pytest.mark.parametrize("stack", STACKS)
def test_every_variable_a_command_expands_is_set(stack_graph: Callable, stack: str) -> None:
    # The kubelet leaves an undefined $(NAME) in the command as it is: the workload would get the literal.
    for where, container in containers(stack_graph(stack)):
        defined = {v["name"] for v in container.get("env", [])}
        for part in [*container.get("command", []), *container.get("args", [])]:
            missing = set(EXPANSION.findall(part)) - defined - {"JOB_COMPLETION_INDEX"}
            assert not missing, f"{where}: {missing}"


def test_the_model_server_gets_what_it_must_read_on_every_stack(stack_graph: Callable) -> None:
    assert {env.SERVING_MODEL_DIR, env.SERVING_PORT, env.SERVING_REDIS_URL,
            env.SERVING_REDIS_AUTH_SECRET_ARN} <= serving_options()
    for stack in STACKS:
        server = next(c for where, c in containers(stack_graph(stack)) if where.endswith("/server"))
        values = {v["name"]: v.get("value") for v in server["env"]}
        assert values[env.SERVING_PORT] == str(ports.MODEL_SERVER)
        assert values[env.SERVING_REDIS_URL].startswith("rediss://")
        assert values[env.SERVING_REDIS_URL].endswith(f":{ports.REDIS}")
        assert values[env.SERVING_REDIS_AUTH_SECRET_ARN] == stack_graph(stack).stack_outputs[
            outputs.FEATURE_STORE_SECRET_ARN]
        assert [p["containerPort"] for p in server["ports"]] == [ports.MODEL_SERVER]


def _assigned(path: Path, name: str) -> Any:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets) and isinstance(node.value, ast.Constant):
                return node.value.value
    raise AssertionError(f"{path.relative_to(ROOT)} assigns no constant {name}")


def test_the_workloads_spell_the_shared_names_as_the_contracts_do() -> None:
    assert _assigned(WORKLOADS / "serving" / "secrets.py", "TOKEN_FIELD") == secrets.FEATURE_STORE_AUTH_TOKEN
    assert _assigned(WORKLOADS / "compilation" / "manifest.py", "MANIFEST_FILE") == storage.MANIFEST_FILE
    assert _assigned(WORKLOADS / "training" / "checkpoint.py", "COMPLETE_FILE") == storage.CHECKPOINT_COMPLETE_FILE
    assert _assigned(WORKLOADS / "training" / "entry.py", "MASTER_PORT") == str(ports.TORCHRUN)
    from workloads.serving.config import ServerConfig

    assert ServerConfig.__dataclass_fields__["port"].default == ports.MODEL_SERVER
    launch = (WORKLOADS / "training" / "launch.py").read_text(encoding="utf-8")
    # The launcher's fallbacks when a stack has no checkpointS3Uri output or no --output-s3-uri.
    assert f"}}/{storage.CHECKPOINTS}\"" in launch and f"}}/{storage.TRAINED}\"" in launch


def test_the_stack_outputs_the_training_launcher_reads_are_exported(stack_graph: Callable) -> None:
    tree = ast.parse((WORKLOADS / "training" / "launch.py").read_text(encoding="utf-8"))
    read = {str(n.args[0].value) for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
            and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)
            and ((isinstance(n.func, ast.Name) and n.func.id == "text")
                 or (isinstance(n.func, ast.Attribute) and n.func.attr == "get"
                     and isinstance(n.func.value, ast.Name) and n.func.value.id == "data"))}
    assert {outputs.TRAINING_ROLE_ARN, outputs.PRIVATE_SUBNET_IDS, outputs.CHECKPOINT_S3_URI} <= read
    exported = set(stack_graph("prod").stack_outputs)
    assert read - exported == set()


def test_every_exported_name_is_spelled_by_the_contracts(stack_graph: Callable) -> None:
    fixed = {v for k, v in vars(outputs).items() if k.isupper() and isinstance(v, str)}
    for stack in STACKS:
        graph = stack_graph(stack)
        pools = {r.inputs["labels"]["aiinfra.io/node-pool"] for r in graph.of_type("aws:eks/nodeGroup:NodeGroup")}
        endpoints = set(graph.stack_outputs[outputs.INFERENCE_ENDPOINTS])
        spelled = (fixed
                   | {outputs.key_arn(d) for d in ("data", "models", "logs", "cluster", "streaming", "monitoring")}
                   | {outputs.bucket_name(b) for b in ("datasets", "models", "logs")}
                   | {outputs.repository_url(r) for r in ("training", "compilation", "serving")}
                   | {f(r) for r in ("training", "compilation", "serving")
                      for f in (outputs.service_account_role_arn, outputs.service_account)}
                   | {outputs.node_pool(p) for p in pools} | {outputs.endpoint(e) for e in endpoints})
        assert set(graph.stack_outputs) == spelled, stack


def test_one_camel_case_rule_for_keys_and_output_names() -> None:
    from contracts.config import camel

    assert camel("az_count") == "azCount" and camel("text-classifier") == "textClassifier"
    assert outputs.node_pool("train") == "nodePoolTrain" and outputs.endpoint("text-embedder") == "textEmbedderEndpoint"
