"""Import hygiene for the release and store packages: no CLI or capture libraries, crypto in its place."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRYPTO_MODULES = re.compile(r"vault/.*(crypt|envelope|keys|seal|sign)")


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


def test_only_seal_and_sign_modules_touch_raw_crypto() -> None:
    for package in ("vault/release", "vault/store"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            if "cryptography.hazmat" in text:
                assert CRYPTO_MODULES.match(rel), f"{rel} imports cryptography.hazmat"
            assert not re.search(r"^\s*(import|from) click\b", text, re.MULTILINE), f"{rel} imports click"
