"""The shape of the code, read with the standard library's `ast`: no import cycles among the project's
modules, no component that takes the whole PlatformSettings, no hard-coded partition DNS names in components."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("aiinfra", "bench", "components", "contracts", "policies", "workloads")


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name (a package by its `__init__`)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name `module` imports, anywhere in the file (function-local and TYPE_CHECKING imports too:
    a cycle hidden behind a lazy import is still a cycle)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it makes Python run: the imported module and the packages above it that
    are not already the importer's own (Python has those initialised, or initialising, already)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
        edges: set[str] = set()
        for name in imported_names(path, module, is_package):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in modules and target not in own and (i == len(parts) or target not in edges):
                    edges.add(target)
        edges.discard(module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_sees_a_cycle_and_a_lazy_import(tmp_path: Path) -> None:
    # The finder itself must be able to fail: a two-module cycle through a function-local import.
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import b\n")
    b.write_text("def f():\n    from a import x\n")
    graph = {"a": {n for n in imported_names(a, "a", False) if n in ("a", "b")} - {"a"},
             "b": {n.split(".")[0] for n in imported_names(b, "b", False)} - {"b"}}
    assert cycles(graph) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# Cycles other branches of issue 10 are removing while this test lands. Each entry must still exist (the test
# fails once it is gone, so the entry is deleted with the fix); nothing else is tolerated.
BEING_REMOVED: dict[frozenset[str], str] = {}


def test_no_import_cycles_among_the_projects_modules() -> None:
    graph = import_graph()
    assert "components.settings" in graph and graph["components.network"], "the scan found the modules"
    found = [frozenset(c) for c in cycles(graph)]
    unexpected = [sorted(c) for c in found if c not in BEING_REMOVED]
    assert not unexpected, "import cycles: " + "; ".join(" <-> ".join(c) for c in unexpected)
    gone = [why for cycle, why in BEING_REMOVED.items() if cycle not in found]
    assert not gone, f"fixed, so delete its BEING_REMOVED entry: {gone}"


def test_no_component_module_imports_platform_settings() -> None:
    # Only the composition root (components/platform.py) and the settings package itself know the whole stack.
    offenders = []
    for path in sorted((ROOT / "components").glob("*.py")):
        if path.name == "platform.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            if "PlatformSettings" in names or any(n.endswith(".PlatformSettings") for n in names):
                offenders.append(path.name)
            if isinstance(node, ast.Attribute) and node.attr == "PlatformSettings":
                offenders.append(path.name)
    assert offenders == []


def test_components_name_no_partition_dns_suffix() -> None:
    # Service principals, kms:ViaService hosts and endpoint service names come from aws.get_partition.
    offenders = []
    for path in sorted((ROOT / "components").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    "amazonaws.com" in node.value or "com.amazonaws" in node.value):
                if not isinstance(getattr(node, "parent", None), ast.Expr):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    # Docstrings may mention the DNS names; code may not.
    offenders = [o for o in offenders if not _is_docstring_line(o)]
    assert offenders == []


def _is_docstring_line(offender: str) -> bool:
    location, _, _ = offender.partition(": ")
    file, _, line = location.rpartition(":")
    tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = node.body[0] if node.body else None
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and doc.value.lineno <= int(
                    line) <= (doc.value.end_lineno or doc.value.lineno):
                return True
    return False
