"""Import hygiene: the vault (and so the store) never pulls in capture or CLI libraries."""

from __future__ import annotations

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


def test_only_vault_crypto_modules_touch_hazmat() -> None:
    offenders = []
    for path in list((ROOT / "agent").rglob("*.py")) + list((ROOT / "vault").rglob("*.py")):
        text = path.read_text()
        if "cryptography.hazmat" in text or "from cryptography" in text:
            rel = path.relative_to(ROOT).as_posix()
            if not (rel.startswith("vault/") and any(w in rel for w in ("crypt", "envelope", "keys", "seal", "sign"))):
                offenders.append(rel)
    assert not offenders, offenders
