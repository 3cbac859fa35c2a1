"""The vault's imports: it never reaches into the agent or the store, and its modules form no cycle.

Read from the source (every import statement, also those inside functions), so a lazy import that
only runs on one path is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vault as vault_package

VAULT_DIR = Path(vault_package.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "vault":  # from vault import batches
                names.update(f"vault.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = {f"vault.{path.stem}": path for path in VAULT_DIR.glob("*.py") if path.stem != "__init__"}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_vault_module_imports_the_agent_or_the_store() -> None:
    offenders = {
        str(path.relative_to(VAULT_DIR.parent)): sorted(
            m for m in _imports(path) if m.split(".")[0] in ("agent", "store")
        )
        for path in sorted(VAULT_DIR.rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_vault_modules_import_each_other_without_cycles() -> None:
    graph = _graph()
    assert "vault.batches" in graph["vault.shredding"]  # the one direction between the two
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for dep in sorted(graph[module]):
            if dep in path:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert cycles == []
