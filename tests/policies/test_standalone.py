"""The pack stands alone: `policies/` imports nothing of the repository but `contracts`, edits no sys.path, and
its own tests (policies/tests) pass with only the pack's requirements and the contracts module around."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policies"
# What the pack must never need: the rest of the repository, and the infrastructure program's providers.
FORBIDDEN = ("aiinfra", "components", "workloads", "stacks", "bench", "tests", "pulumi_aws", "pulumi_kubernetes",
             "pulumi_random")
LEFT_OUT = shutil.ignore_patterns("venv", ".venv", "build", "*.egg-info", "__pycache__", "*.pyc")


def _standalone_copy(tmp_path: Path) -> Path:
    """policies/ and contracts/ alone, side by side, as a fresh checkout of the two would lay them out."""
    shutil.copytree(PACK, tmp_path / "policies", ignore=LEFT_OUT)
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts", ignore=LEFT_OUT)
    return tmp_path


def _imports(path: Path) -> set[str]:
    """Top-level names a module imports, plus `sys.path` when it touches the import path."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                and node.value.id == "sys"):
            found.add("sys.path")
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_pack_modules_import_only_contracts_of_the_repository() -> None:
    offenders = {}
    for path in sorted(PACK.rglob("*.py")):
        if {"venv", ".venv", "build"} & set(path.relative_to(PACK).parts):
            continue
        bad = sorted(_imports(path) & {*FORBIDDEN, "sys.path"})
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


BLOCKED_RUN = textwrap.dedent("""
    import importlib.abc, pkgutil, sys

    class Forbidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {forbidden!r}:
                raise ImportError(f"the policy pack imported {{name}}")
            return None

    sys.meta_path.insert(0, Forbidden())
    sys.path.insert(0, {root!r})
    import policies
    for module in pkgutil.walk_packages(policies.__path__, "policies."):
        if module.name not in ("policies.__main__",):
            __import__(module.name)
    import pytest
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", {tests!r}]))
""")


def test_pack_tests_pass_with_only_policies_and_contracts_on_the_path(tmp_path: Path) -> None:
    # `python -I`: no PYTHONPATH, no current directory; only the copy and the interpreter's site-packages.
    root = _standalone_copy(tmp_path)
    script = BLOCKED_RUN.format(forbidden=FORBIDDEN, root=str(root), tests=str(root / "policies" / "tests"))
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.slow
def test_pack_tests_pass_in_a_fresh_venv_from_its_requirements(tmp_path: Path) -> None:
    # What `pulumi preview --policy-pack policies` does: a venv, then `pip install -r requirements.txt` run from
    # the pack's directory (`../contracts` and `-e .` resolve there). pytest is the only addition.
    root = _standalone_copy(tmp_path / "checkout")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run([python, "-m", "pip", "install", "-q", "-r", "requirements.txt", "pytest==9.0.3"],
                             cwd=root / "policies", capture_output=True, text=True, timeout=1200, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    # importlib mode and another working directory: `policies` and `contracts` come from the venv's installs.
    done = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                           str(root / "policies" / "tests")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    listed = subprocess.run([python, "-m", "pip", "list"], capture_output=True, text=True, env=env).stdout
    assert "pulumi_aws" not in listed.replace("-", "_") and "aiinfra-contracts" in listed
