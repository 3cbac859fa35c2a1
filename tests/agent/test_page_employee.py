"""The employee's local page in a real headless Chromium and over raw HTTP: consent, pause, my data,
batches and the ledger, and the guard (token, Host, Origin, CSRF) that keeps other pages out."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agent.web.employee import EmployeePage
from agent.web.launch import start_employee_page, stop_employee_page
from kit.page_link import page_link
from kit.web.server import PageServer
from protocol.categories import Category, KeyClass, MouseButton
from protocol.errors import ConsentryError
from protocol.timeutil import utc_now
from protocol.windows import AppFocus, AppsWindow, KeyboardWindow, MouseWindow
from tests.agent_harness import SHORT_WINDOW_POLICY, AgentProcess, agent_env, grant, records, wait_records
from tests.browser_kit import attack_page, chromium, hostile_site, wait_for
from tests.doc_shots import save_browser_shot
from vault import batches as batch_ops
from vault import consent_ops, outbox
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault


def _screenshot(driver: object, tmp_path: Path, name: str) -> None:
    """Kept for a human to look at: in $CONSENTRY_SCREENSHOTS if set, else the test's own folder; and
    the docs' picture of this page (tests/doc_shots.py), so the pictures there are of today's page."""
    folder = Path(os.environ.get("CONSENTRY_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(folder / name))  # type: ignore[attr-defined]
    save_browser_shot(driver, name)


def _ledger_kinds(layout: Layout) -> list[str]:
    with Vault.open(layout) as vault:
        return [e.kind for e in vault.ledger.entries()]


@pytest.fixture
def page(layout: Layout, policy_path: Path) -> Iterator[PageServer]:
    """The page as the agent starts it (start_employee_page), without the capture loop."""
    Vault.open(layout).close()
    server = start_employee_page(layout, policy_path)
    assert server is not None
    try:
        yield server
    finally:
        stop_employee_page(layout, server)


def _session(server: PageServer) -> httpx.Client:
    """A raw HTTP client holding a session cookie, as a browser would after opening the link."""
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    answer = client.get("/", params={"token": server.token})
    assert answer.status_code == 200 and "Set-Cookie" in answer.headers
    return client


def _csrf(client: httpx.Client, path: str = "/") -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text)
    assert found, "the page has no form"
    return found.group(1)


def _open(driver: object, link: str) -> None:
    driver.get(link)  # type: ignore[attr-defined]
    wait_for(
        lambda: "token=" not in driver.current_url and "<main>" in driver.page_source, "the page without its token"
    )  # type: ignore[attr-defined]


def _click(driver: object, xpath: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, xpath).click()  # type: ignore[attr-defined]


# -- consent, against the real agent ------------------------------------------------------------


def test_grant_through_the_page_writes_the_ledger_and_revoke_stops_capture(
    layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    policy_path.write_text(SHORT_WINDOW_POLICY)
    agent = AgentProcess(
        layout, agent_env(layout.home, policy_path, None), "--replay", "synthetic:seed=3,key_rate=20,move_rate=0"
    )
    try:
        link = wait_for(lambda: page_link(layout.page_link, "/consent/keyboard"), "the agent's page.json")
        assert layout.page_link.stat().st_mode & 0o077 == 0
        agent.wait_state("keyboard", "not_granted")
        with chromium(tmp_path / "profile") as driver:
            _open(driver, link)
            shown = driver.find_element(By.ID, "notice").get_attribute("textContent")
            assert "What is never kept" in shown and "How to withdraw" in shown
            driver.find_element(By.ID, "confirm").click()
            driver.find_element(By.ID, "grant").click()
            wait_for(lambda: "Consent granted for keyboard" in driver.page_source, "the grant's confirmation")

            with Vault.open(layout) as vault:
                grants = [e.body for e in vault.ledger.entries(("grant",))]
            assert len(grants) == 1
            assert grants[0]["collection_method"] == "page" and grants[0]["confirmation"] == "page-checkbox-same-user"
            assert grants[0]["notice_sha256"] == hashlib.sha256(shown.encode()).hexdigest()

            agent.wait_state("keyboard", "capturing")
            wait_records(layout, Category.KEYBOARD)
            _click(driver, "//button[text()='Revoke keyboard']")
            wait_for(lambda: "confirmed that capture of keyboard stopped" in driver.page_source, "the revoke")
            # The page answered only after the agent confirmed: its state is already "revoked".
            assert agent.status()["categories"]["keyboard"]["state"] == "revoked"  # type: ignore[index]
    finally:
        assert agent.stop() == 0
    assert not layout.page_link.exists(), "page.json must go when the agent stops"
    with Vault.open(layout) as vault:
        revoked_at = next(iter(vault.ledger.entries(("revoke",)))).at
    cut = datetime.fromisoformat(revoked_at).timestamp()
    assert records(layout, Category.KEYBOARD), "capture ran while granted"
    assert all(r.start < cut for r in records(layout, Category.KEYBOARD)), "nothing captured after the revoke"


def test_grant_needs_the_confirmation_and_the_notice_that_was_shown(page: PageServer, layout: Layout) -> None:
    client = _session(page)
    csrf = _csrf(client, "/consent/mouse")
    shown = re.search(r'name="notice_sha256" value="([0-9a-f]{64})"', client.get("/consent/mouse").text)
    assert shown
    origin = {"Origin": page.url.rstrip("/")}
    unconfirmed = client.post(
        "/consent/mouse/grant", data={"csrf": csrf, "notice_sha256": shown.group(1)}, headers=origin
    )
    other_text = client.post(
        "/consent/mouse/grant", data={"csrf": csrf, "notice_sha256": "0" * 64, "confirm": "yes"}, headers=origin
    )
    assert unconfirmed.status_code == other_text.status_code == 400
    assert "grant" not in _ledger_kinds(layout)
    granted = client.post(
        "/consent/mouse/grant", data={"csrf": csrf, "notice_sha256": shown.group(1), "confirm": "yes"}, headers=origin
    )
    assert granted.status_code == 303 and _ledger_kinds(layout).count("grant") == 1


def test_granting_files_on_the_page_needs_real_folders(page: PageServer, layout: Layout, tmp_path: Path) -> None:
    from agent.watched_folders import read_watched_folders

    client = _session(page)
    text = client.get("/consent/files").text
    csrf, shown = _csrf(client), re.search(r'name="notice_sha256" value="([0-9a-f]{64})"', text)
    assert shown and 'name="folders"' in text
    form = {"csrf": csrf, "notice_sha256": shown.group(1), "confirm": "yes"}
    origin = {"Origin": page.url.rstrip("/")}
    missing = client.post("/consent/files/grant", data={**form, "folders": str(tmp_path / "nope")}, headers=origin)
    assert missing.status_code == 400 and "grant" not in _ledger_kinds(layout)
    (tmp_path / "projects").mkdir()
    done = client.post("/consent/files/grant", data={**form, "folders": str(tmp_path / "projects")}, headers=origin)
    assert done.status_code == 303 and _ledger_kinds(layout).count("grant") == 1
    assert read_watched_folders(layout).folders == (tmp_path / "projects",)


def test_pause_and_resume_through_the_page_are_ledger_entries(page: PageServer, layout: Layout) -> None:
    client = _session(page)
    origin = {"Origin": page.url.rstrip("/")}
    csrf = _csrf(client)
    assert client.post("/pause", data={"csrf": csrf, "for": "15m"}, headers=origin).status_code == 303
    with Vault.open(layout) as vault:
        snapshot = vault.consent(MachinePolicy())
    assert snapshot.is_paused(utc_now()) and snapshot.paused_until is not None
    assert snapshot.paused_until - utc_now() <= timedelta(minutes=15)
    assert "All capture is paused" in client.get("/").text
    assert client.post("/resume", data={"csrf": csrf}, headers=origin).status_code == 303
    assert _ledger_kinds(layout)[-2:] == ["pause", "resume"]


# -- my data and batches ----------------------------------------------------------------------


def _local(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute).astimezone().timestamp())


def _fill_vault(layout: Layout) -> dict[str, str]:
    """Grants two days before, then known windows on 2026-11-20 (local time)."""
    granted = datetime.fromtimestamp(_local(2026, 11, 18, 8, 0), UTC)
    with Vault.open(layout) as vault:
        rid = {
            c: consent_ops.grant(vault, MachinePolicy(), c, method="cli", confirmation="yes-flag", now=granted)[
                0
            ].receipt_id
            for c in (Category.KEYBOARD, Category.MOUSE, Category.APPS)
        }
        windows = []
        for hour, minute, letters in ((9, 0, 100), (9, 1, 50), (14, 30, 7)):
            t = _local(2026, 11, 20, hour, minute)
            windows.append(
                KeyboardWindow(
                    start=t, end=t + 60, receipt_id=rid[Category.KEYBOARD], key_counts={KeyClass.LETTER: letters},
                    iki_histogram=(0,) * 9, bursts=1, longest_burst=3, pauses=0, correction_ratio=0.0,
                )
            )  # fmt: skip
        t = _local(2026, 11, 20, 10, 0)
        windows.append(
            MouseWindow(
                start=t, end=t + 60, receipt_id=rid[Category.MOUSE], clicks={MouseButton.LEFT: 4, MouseButton.RIGHT: 1},
                scroll_steps=0, moves=10, distance_px=300.0, idle_seconds=1.0,
            )
        )  # fmt: skip
        for minute in (0, 1):
            t = _local(2026, 11, 20, 11, minute)
            windows.append(
                AppsWindow(
                    start=t, end=t + 60, receipt_id=rid[Category.APPS], switches=1,
                    focus=(AppFocus(app="cat:ide", seconds=45.0), AppFocus(app="anon:0123456789abcdef", seconds=15.0)),
                )
            )  # fmt: skip
        vault.write_windows(windows)
    return {c.value: r for c, r in rid.items()}


def test_my_data_shows_activity_per_hour_and_app_time_per_day(page: PageServer, layout: Layout, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _fill_vault(layout)
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/mydata") + "&day=2026-11-20")  # type: ignore[operator]

        def bars(chart: str) -> dict[str, str]:
            found = driver.find_elements(By.CSS_SELECTOR, f"#{chart} rect.bar")
            return {b.get_attribute("data-label"): b.get_attribute("data-value") for b in found}

        keys = bars("chart-keys")
        assert len(keys) == 24 and keys["09"] == "150" and keys["14"] == "7" and keys["10"] == "0"
        assert bars("chart-clicks")["10"] == "5"
        segments = {
            (s.get_attribute("data-row"), s.get_attribute("data-series")): s.get_attribute("data-value")
            for s in driver.find_elements(By.CSS_SELECTOR, "#chart-apps rect.segment")
        }
        assert segments[("2026-11-20", "ide")] == "1.5"
        assert segments[("2026-11-20", "other (pseudonymous)")] == "0.5"
        assert "anon:0123456789abcdef" in driver.page_source  # the raw records table shows what is stored
        _screenshot(driver, tmp_path, "page-mydata.png")


def test_veto_through_the_page_shreds_the_batch_and_release_ends_the_hold(
    page: PageServer, layout: Layout, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    _fill_vault(layout)
    with Vault.open(layout) as vault:
        first = batch_ops.seal_pending(vault, MachinePolicy(), utc_now(), up_to=_local(2026, 11, 20, 10, 30))
        second = batch_ops.seal_pending(vault, MachinePolicy(), utc_now())
        assert first and second
        before = vault.count_windows()
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, f"/batches/{first.batch_id}"))  # type: ignore[operator]
        assert "Exactly what would leave this computer" in driver.page_source
        assert "letter" in driver.find_element(By.TAG_NAME, "main").text  # the preview shows the records
        _screenshot(driver, tmp_path, "page-batch.png")
        _click(driver, "//button[text()='Veto']")
        wait_for(lambda: "Batch vetoed" in driver.page_source, "the veto's confirmation")
        driver.get(page.url + f"batches/{second.batch_id}")
        _click(driver, "//button[text()='Release now']")
        wait_for(lambda: "Batch released early" in driver.page_source, "the release's confirmation")
    with Vault.open(layout) as vault:
        assert outbox.get_batch(vault, first.batch_id).state == "vetoed"
        with pytest.raises(ConsentryError):
            batch_ops.payload(vault, first.batch_id)
        assert vault.count_windows() == before - sum(first.record_counts.values())
        assert (
            vault.db.execute(
                "SELECT COUNT(*) FROM data_keys WHERE key_id = ?", (f"batch/{first.batch_id}",)
            ).fetchone()[0]
            == 0
        )
        assert outbox.get_batch(vault, second.batch_id).state == "released"
        kinds = [e.kind for e in vault.ledger.entries()]
    assert "batch-vetoed" in kinds and "batch-released" in kinds


def test_overview_and_ledger_pages_are_readable(page: PageServer, layout: Layout, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _fill_vault(layout)
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/"))  # type: ignore[operator]
        text = driver.find_element(By.TAG_NAME, "main").text
        assert "keyboard" in text and "Revoke keyboard" in text and "Pause 15 min" in text
        _screenshot(driver, tmp_path, "page-consent.png")
        driver.get(page.url + "ledger")
        assert "Intact" in driver.find_element(By.ID, "ledger-verdict").text
        # No third-party asset: every resource the browser loaded came from this server.
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(url.startswith(page.url) for url in loaded)
        blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
        assert not blocked, blocked  # the inline style (with its nonce) really applies


# -- the guard --------------------------------------------------------------------------------


def test_a_page_from_another_origin_cannot_act(page: PageServer, layout: Layout, tmp_path: Path) -> None:
    """Even knowing the CSRF token, a page on another local port (same site!) changes nothing."""
    _fill_vault(layout)
    csrf = _csrf(_session(page))
    target = page.url + "consent/keyboard/revoke"
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/"))  # type: ignore[operator]
        with hostile_site(attack_page(target, {"csrf": csrf})) as evil:
            driver.get(evil)
            wait_for(lambda: driver.current_url.startswith(page.url), "the hostile form to be submitted")
            wait_for(lambda: "<main>" in driver.page_source, "the page's answer")
            # The form is submitted only after the fetch settled, so both attempts reached the page.
            assert "revoke" not in _ledger_kinds(layout), "the hostile page withdrew consent"
            assert "did not come from this page" in driver.page_source


def test_a_wrong_host_header_is_refused_even_with_a_session(page: PageServer, layout: Layout) -> None:
    """DNS rebinding: a name that resolves to 127.0.0.1 reaches the port but not the page."""
    client = _session(page)
    csrf = _csrf(client)
    rebound = {"Host": f"attacker.example:{page.port}", "Origin": f"http://attacker.example:{page.port}"}
    assert client.get("/mydata", headers=rebound).status_code == 403
    answer = client.post("/pause", data={"csrf": csrf, "for": "1h"}, headers=rebound)
    assert answer.status_code == 403 and "pause" not in _ledger_kinds(layout)
    assert client.get("/", headers={"Host": f"localhost:{page.port}"}).status_code == 200


def test_a_missing_or_wrong_token_gets_nothing(page: PageServer, layout: Layout) -> None:
    _fill_vault(layout)
    raw = httpx.Client(base_url=page.url)
    for answer in (raw.get("/mydata"), raw.get("/mydata", params={"token": "wrong-" + page.token})):
        assert answer.status_code == 403
        assert "Set-Cookie" not in answer.headers and "subj-" not in answer.text and "keyboard" not in answer.text
    forged = {"Cookie": f"consentry-session-{page.port}={page.token}"}  # the token is not the cookie value
    assert raw.get("/mydata", headers=forged).status_code == 403
    csrf = _csrf(_session(page))
    no_session = raw.post("/consent/keyboard/revoke", data={"csrf": csrf}, headers={"Origin": page.url.rstrip("/")})
    assert no_session.status_code == 403 and "revoke" not in _ledger_kinds(layout)


def test_a_post_without_the_csrf_token_or_origin_is_refused(page: PageServer, layout: Layout) -> None:
    _fill_vault(layout)
    client = _session(page)
    csrf = _csrf(client)
    origin = {"Origin": page.url.rstrip("/")}
    assert client.post("/consent/keyboard/revoke", data={"confirm": "yes"}, headers=origin).status_code == 403
    assert client.post("/consent/keyboard/revoke", data={"csrf": "0" * 64}, headers=origin).status_code == 403
    assert client.post("/consent/keyboard/revoke", data={"csrf": csrf}).status_code == 403  # no Origin, no Referer
    as_json = client.post(
        "/consent/keyboard/revoke", content=json.dumps({"csrf": csrf}), headers={**origin, "Content-Type": "text/plain"}
    )
    assert as_json.status_code == 415
    assert "revoke" not in _ledger_kinds(layout)
    assert client.post("/consent/keyboard/revoke", data={"csrf": csrf}, headers=origin).status_code == 303
    assert "revoke" in _ledger_kinds(layout)


def test_every_answer_carries_the_security_headers_and_the_server_binds_loopback(page: PageServer) -> None:
    client = _session(page)
    for answer in (client.get("/"), httpx.get(page.url), httpx.get(page.url, headers={"Host": "x:1"})):
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["Cache-Control"] == "no-store"
    cookie = client.get("/", params={"token": page.token}).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert page.url.startswith("http://127.0.0.1:")
    others = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in others - {a for a in others if a.startswith("127.")}:
        with pytest.raises(OSError):
            socket.create_connection((address, page.port), timeout=2).close()


def test_the_token_is_not_in_any_log(page: PageServer, layout: Layout) -> None:
    client = _session(page)
    client.get("/mydata")
    client.get("/", params={"token": "wrong"})
    logs = "".join(p.read_text(errors="replace") for p in layout.home.rglob("*.log"))
    assert page.token not in logs


def test_consentry_page_prints_or_explains(page: PageServer, layout: Layout) -> None:
    from click.testing import CliRunner

    from agent.cli.page_cmd import page as page_cmd

    shown = CliRunner().invoke(page_cmd, ["mydata", "--print-url"])
    assert shown.exit_code == 0 and shown.output.strip() == page_link(layout.page_link, "/mydata")
    layout.page_link.unlink()
    missing = CliRunner().invoke(page_cmd, ["--print-url"])
    assert missing.exit_code == 1 and "consentry agent run" in missing.output and "Traceback" not in missing.output


def test_the_page_never_shows_a_traceback(layout: Layout, policy_path: Path) -> None:
    """A broken vault under a running page: a plain message, the kind only."""
    Vault.open(layout).close()
    with PageServer(EmployeePage(layout, policy_path, lambda: True)) as server:
        client = _session(server)
        layout.vault_db.write_bytes(b"not a database" * 100)
        answer = client.get("/mydata")
    assert answer.status_code in (409, 500) and "Traceback" not in answer.text and "nothing was changed" in answer.text


def test_the_workstation_page_needs_no_web_framework() -> None:
    """fastapi/uvicorn/starlette are the store's; the agent's page runs on the standard library."""
    code = (
        "import sys, agent.runner, agent.web.launch, agent.web.employee, agent.cli.page_cmd\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert not loaded & {"fastapi", "uvicorn", "starlette", "pyarrow", "selenium"}


def test_consentry_page_opens_the_page_without_the_token_on_a_command_line(
    page: PageServer, layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser gets a 0600 file:// forwarder; following it in Chromium lands in an open session."""
    from click.testing import CliRunner

    from agent.cli.page_cmd import page as page_cmd

    seen = tmp_path / "browser-argv"
    recorder = tmp_path / "record-browser"
    recorder.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\n')
    recorder.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(recorder))
    result = CliRunner().invoke(page_cmd, ["mydata"])
    assert result.exit_code == 0, result.output
    argv = wait_for(lambda: seen.exists() and seen.read_text(), "the browser to be started")
    assert argv.startswith("file://") and page.token not in argv and page.token not in result.output
    opener = Path(argv.removeprefix("file://"))
    assert opener.stat().st_mode & 0o077 == 0
    with chromium(tmp_path / "profile") as driver:
        driver.get(argv)
        wait_for(lambda: driver.current_url == page.url + "mydata", "the forwarded page")
        wait_for(lambda: "What is stored about you" in driver.page_source, "an authenticated session")


