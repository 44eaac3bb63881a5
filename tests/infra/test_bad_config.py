"""Bad config, tried as a new user would: every `aiinfra:` key of every shipped stack, every key of every
`nodePools[]` entry and every key inside the other sections, each set to a value of the wrong type, is refused
by `python -m aiinfra` with exit 2 and one line naming the stack file and the key, never a traceback."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiinfra.cli import main

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "staging", "prod")


def wrong_type(value: Any) -> Any:
    """A value of another type than `value`, as a stack file could spell it."""
    if isinstance(value, bool):
        return "sometimes"
    if isinstance(value, (int, float)):
        return "many"
    if isinstance(value, str):
        return {"nested": ["x"]}
    if isinstance(value, list):
        return "not-a-list"
    return ["not", "a", "mapping"]


def mutations(stack: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, key path as the error names it, mutated stack document) for every key worth mutating."""
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    for key, value in document["config"].items():
        if not key.startswith("aiinfra:"):
            continue
        changed = copy.deepcopy(document)
        changed["config"][key] = wrong_type(value)
        yield f"{stack}:{key}", key, changed
        if key == "aiinfra:nodePools":
            for i, pool in enumerate(value):
                for field in pool:
                    changed = copy.deepcopy(document)
                    changed["config"][key][i][field] = wrong_type(pool[field])
                    yield f"{stack}:{key}[{i}].{field}", f"{key}[{i}].{field}", changed
        elif isinstance(value, dict):
            for field in value:
                changed = copy.deepcopy(document)
                changed["config"][key][field] = wrong_type(value[field])
                yield f"{stack}:{key}.{field}", f"{key}.{field}", changed


CASES = [pytest.param(path, doc, id=case) for stack in STACKS for case, path, doc in mutations(stack)]


def test_the_mutations_cover_every_top_level_key_and_every_pool_key() -> None:
    ids = {p.id for p in CASES}
    for stack in STACKS:
        config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert {k for k in config if k.startswith("aiinfra:")} <= {i.split(":", 1)[1] for i in ids
                                                                  if i.startswith(f"{stack}:")}
        for i, pool in enumerate(config["aiinfra:nodePools"]):
            assert all(f"{stack}:aiinfra:nodePools[{i}].{f}" in ids for f in pool)


@pytest.mark.parametrize(("key", "document"), CASES)
def test_a_wrong_type_is_refused_with_exit_2_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           key: str, document: dict[str, Any]) -> None:
    stack = document["config"]["aiinfra:environment"] if isinstance(
        document["config"]["aiinfra:environment"], str) else "dev"
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    code = main(["preview", "--stack", stack, "--stack-file", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and err.startswith("error: "), err
    assert f"Pulumi.{stack}.yaml: " in err, err
    head = key.split(".")[0].split("[")[0]
    assert head in err, err


def test_the_real_command_refuses_a_nested_owner_without_a_traceback(tmp_path: Path) -> None:
    # The tag value a new user tried: an object where a string belongs; the real process, exit code included.
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    document["config"]["aiinfra:owner"] = {"nested": ["x"]}
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump(document))
    run = subprocess.run([sys.executable, "-m", "aiinfra", "preview", "--stack", "dev", "--stack-file", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().endswith('aiinfra:owner = {"nested": ["x"]}: expected a string')
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1
