"""Import hygiene for the wire formats and the store server: no capture or CLI libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return {m.split(".")[0] for m in out.stdout.split()}


def test_store_server_imports_without_capture_or_cli_libraries() -> None:
    loaded = _loaded("import protocol, store, store.app, store.backends.dir")
    assert not loaded & {"pynput", "watchdog", "Xlib", "click"}


def test_release_formats_import_without_the_web_stack() -> None:
    loaded = _loaded("import protocol")
    assert not loaded & {"click", "fastapi", "uvicorn", "httpx", "psycopg", "pyarrow"}


def test_the_wire_formats_never_import_click() -> None:
    """protocol/ is shared by the agent and the store server (hazmat: tests/e2e/test_imports.py)."""
    for path in (ROOT / "protocol").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from) click\b", text, re.MULTILINE), path.name
