"""The worker and middleware packages import in one direction (issue 14, "Structure").

Read from the source with ``ast``, so an import hidden under ``TYPE_CHECKING`` or
inside a function counts too: a circle there is still a circle in the design.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

import conveyor

ROOT = Path(conveyor.__file__).parent
PACKAGES = ("conveyor.worker", "conveyor.middleware", "conveyor.app")
# Modules the worker builds on, which must never need the worker back.
BELOW = (
    "conveyor.backend",
    "conveyor.backoff",
    "conveyor.control",
    "conveyor.events",
    "conveyor.hooks",
    "conveyor.hookspecs",
    "conveyor.poll_strategy",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(package: str) -> dict[str, Path]:
    folder = ROOT.parent.joinpath(*package.split("."))
    return {_module_name(p): p for p in sorted(folder.glob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every ``conveyor`` module ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("conveyor"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("conveyor"):
            module = str(node.module)
            found.add(module)
            # ``from conveyor.worker import lanes`` imports the submodule too.
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    modules = _sources(package)
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_imports_its_modules_in_one_direction(package: str) -> None:
    graph = _graph(package)
    assert len(graph) > 3
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"{package} imports in a circle: {' -> '.join(exc.args[1])}")
    assert order[-1] == package  # the package's __init__ comes last: it builds on the rest


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_of_the_package_imports_the_package_itself(package: str) -> None:
    for name, path in _sources(package).items():
        if name != package:
            assert package not in _imports(path), f"{name} imports {package} (its __init__)"


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_init_imports_at_the_top(package: str) -> None:
    path = _sources(package)[package]
    body = ast.parse(path.read_text()).body
    seen_code = False
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            assert not seen_code, f"{path.name} imports below code, line {node.lineno}"
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            seen_code = True


def test_what_the_worker_builds_on_never_imports_the_worker() -> None:
    for name in BELOW + tuple(_sources("conveyor.middleware")):
        path = ROOT.parent.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        worker_imports = {m for m in _imports(path) if m.startswith("conveyor.worker")}
        assert not worker_imports, f"{name} imports {sorted(worker_imports)}"


def test_lanes_and_heartbeat_are_handed_state_not_the_worker() -> None:
    """They never import ``Worker``, nor touch another object's private attributes."""
    for module in ("lanes", "heartbeat", "poller"):
        path = ROOT / "worker" / f"{module}.py"
        assert "conveyor.worker.worker" not in _imports(path), module
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                private = not node.attr.startswith("__")
                mine = isinstance(node.value, ast.Name) and node.value.id == "self"
                assert mine or not private, f"{module}.py:{node.lineno} reads .{node.attr}"


@pytest.mark.parametrize(
    "module", sorted(set(_sources("conveyor.worker")) | set(_sources("conveyor.middleware")))
)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
