"""A workstation install (no ``[store]`` extra) runs the CLI and the agent; store commands say what to install.

Built for real: a fresh venv with this project installed ``--no-deps`` plus exactly the ``[project]
dependencies`` of pyproject.toml, so fastapi, uvicorn, psycopg and pyarrow are really absent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "vault", "protocol", "store", "kit", "admin")
STORE_ONLY = ("fastapi", "starlette", "uvicorn", "psycopg", "psycopg_pool", "pyarrow")
EXTRA_HINT = "pip install 'consentry[store]'"
START_DEADLINE = 60.0  # generous: a slow CI host; the test waits for an event, it does not time anything


@dataclass(frozen=True)
class Workstation:
    bin: Path
    home: Path
    env: dict[str, str]

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "consentry"), *args],
            env=self.env,
            cwd=cwd or self.home.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )


def _pip(python: Path, *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"pip install {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def workstation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workstation]:
    base = tmp_path_factory.mktemp("workstation")
    # Build from a copy, so pip's in-tree build folders never land in the working tree.
    source = base / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    _pip(python, *dependencies)
    _pip(python, "--no-deps", str(source))
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(
        PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        CONSENTRY_HOME=str(home),
        CONSENTRY_POLICY=str(base / "policy.toml"),  # absent: the embedded defaults
        CONSENTRY_KEYSTORE="file",
    )
    env.pop("CONSENTRY_STORE_DSN", None)
    env.pop("CONSENTRY_STORE_DATA", None)
    yield Workstation(bin=env_dir / "bin", home=home, env=env)


def _assert_one_line_error(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert EXTRA_HINT in lines[0], lines[0]


def test_the_store_packages_are_really_absent(workstation: Workstation) -> None:
    probe = "import importlib.util, sys; print(sorted(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    done = subprocess.run(
        [str(workstation.bin / "python"), "-c", probe, *STORE_ONLY],
        env=workstation.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
    located = subprocess.run(
        [str(workstation.bin / "python"), "-c", "import agent; print(agent.__file__)"],
        env=workstation.env,
        cwd=workstation.home.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in located.stdout, "the CLI under test must be the installed copy, not the working tree"


def test_help_lists_every_command(workstation: Workstation) -> None:
    done = workstation.run("--help")
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("Commands:", 1)[1].split()
    for name in ("agent", "status", "consent", "mydata", "batches", "store", "steward"):
        assert name in commands, done.stdout


def test_status_works_on_a_fresh_home(workstation: Workstation) -> None:
    done = workstation.run("status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["agent"]["running"] is False
    assert status["categories"]["keyboard"] == {
        "capture": "off",
        "consent": "not_granted",
        "reason": None,
        "since": None,
    }
    assert status["records_today"] == 0


def test_the_agent_runs_and_stops_cleanly(workstation: Workstation, tmp_path: Path) -> None:
    granted = workstation.run("consent", "grant", "keyboard", "--yes")
    assert granted.returncode == 0, granted.stderr
    status_file = workstation.home / "run" / "status.json"
    stderr = tmp_path / "agent.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [str(workstation.bin / "consentry"), "agent", "run", "--replay", "synthetic:seed=1"],
            env=workstation.env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            state = _wait_for_keyboard_capture(proc, status_file)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    assert state == "capturing", stderr.read_text()
    assert code == 0, stderr.read_text()
    assert "Traceback" not in stderr.read_text()


def _wait_for_keyboard_capture(proc: subprocess.Popen[bytes], status_file: Path) -> str | None:
    """The keyboard state in the agent's own status file, once it has one (None if it never did)."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status = json.loads(status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            status = {}
        if status.get("pid") == proc.pid:
            state = status["categories"]["keyboard"]["state"]
            if state == "capturing":
                return str(state)
        time.sleep(0.1)
    return None


def test_store_serve_says_to_install_the_store_extra(workstation: Workstation, tmp_path: Path) -> None:
    _assert_one_line_error(workstation.run("store", "serve", "--data", str(tmp_path / "store")))
    assert not (tmp_path / "store").exists(), "nothing is created before the missing extra is reported"


def test_store_export_and_postgres_say_to_install_the_store_extra(workstation: Workstation, tmp_path: Path) -> None:
    _assert_one_line_error(workstation.run("store", "export", "--data", str(tmp_path / "s"), str(tmp_path / "out")))
    dsn = "postgresql://nobody@127.0.0.1:9/none"
    _assert_one_line_error(workstation.run("store", "token", "--backend", "postgres", "--dsn", dsn, "--data", "s"))


def test_store_help_and_steward_tools_work_without_the_extra(workstation: Workstation, tmp_path: Path) -> None:
    shown = workstation.run("store", "serve", "--help")
    assert shown.returncode == 0 and "Usage: consentry store serve" in shown.stdout
    key = tmp_path / "steward.key"
    created = workstation.run("steward", "init", "--key-file", str(key), "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["public_key"]
    # verify-log is the auditor's check from any machine: without the extra it reaches for the store.
    log_key = json.loads(created.stdout)["public_key"]
    gone = workstation.run("store", "verify-log", "--store-url", "http://127.0.0.1:9", "--log-key", log_key)
    assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1, gone.stderr
    assert "Is the store running" in gone.stderr or "cannot reach the store" in gone.stderr, gone.stderr
    assert EXTRA_HINT not in gone.stderr


if sys.platform == "win32":  # the venv layout above (bin/) is POSIX's
    pytestmark = pytest.mark.skip(reason="POSIX venv layout")


def test_the_installed_pages_have_every_template_and_render(workstation: Workstation) -> None:
    """The templates ship as package data: the installed copy finds each one the tree has, and draws a page."""
    probe = (
        "import json\n"
        "from pathlib import Path\n"
        "from kit.web import templates\n"
        "from kit.web.server import Request\n"
        "from agent.web.employee import EmployeePage\n"
        "from vault.paths import Layout\n"
        "found = {p: sorted(templates.environment(p).list_templates()) for p in ('kit.web', 'agent.web', 'admin')}\n"
        "page = EmployeePage(Layout(Path('unused')), Path('unused.toml'), lambda: True)\n"
        "shown = page.handle(Request('GET', '/erase', {}, csrf='c' * 64, nonce='n'))\n"
        "print(json.dumps({'found': found, 'status': shown.status, 'body': shown.body.decode()}))\n"
    )
    done = subprocess.run(
        [str(workstation.bin / "python"), "-c", probe],
        env=workstation.env,
        cwd=workstation.home.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    in_tree = {
        "kit.web": sorted(
            p.relative_to(ROOT / "kit/web/templates").as_posix() for p in (ROOT / "kit/web/templates").rglob("*.*")
        ),
        "agent.web": sorted(p.name for p in (ROOT / "agent/web/templates").glob("*.html")),
        "admin": sorted(p.name for p in (ROOT / "admin/templates").glob("*.html")),
    }
    for package, names in in_tree.items():
        assert names and set(names) <= set(shown["found"][package]), (package, names, shown["found"][package])
    assert shown["status"] == 200 and "Erase your data" in shown["body"] and 'value="' + "c" * 64 + '"' in shown["body"]
