"""The remaining wording traps, each read where a person sees it: a page that was not opened is not
said to be, the tray offers no pause when nothing is captured, counts are written with their plural,
and every time a person reads is local time with its zone."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.tray.model import CategoryView, TrayState, build_menu, tooltip
from agent.web.employee import EmployeePage
from devkit.factories import grant, mouse_window
from kit.page_link import write_page_link
from kit.web.server import Request
from protocol.categories import Category
from vault import batches as batch_ops
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def test_consentry_page_does_not_claim_to_open_the_page_when_the_browser_fails(layout: Layout, tmp_path: Path) -> None:
    # A page is "running" (page.json written as the agent writes it); the employee's browser is /bin/false,
    # while another browser exists on PATH that Python's webbrowser module would fall back to silently.
    write_page_link(layout.page_link, url="http://127.0.0.1:9/", token="t" * 32)
    fallback = tmp_path / "bin"
    fallback.mkdir()
    started = tmp_path / "fallback-started"
    for name in ("chromium", "xdg-open", "x-www-browser", "firefox"):
        (fallback / name).write_text(f"#!/bin/sh\ntouch {started}\nsleep 1\n")
        (fallback / name).chmod(0o755)
    env = {
        "PATH": f"{fallback}:/usr/bin:/bin",
        "BROWSER": "/bin/false",
        "DISPLAY": ":99",
        "CONSENTRY_HOME": str(layout.home),
        "HOME": str(tmp_path),
    }
    done = subprocess.run([sys.executable, "-m", "agent", "page"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Opened" not in done.stdout
    assert "/bin/false" in done.stderr and "consentry page --print-url" in done.stderr
    assert not started.exists(), "no other browser than the one the employee chose is started"


def _views(capture: dict[str, tuple[str, str]]) -> tuple[CategoryView, ...]:
    return tuple(CategoryView(c, *capture.get(c.value, ("not_granted", "not_granted"))) for c in Category)


def test_the_tray_offers_no_pause_when_nothing_is_captured() -> None:
    nothing = TrayState(_views({"mouse": ("revoked", "revoked")}), None, (), 0, True)
    labels = [e.label for e in build_menu(nothing)]
    assert "Pause capture" not in labels
    assert "Nothing to pause: no category is captured" in labels
    capturing = TrayState(_views({"mouse": ("granted", "capturing")}), None, (), 0, True)
    pause = next(e for e in build_menu(capturing) if e.label == "Pause capture")
    assert pause.children


@pytest.mark.parametrize(("waiting", "words"), [(1, "1 batch waiting for you"), (2, "2 batches waiting for you")])
def test_the_tray_counts_batches_in_words(waiting: int, words: str) -> None:
    state = TrayState(_views({"mouse": ("granted", "capturing")}), None, (), waiting, True)
    assert tooltip(state).endswith(words)
    assert "(es)" not in tooltip(state)


def test_the_tray_shows_a_pause_end_in_local_time_with_its_zone(berlin: None) -> None:
    state = TrayState(_views({"mouse": ("granted", "paused")}), "2026-12-02T10:15:00Z", (), 0, True)
    assert "11:15 CET" in tooltip(state)


def test_doctor_counts_ledger_entries_in_words(home: Path) -> None:
    Vault.open(Layout(home), create=True).close()
    shown = CliRunner().invoke(cli, ["doctor"]).output
    count, noun = re.search(r"consent ledger\S*\s+\S*\s*(\d+) (entry|entries)", shown).groups()  # type: ignore[union-attr]
    assert noun == ("entry" if count == "1" else "entries"), shown
    assert "(s)" not in shown and "(es)" not in shown, shown


def _get(page: EmployeePage, path: str) -> str:
    request = Request(method="GET", path=path, query={}, csrf="c" * 32, nonce="n")
    return page.handle(request).body.decode()


def test_the_page_counts_in_words_and_shows_local_times_with_their_zone(layout: Layout, berlin: None) -> None:
    start = int(datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp())
    with Vault.open(layout, create=True) as vault:
        rid = grant(vault, Category.MOUSE, datetime(2026, 11, 20, 8, 0, tzinfo=UTC))
        vault.write_windows([mouse_window(start, rid)])
        batch = batch_ops.seal_pending(vault, MachinePolicy(), datetime.now(UTC))
        assert batch is not None
    page = EmployeePage(layout, layout.home / "no-policy.toml", lambda: True)
    overview = _get(page, "/")
    assert "1 batch in hold" in overview and "(es)" not in overview
    assert re.search(r"intact: \d+ entr", overview)
    preview = _get(page, f"/batches/{batch.batch_id}")
    assert "1 record," in preview and "record(s)" not in preview
    assert "2026-11-20 10:00 CET" in preview  # the window start, in the employee's time
    listing = _get(page, "/batches")
    assert "(UTC)" not in listing and " CET" in listing
    ledger = _get(page, "/ledger")
    assert "When (UTC)" not in ledger and " CET" in ledger and not re.search(r"\d{2}:\d{2}:\d{2}\.\d+Z", ledger)


def test_the_cli_shows_the_employee_local_time_with_its_zone(home: Path, berlin: None) -> None:
    run = CliRunner()
    start = int(datetime.now(UTC).timestamp()) // 60 * 60 - 120
    with Vault.open(Layout(home), create=True) as vault:
        rid = grant(vault, Category.MOUSE, datetime.fromtimestamp(start - 3600, UTC))
        vault.write_windows([mouse_window(start, rid)])
    outputs = {
        "consent show": run.invoke(cli, ["consent", "show"]).output,
        "pause": run.invoke(cli, ["pause", "--for", "1h"]).output,
        "status": run.invoke(cli, ["status"]).output,
        "ledger show": run.invoke(cli, ["ledger", "show"]).output,
        "batches seal": run.invoke(cli, ["batches", "seal"]).output,
        "batches": run.invoke(cli, ["batches"]).output,
    }
    for command, text in outputs.items():
        assert re.search(r"\d{2}:\d{2}(:\d{2})? CE[S]?T", text), (command, text)
        assert not re.search(r"\d{2}:\d{2}:\d{2}(\.\d+)?Z", text), (command, text)  # no UTC ISO for a person
        assert not re.search(r"\b1[6-9]\d{8}\b", text), (command, text)  # no epoch seconds


def test_the_datasheet_states_times_in_utc_iso_never_epoch_seconds() -> None:
    from store.export_docs import datasheet

    sheet = datasheet("e" * 32, int(datetime(2026, 12, 5, 13, 20, 9, tzinfo=UTC).timestamp()), {}, [], {}, 0)
    assert "Created by the store operator on 2026-12-05T13:20:09Z (UTC)" in sheet
    assert "epoch seconds" not in sheet and not re.search(r"\b1[6-9]\d{8}\b", sheet)


def test_machine_output_gives_utc_iso_to_the_second(home: Path) -> None:
    import json

    run = CliRunner()
    assert run.invoke(cli, ["consent", "grant", "mouse", "--yes"]).exit_code == 0
    assert run.invoke(cli, ["pause", "--for", "1h"]).exit_code == 0
    status = json.loads(run.invoke(cli, ["status", "--json"]).output)
    shown = json.loads(run.invoke(cli, ["consent", "show", "--json"]).output)
    moments = [status["now"], status["paused_until"], status["categories"]["mouse"]["since"]]
    moments += [row["since"] for row in shown if row["since"]]
    for moment in moments:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", moment), moment
