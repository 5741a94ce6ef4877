"""The executors' module layout: no import cycles, and a restricted child that never imports ``codemode``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from codemode.executors import restricted

SRC = Path(restricted.__file__).resolve().parents[2]
EXECUTORS = SRC / "codemode" / "executors"
CHILD = restricted.CHILD_SCRIPT.parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """``codemode.executors`` modules → the ``codemode.executors`` modules they import (anywhere in the file)."""
    modules = {_module_name(p): p for p in EXECUTORS.rglob("*.py") if CHILD not in p.parents}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        imported.add(f"{base}.{alias.name}")
                    elif base in modules:
                        imported.add(base)
        graph[name] = imported - {name}
    return graph


def test_executor_modules_import_no_cycle() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
    assert "codemode.executors.wasm.executor" not in graph["codemode.executors.wasm.instance"]


def test_child_modules_import_only_the_stdlib_restrictedpython_and_the_guest_runtime() -> None:
    allowed = {*sys.stdlib_module_names, "RestrictedPython", "codemode_runtime"}
    for path in CHILD.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [alias.name.partition(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").partition(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}"


def test_child_package_is_flat() -> None:
    # main() hides exactly one directory's frames from tracebacks.
    assert sorted(p.parent for p in CHILD.rglob("*.py")) == [CHILD] * len(list(CHILD.glob("*.py")))


def test_child_script_loads_its_modules_without_codemode() -> None:
    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({str(restricted.CHILD_SCRIPT)!r}, run_name='probe')['_load_package']()\n"
        "import restricted_child.main\n"
        "assert not [m for m in sys.modules if m == 'codemode' or m.startswith('codemode.')], sys.modules\n"
        f"assert {str(CHILD)!r} not in sys.path\n"
        "print(sorted(m for m in sys.modules if m.startswith('restricted_child')))\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "restricted_child.guards" in out and "restricted_child.main" in out


def test_the_sandbox_library_imports_without_the_sdks_server_package() -> None:
    # The executors and the gate are usable on their own (the cold-start benchmark row): the SDK's server
    # package costs them half a second of import, more than booting an interpreter from the cached module.
    probe = (
        "import sys\n"
        "from codemode.calls import default_gate\n"
        "from codemode.executors.restricted import RestrictedExecutor\n"
        "from codemode.executors.wasm import WasmExecutor\n"
        "print(sorted(m for m in sys.modules if m == 'mcp.server' or m.startswith('mcp.server.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
