"""Read commands stay light (issue 8): with the policy validated once, they import no pydantic.

pydantic validates what is untrusted (a new policy file, settings files, the control socket, HTTP); the
commands an employee runs to look (``status``, ``consent show``) must not pay for it each time. Start-up
time itself is measured by ``benchmarks/bench_cli.py`` in a production install, not asserted here.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from devkit.factories import grant, mouse_window
from protocol.categories import Category
from vault.paths import Layout
from vault.vault import Vault

KEY = base64.b64encode(bytes(32)).decode()
POLICY = f"""
retention_days = 30
excluded_apps = ["hr-portal"]
[store]
url = "https://consentry-store.corp.example:8443"
public_key = "{KEY}"
[stewards]
[stewards.keys]
alice = "{KEY}"
"""
# Runs the real entry point and says, on exit, whether pydantic was ever imported.
PROBE = """
import atexit, sys
atexit.register(lambda: print("pydantic imported:", "pydantic" in sys.modules, file=sys.stderr))
from agent.cli.main import main
sys.argv = ["consentry", *sys.argv[1:]]
main()
"""


def _imports_pydantic(*args: str) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("pydantic imported:")]
    return line.endswith("True")


@pytest.mark.parametrize("command", [("status",), ("consent", "show")])
def test_a_read_command_validates_the_policy_once_then_imports_no_pydantic(
    home: Path, policy_path: Path, command: tuple[str, ...]
) -> None:
    policy_path.write_text(POLICY)
    assert CliRunner().invoke(cli, ["consent", "grant", "mouse", "--yes"]).exit_code == 0
    assert _imports_pydantic(*command)  # the control: a policy not yet validated is validated with pydantic
    assert not _imports_pydantic(*command)
    policy_path.write_text(POLICY.replace("retention_days = 30", "retention_days = 20"))
    assert _imports_pydantic(*command)  # a changed file is validated again, never taken from the cache
    assert not _imports_pydantic(*command)


def test_looking_creates_no_home_and_no_cache(home: Path, policy_path: Path) -> None:
    policy_path.write_text(POLICY)
    assert CliRunner().invoke(cli, ["consent", "show"]).exit_code == 0
    assert not home.exists()


def test_batches_list_reads_the_vault_without_pydantic(home: Path) -> None:
    now = datetime.now(UTC)
    with Vault.open(Layout(home)) as vault:
        rid = grant(vault, Category.MOUSE, now - timedelta(hours=1))
        vault.write_windows([mouse_window(int(now.timestamp()) // 60 * 60 - 600, rid)])
    sealed = CliRunner().invoke(cli, ["batches", "seal", "--json"])
    assert sealed.exit_code == 0 and json.loads(sealed.output)["state"] == "held"
    listing = subprocess.run(
        [sys.executable, "-m", "agent", "batches", "list", "--json"], capture_output=True, text=True, check=True
    )
    assert [b["state"] for b in json.loads(listing.stdout)] == ["held"]  # the same command, for real
    assert not _imports_pydantic("batches", "list", "--json")


def test_mydata_shows_the_records_as_stored_without_pydantic(home: Path) -> None:
    now = datetime.now(UTC)
    start = int(now.timestamp()) // 60 * 60 - 600
    with Vault.open(Layout(home)) as vault:
        rid = grant(vault, Category.MOUSE, now - timedelta(hours=1))
        vault.write_windows([mouse_window(start, rid), mouse_window(start + 60, rid)])
        as_models = [w.model_dump(mode="json") for w in vault.read_windows()]
    shown = subprocess.run(
        [sys.executable, "-m", "agent", "mydata", "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout)["records"] == as_models  # the same records as the schema reads them
    assert not _imports_pydantic("mydata", "--json")
    assert not _imports_pydantic("mydata")