def test_the_routes_are_one_table_and_anything_else_is_no_such_page(page: PageServer, layout: Layout) -> None:
    """Every page and action the employee can reach is a row of ``EmployeePage.ROUTES``; other paths,
    other methods, unknown categories and malformed batch ids answer "There is no such page here."
    and change nothing."""
    table = {(method, "/" + "/".join(pattern)) for method, pattern, _ in EmployeePage.ROUTES}
    assert table == {
        ("GET", "/"),
        ("GET", "/state"),
        ("GET", "/consent/{category}"),
        ("POST", "/consent/{category}/grant"),
        ("POST", "/consent/{category}/revoke"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("GET", "/mydata"),
        ("GET", "/batches"),
        ("GET", "/batches/{batch_id}"),
        ("POST", "/batches/{batch_id}/veto"),
        ("POST", "/batches/{batch_id}/release"),
        ("GET", "/ledger"),
        ("GET", "/erase"),
        ("POST", "/erase"),
    }
    client = _session(page)
    origin = {"Origin": page.url.rstrip("/")}
    csrf = _csrf(client)
    for path in ("/", "/consent/keyboard", "/mydata", "/mydata/", "/batches", "/ledger", "//ledger", "/erase"):
        assert client.get(path).status_code == 200, path
    before = _ledger_kinds(layout)
    unknown_batch = "/batches/" + "g" * 32
    for path in ("/nowhere", "/consent/bogus", "/consent/keyboard/grant", "/pause", unknown_batch, "/ledger/x"):
        answer = client.get(path)
        assert answer.status_code == 404 and "There is no such page here." in answer.text, path
    for path in ("/mydata", "/consent/bogus/grant", "/consent/keyboard", "/consent/keyboard/grant/x", "/batches"):
        answer = client.post(path, data={"csrf": csrf}, headers=origin)
        assert answer.status_code == 404 and "There is no such page here." in answer.text, path
    assert _ledger_kinds(layout) == before


# -- the page follows what changes elsewhere ------------------------------------------------------


def _capture_cell(driver: object, category: str) -> str:
    from selenium.webdriver.common.by import By

    row = driver.find_element(By.XPATH, f"//tr[td/a[text()='{category}']]")  # type: ignore[attr-defined]
    return str(row.find_elements(By.TAG_NAME, "td")[3].text)


def test_the_open_page_follows_a_pause_from_the_cli_and_says_when_the_agent_stops(
    layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    """The employee keeps the page open and pauses, then resumes, from the CLI (or the tray); later the agent
    stops. The page's "Capture now" follows each change by itself: a page left saying "capturing" after a pause,
    or "paused" after capture came back, tells the employee something false about their own data."""
    policy_path.write_text(SHORT_WINDOW_POLICY)
    env = agent_env(layout.home, policy_path, None)
    grant(layout, policy_path, Category.KEYBOARD)
    agent = AgentProcess(layout, env, "--replay", "synthetic:seed=3,key_rate=20,move_rate=0")
    try:
        link = wait_for(lambda: page_link(layout.page_link, "/"), "the agent's page.json")
        agent.wait_state("keyboard", "capturing")
        with chromium(tmp_path / "profile") as driver:
            _open(driver, link)
            assert _capture_cell(driver, "keyboard") == "capturing"

            cli = [sys.executable, "-m", "agent"]
            subprocess.run([*cli, "pause", "--for", "1h"], env=env, check=True, capture_output=True, timeout=60)
            wait_for(lambda: "All capture is paused" in driver.page_source, "the page showing the pause", 30)
            assert _capture_cell(driver, "keyboard") == "paused"

            subprocess.run([*cli, "resume"], env=env, check=True, capture_output=True, timeout=60)
            wait_for(lambda: _capture_cell(driver, "keyboard") == "capturing", "the page showing capture again", 30)
            assert "All capture is paused" not in driver.page_source

            assert agent.stop() == 0
            wait_for(lambda: "not answering" in driver.page_source, "the page saying it no longer follows", 30)
    finally:
        agent.stop()
