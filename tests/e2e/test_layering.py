"""The packages stay layered, with no exceptions and no import cycles.

    protocol                      wire formats, crypto, shared rules: imports nothing of ours
    kit        <- protocol        the store client and the local-page kit, used by both sides
    vault      <- protocol        the employee's vault
    store      <- protocol, kit   the on-prem store (server and library); never a workstation package
    agent      <- protocol, kit, vault        the workstation: capture, CLI, tray, employee's page
    admin      <- protocol, kit, vault, store the steward's and operator's commands and review page

Every import of every module is read with ``ast``, also those inside functions (the CLI imports lazily)
and under ``if TYPE_CHECKING``. Nothing is allow-listed. The agent's CLI names the admin command groups in
its lazy command table (strings for importlib, not imports), so ``consentry store`` and ``consentry
steward`` exist without agent/ importing admin/.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "kit", "vault", "store", "agent", "admin")
# package -> the packages of ours it may import (besides itself)
MAY_IMPORT = {
    "protocol": set(),
    "kit": {"protocol"},
    "vault": {"protocol"},
    "store": {"protocol", "kit"},
    "agent": {"protocol", "kit", "vault"},
    "admin": {"protocol", "kit", "vault", "store"},
}
SEEN = {*PACKAGES, "devkit", "tests"}  # what the collector records: our packages and the test code
AGENT_COMMAND_TABLE_ADMIN_MODULES = {"admin.store_cmd", "admin.steward_cmd", "admin.dataset_cmd"}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    module_level: bool  # runs when the importer is imported (not inside a function, not TYPE_CHECKING-only)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _lazy_exports(path: Path) -> dict[str, str]:
    """A package's PEP 562 table (name -> module), so ``from protocol import X`` resolves to X's module."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets: list[ast.expr]
        if isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        if value is not None and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
            table: dict[str, str] = ast.literal_eval(value)
            return table
    return {}


EXPORTS = {name: _lazy_exports(path) for name, path in MODULES.items() if path.name == "__init__.py"}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.depth = 0  # inside a function body
        self.typing_only = 0  # inside `if TYPE_CHECKING:`
        self.found: list[Import] = []

    def _add(self, targets: list[str]) -> None:
        running = self.depth == 0 and self.typing_only == 0
        for target in targets:
            if target.split(".")[0] in SEEN and target != self.name:
                self.found.append(Import(self.name, target, running))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.typing_only += 1
            for child in node.body:
                self.visit(child)
            self.typing_only -= 1
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._add([alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, base] if base else parts)
        targets = [base]
        for alias in node.names:
            if f"{base}.{alias.name}" in MODULES:
                targets.append(f"{base}.{alias.name}")
            elif alias.name in EXPORTS.get(base, {}):
                targets.append(EXPORTS[base][alias.name])
        self._add(targets)


def _imports() -> list[Import]:
    found: list[Import] = []
    for name, path in MODULES.items():
        collector = _Collector(name, path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found.extend(collector.found)
    return found


IMPORTS = _imports()


def _top(module: str) -> str:
    return module.split(".")[0]


def test_every_package_imports_only_the_layers_below_it() -> None:
    offenders = sorted(
        (i.importer, i.imported)
        for i in IMPORTS
        if _top(i.imported) not in MAY_IMPORT[_top(i.importer)] | {_top(i.importer)}
    )
    assert offenders == []


def test_the_layer_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The control: an import from kit into agent, even inside a function, is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from agent.daemon import AgentDaemon\n", encoding="utf-8")
    collector = _Collector("kit.bad", bad)
    collector.visit(ast.parse(bad.read_text(encoding="utf-8")))
    assert [(i.importer, i.imported) for i in collector.found] == [("kit.bad", "agent.daemon")]
    assert "agent" not in MAY_IMPORT["kit"]


def test_admin_commands_reach_the_workstation_packages_only_when_run() -> None:
    """Loading a command group (the CLI's command table does) loads no vault, kit or store module.

    ``admin.review_page`` is left out: only the review command imports it, inside the command.
    """
    command_modules = {
        "admin.store_cmd",
        "admin.steward_cmd",
        "admin.review",
        "admin.access",
        "admin.dataset_cmd",
        "admin.fleet_cmd",
        "admin.review_set_cmd",
    }
    at_import = sorted(
        (i.importer, i.imported)
        for i in IMPORTS
        if i.module_level and i.importer in command_modules and _top(i.imported) in {"vault", "kit", "store"}
    )
    assert at_import == []


def test_agent_names_only_the_admin_command_groups_in_its_command_table() -> None:
    from agent.cli.main import COMMANDS

    named = {module for module, _, _ in COMMANDS.values() if _top(module) == "admin"}
    assert named == AGENT_COMMAND_TABLE_ADMIN_MODULES


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for i in IMPORTS:
        if i.module_level and i.imported in MODULES:
            graph[i.importer].add(i.imported)
    assert _cycles(graph) == []


def _vault_connection_uses(path: Path) -> list[str]:
    """Every ``<x>.db`` (the vault's SQLite connection) a module touches, as ``line: code``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        f"{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "db"
    ]


def test_only_the_vault_touches_its_database() -> None:
    """The vault owns its tables: the agent and the store never run SQL on the vault's connection."""
    outside = {name: _vault_connection_uses(path) for name, path in MODULES.items() if name.split(".")[0] != "vault"}
    assert {name: uses for name, uses in outside.items() if uses} == {}
    # The control: inside the vault the connection is used, so the check above would see it elsewhere.
    assert _vault_connection_uses(MODULES["vault.outbox"])


def test_the_tray_and_the_pages_import_nothing_from_the_command_line() -> None:
    """The tray and the page are the CLI's peers: what they share with it lives outside ``agent.cli``."""
    offenders = sorted(
        (i.importer, i.imported)
        for i in IMPORTS
        if i.importer.startswith(("agent.tray", "agent.web", "kit.", "admin.")) and i.imported.startswith("agent.cli")
    )
    assert offenders == []


def _imports_of_files(paths: list[Path], package: str) -> list[Import]:
    found: list[Import] = []
    for path in paths:
        collector = _Collector(f"{package}.{path.stem}", path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found.extend(collector.found)
    return found


def test_benchmarks_import_nothing_from_the_test_suite() -> None:
    """What benchmarks share with the tests lives in devkit/, which both import."""
    found = _imports_of_files(sorted((ROOT / "benchmarks").glob("*.py")), "benchmarks")
    assert [(i.importer, i.imported) for i in found if _top(i.imported) == "tests"] == []
    assert any(i.imported == "devkit.store_kit" for i in found)  # the control: the scan sees these imports


def test_product_packages_import_no_test_code() -> None:
    assert [(i.importer, i.imported) for i in IMPORTS if _top(i.imported) in {"devkit", "tests"}] == []
