"""Run the real capture agent as a subprocess and look at what it did through public interfaces only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.watched_folders import read_watched_folders
from protocol.categories import Category
from protocol.timeutil import utc_now
from protocol.windows import AnyWindow
from vault import consent_ops
from vault.paths import Layout
from vault.policy import load_policy
from vault.vault import Vault

SHORT_WINDOW_POLICY = "aggregation_window_seconds = 10\n"
DEADLINE = 20.0


class AgentProcess:
    def __init__(self, layout: Layout, env: Mapping[str, str], *args: str) -> None:
        self.layout = layout
        self.log_path = layout.home.parent / f"agent-stderr-{time.monotonic_ns()}.log"
        self._stderr = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.agent_cmd", "run", *args],
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=Path(__file__).resolve().parent.parent,
        )

    @property
    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.layout.agent_status.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("pid") == self.proc.pid else None

    def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = DEADLINE
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the agent exited ({self.proc.returncode}) while waiting for {what}:\n{self.stderr}"
                )
            status = self.status()
            if status is not None and predicate(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status: {json.dumps(status, indent=1)}")

    def wait_state(self, category: str, state: str, timeout: float = DEADLINE) -> dict[str, Any]:
        return self.wait_status(lambda s: s["categories"][category]["state"] == state, f"{category} {state}", timeout)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self._stderr.close()
        return code

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._stderr.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


def grant(layout: Layout, policy_path: Path, *categories: Category, now: datetime | None = None) -> dict[Category, str]:
    policy = load_policy(policy_path)
    receipts = {}
    with Vault.open(layout) as vault:
        for category in categories:
            # A files grant covers exactly the folder list written before it, as `consent grant` does.
            folders = read_watched_folders(layout).folders if category is Category.FILES else None
            receipt, _ = consent_ops.grant(
                vault, policy, category, method="cli", confirmation="yes-flag", now=now or utc_now(), folders=folders
            )
            receipts[category] = receipt.receipt_id
    return receipts


def revoke(layout: Layout, policy_path: Path, *categories: Category) -> None:
    with Vault.open(layout) as vault:
        consent_ops.revoke(vault, load_policy(policy_path), list(categories), method="cli", now=utc_now())


def records(layout: Layout, category: Category | None = None) -> list[AnyWindow]:
    with Vault.open(layout) as vault:
        return vault.read_windows(None if category is None else category.value)


def wait_records(layout: Layout, category: Category, at_least: int = 1, timeout: float = DEADLINE) -> list[AnyWindow]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = records(layout, category)
        if len(found) >= at_least:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {category.value} records were flushed within {timeout} s")


def key_total(windows: list[AnyWindow], key_class: str = "letter") -> int:
    return sum(int(w.key_counts[key_class]) for w in windows if w.category == "keyboard")


def agent_env(home: Path, policy_path: Path, display: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "DISPLAY")}
    env.update(CONSENTRY_HOME=str(home), CONSENTRY_POLICY=str(policy_path), CONSENTRY_KEYSTORE="file")
    if display is not None:
        env["DISPLAY"] = display
    return env


def every_file_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
