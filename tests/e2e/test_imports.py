"""Import hygiene, in one place: which third-party libraries each entry point loads, and who may use hazmat.

Which of our packages may import which is tests/e2e/test_layering.py.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("pynput", "watchdog", "Xlib", "click")


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_vault_imports_without_capture_or_cli_libraries() -> None:
    loaded = _modules_after("import vault, vault.vault, vault.consent_ops, vault.shredding, vault.ledger")
    leaked = {m for m in loaded if m.split(".")[0] in FORBIDDEN}
    assert not leaked, f"vault pulled in {sorted(leaked)}"


def test_cli_start_up_imports_no_capture_library() -> None:
    loaded = _modules_after("import agent.cli.main, agent.cli.status_cmd, agent.cli.consent_cmd")
    leaked = {m for m in loaded if m.split(".")[0] in ("pynput", "watchdog", "Xlib", "pyarrow", "fastapi", "uvicorn")}
    assert not leaked, f"the CLI pulled in {sorted(leaked)}"


def test_store_server_imports_without_capture_or_cli_libraries() -> None:
    loaded = {m.split(".")[0] for m in _modules_after("import protocol, store, store.app, store.backends.dir")}
    assert not loaded & {"pynput", "watchdog", "Xlib", "click"}


def test_release_formats_import_without_the_web_stack() -> None:
    loaded = {m.split(".")[0] for m in _modules_after("import protocol")}
    assert not loaded & {"click", "fastapi", "uvicorn", "httpx", "psycopg", "pyarrow"}


def test_the_wire_formats_never_import_click() -> None:
    """protocol/ is shared by the agent and the store server: not even a lazy import of click."""
    users = [
        p.name
        for p in (ROOT / "protocol").rglob("*.py")
        if any(m.split(".")[0] == "click" for m in _imported_modules(p))
    ]
    assert users == []


# The only modules that may use raw cryptographic primitives; everything else seals, opens, signs and
# verifies through them (style: all raw crypto in one place). Adding a module here is a design decision.
HAZMAT_MODULES = frozenset({"protocol/envelope.py", "protocol/sealing.py", "protocol/signing.py"})
PRODUCT_PACKAGES = ("agent", "vault", "protocol", "store", "kit", "admin")


def _imported_modules(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names; ``from a import b`` counts as a and a.b."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def hazmat_importers(root: Path) -> set[str]:
    found = set()
    for package in PRODUCT_PACKAGES:
        for path in (root / package).rglob("*.py"):
            modules = _imported_modules(path)
            if any(m == "cryptography.hazmat" or m.startswith("cryptography.hazmat.") for m in modules):
                found.add(path.relative_to(root).as_posix())
    return found


def test_exactly_the_named_modules_import_cryptography_hazmat() -> None:
    assert hazmat_importers(ROOT) == HAZMAT_MODULES


def test_the_hazmat_check_catches_every_spelling(tmp_path: Path) -> None:
    """The scan sees import, from-import and ``from cryptography import hazmat``, nested too; not comments."""
    spellings = {
        "a.py": "import cryptography.hazmat.primitives.hashes\n",
        "b.py": "from cryptography.hazmat.primitives import hashes\n",
        "c.py": "from cryptography import hazmat\n",
        "d.py": "def f():\n    from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n",
        "ok.py": "from cryptography.exceptions import InvalidTag  # not cryptography.hazmat\n",
    }
    (tmp_path / "agent").mkdir()
    for name, text in spellings.items():
        (tmp_path / "agent" / name).write_text(text)
    assert hazmat_importers(tmp_path) == {"agent/a.py", "agent/b.py", "agent/c.py", "agent/d.py"}
