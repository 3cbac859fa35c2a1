"""The real agent under a real X server (Xvfb + openbox), driven by xdotool; read back through the vault."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent.control import notify_consent_changed, query_status, request_pause, request_resume
from devkit.xserver import XServer, x_server
from protocol.categories import Category
from protocol.timeutil import utc_now
from tests.agent_harness import (
    SHORT_WINDOW_POLICY,
    AgentProcess,
    agent_env,
    every_file_under,
    grant,
    key_total,
    records,
    revoke,
    wait_records,
)
from vault.paths import Layout
from vault.vault import Vault

pytestmark = pytest.mark.x11

SECRET = "zq7Xv-Pw0rd-Qk9"
LOGIN_PASSWORD = "Tr0ub4dor&3x"
# The secret with enough other typing around it that the window keeps its counts (KEYBOARD_MIN_PRESSES).
TYPED_WITH_SECRET = f"the quick brown fox {SECRET} jumps over"
WINDOW_SECONDS = 10  # SHORT_WINDOW_POLICY
# Typing counted by a test: over KEYBOARD_MIN_PRESSES, so its window keeps its counts.
RUN = 40
STOP_DEADLINE_SECONDS = 3.0
# Time for the last xdotool events to reach the agent (its X record thread) before the next step. A wait,
# not a timing claim: generous, since a machine loaded by a parallel test run delays their delivery.
SETTLE_SECONDS = 1.5


def _type_in_one_window(x: XServer, text: str) -> None:
    """Type ``text`` early enough in an aligned window that it all lands in that one window.

    A window of fewer than KEYBOARD_MIN_PRESSES presses keeps no counts, so typing split across two
    windows could vanish from the counts; the agent aligns windows to the UTC clock, as done here.
    """
    remaining = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if remaining < 4.0:
        time.sleep(remaining + 0.1)
    x.type(text)


def _wait_counted(layout: Layout, letters: int, timeout: float = 4 * WINDOW_SECONDS) -> None:
    """Wait (bounded) until the flushed keyboard windows count ``letters`` letter presses in all.

    Waits for an event, the windows' flush, rather than a fixed time: on a loaded machine the last
    presses can reach the agent seconds after xdotool typed them. Returns either way: the test's own
    assertion after the agent stops says what was counted.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and key_total(records(layout, Category.KEYBOARD)) < letters:
        time.sleep(0.2)


@pytest.fixture
def x() -> XServer:
    with x_server(window_manager=True) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def short_policy(policy_path: Path) -> Path:
    policy_path.write_text(SHORT_WINDOW_POLICY)
    return policy_path


def _start(layout: Layout, policy_path: Path, x: XServer | None, *args: str) -> AgentProcess:
    agent = AgentProcess(layout, agent_env(layout.home, policy_path, x.display if x else None), *args)
    agent.wait_status(lambda s: True, "the agent's first status")
    return agent


def test_nothing_before_grant_nothing_after_revoke_and_records_carry_their_receipt(
    x: XServer, layout: Layout, short_policy: Path
) -> None:
    term = x.open_window("xterm")
    x.activate(term)
    agent = _start(layout, short_policy, x)
    try:
        agent.wait_state("keyboard", "not_granted")
        _type_in_one_window(x, "a" * RUN)  # before any grant
        first = grant(layout, short_policy, Category.KEYBOARD)[Category.KEYBOARD]
        assert notify_consent_changed(layout)
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(x, "b" * RUN)
        flushed = wait_records(layout, Category.KEYBOARD)  # the window closes within 10 s
        assert key_total(flushed) == RUN

        revoke(layout, short_policy, Category.KEYBOARD)
        assert notify_consent_changed(layout)  # acknowledged = stopped and dropped
        assert query_status(layout)["categories"]["keyboard"]["state"] == "revoked"  # type: ignore[index]
        _type_in_one_window(x, "c" * RUN)  # after revocation

        second = grant(layout, short_policy, Category.KEYBOARD)[Category.KEYBOARD]
        assert notify_consent_changed(layout)
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(x, "d" * (RUN + 6))
        _wait_counted(layout, RUN + RUN + 6)
    finally:
        assert agent.stop() == 0
    stored = records(layout, Category.KEYBOARD)
    by_receipt = {first: 0, second: 0}
    for window in stored:
        by_receipt[window.receipt_id] += key_total([window])
    assert by_receipt == {first: RUN, second: RUN + 6}
    with Vault.open(layout) as vault:
        spans = vault.receipt_spans()
    for window in stored:
        span = spans[window.receipt_id]
        assert window.end > span.granted_at.timestamp()
        assert span.ended_at is None or window.start < span.ended_at.timestamp()


def test_typed_password_never_reaches_vault_logs_or_any_file(x: XServer, layout: Layout, short_policy: Path) -> None:
    term = x.open_window("xterm", "-class", "ConsentryProbeApp", "-title", "TitleNeverStored")
    x.activate(term)
    grant(layout, short_policy, Category.KEYBOARD, Category.MOUSE, Category.APPS)
    agent = _start(layout, short_policy, x)
    try:
        for category in ("keyboard", "mouse", "apps"):
            agent.wait_state(category, "capturing")
        _type_in_one_window(x, TYPED_WITH_SECRET)
        x.xdotool("mousemove", "100", "100", "click", "1", "mousemove", "300", "250", "click", "3", "click", "1")
        time.sleep(SETTLE_SECONDS)  # let the last events reach the agent before it stops
    finally:
        assert agent.stop() == 0

    keyboard = records(layout, Category.KEYBOARD)
    letters = sum(c.isalpha() for c in TYPED_WITH_SECRET)
    digits = sum(c.isdigit() for c in TYPED_WITH_SECRET)
    assert key_total(keyboard, "letter") == letters
    assert key_total(keyboard, "digit") == digits
    assert key_total(keyboard, "punctuation") == TYPED_WITH_SECRET.count("-")
    assert key_total(keyboard, "space") == TYPED_WITH_SECRET.count(" ")
    mouse = records(layout, Category.MOUSE)
    assert sum(w.clicks["left"] for w in mouse) == 2  # type: ignore[union-attr]
    assert sum(w.clicks["right"] for w in mouse) == 1  # type: ignore[union-attr]
    assert sum(w.moves for w in mouse) >= 2  # type: ignore[union-attr]
    apps = records(layout, Category.APPS)
    tokens = {f.app for w in apps for f in w.focus}  # type: ignore[union-attr]
    assert tokens and all(t.startswith("anon:") or t.startswith("cat:") for t in tokens)

    plaintext = "".join(w.model_dump_json() for w in records(layout))
    forbidden = [SECRET, SECRET.lower(), "ConsentryProbeApp", "consentryprobeapp", "TitleNeverStored"]
    for needle in forbidden:
        assert needle not in plaintext
    files = every_file_under(layout.home)
    assert layout.vault_db in files and any(p.name == "agent.log" for p in files)
    for path in files + [agent.log_path]:
        data = path.read_bytes()
        for needle in forbidden:
            assert needle.encode() not in data, f"{needle!r} found in {path.name}"
            assert needle.encode("utf-16-le") not in data, f"{needle!r} (UTF-16) found in {path.name}"
    log_text = (layout.log_dir / "agent.log").read_text() + agent.stderr
    assert str(layout.home) not in log_text  # no paths in logs


def test_a_password_typed_alone_in_a_window_leaves_neither_its_length_nor_its_shape(
    x: XServer, layout: Layout, short_policy: Path
) -> None:
    x.activate(x.open_window("xterm"))
    grant(layout, short_policy, Category.KEYBOARD)
    agent = _start(layout, short_policy, x)
    try:
        agent.wait_state("keyboard", "capturing")
        x.type(LOGIN_PASSWORD)  # 8 letters, 3 digits, 1 punctuation, and the shifted keys
        x.xdotool("key", "Return")
        flushed = wait_records(layout, Category.KEYBOARD)  # the 10-second window closes by itself
    finally:
        assert agent.stop() == 0
    stored = records(layout, Category.KEYBOARD)
    assert stored and len(stored) >= len(flushed)
    for window in stored:
        assert sum(window.key_counts.values()) == 0, window.key_counts  # type: ignore[union-attr]
        assert set(window.iki_histogram) == {0}  # type: ignore[union-attr]
        assert (window.bursts, window.longest_burst, window.pauses) == (0, 0, 0)  # type: ignore[union-attr]
        assert window.correction_ratio == 0.0  # type: ignore[union-attr]
        assert window.sparse  # type: ignore[union-attr]  # the window says the keyboard was used, no more


def test_sigterm_flushes_every_open_window_and_exits_promptly(x: XServer, layout: Layout, short_policy: Path) -> None:
    x.activate(x.open_window("xterm"))
    grant(layout, short_policy, Category.KEYBOARD, Category.MOUSE, Category.APPS)
    agent = _start(layout, short_policy, x)
    for category in ("keyboard", "mouse", "apps"):
        agent.wait_state(category, "capturing")
    _type_in_one_window(x, "s" * RUN)
    x.xdotool("click", "1", "click", "1", "click", "3")
    time.sleep(SETTLE_SECONDS)  # let the last events reach the agent's buffers
    agent.proc.send_signal(signal.SIGTERM)
    # Far above the half second this takes, far below the 4.8 s of two 2-second thread joins it took.
    assert agent.proc.wait(timeout=STOP_DEADLINE_SECONDS) == 0
    agent.stop()

    assert key_total(records(layout, Category.KEYBOARD)) == RUN  # the open window, cut and flushed
    mouse = records(layout, Category.MOUSE)
    assert (sum(w.clicks["left"] for w in mouse), sum(w.clicks["right"] for w in mouse)) == (2, 1)  # type: ignore[union-attr]
    assert records(layout, Category.APPS)
    log_text = (layout.log_dir / "agent.log").read_text()
    assert "did not stop" not in log_text  # every capture thread ended when told, none was abandoned
    assert "agent exited cleanly" in log_text
    assert json.loads(layout.agent_status.read_text())["agent_state"] == "stopped"
    assert not layout.control_socket.exists() and not layout.page_link.exists()


def test_focusing_an_excluded_app_suspends_every_source(x: XServer, layout: Layout, short_policy: Path) -> None:
    normal = x.open_window("xterm")
    vault_app = x.open_window("xterm", "-class", "KeePassXC")  # excluded by the default policy
    x.activate(normal)
    grant(layout, short_policy, Category.KEYBOARD, Category.APPS)
    agent = _start(layout, short_policy, x)
    try:
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(x, "a" * RUN)
        # Exclusion starts at the last focus poll (4 Hz) that still saw a permitted app, so input in
        # the quarter second before a switch is dropped too; let the events arrive and a poll pass first.
        time.sleep(SETTLE_SECONDS)
        x.activate(vault_app)
        status = agent.wait_state("keyboard", "excluded_app_focused")
        assert status["categories"]["apps"]["state"] == "excluded_app_focused"
        _type_in_one_window(x, "p" * RUN)
        x.activate(normal)
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(x, "b" * (RUN + 3))
        _wait_counted(layout, 2 * RUN + 3)
    finally:
        assert agent.stop() == 0
    assert key_total(records(layout, Category.KEYBOARD)) == 2 * RUN + 3
    apps = records(layout, Category.APPS)
    assert {f.app for w in apps for f in w.focus} == {"cat:terminal"}  # type: ignore[union-attr]


def test_pause_and_timed_pause_stop_capture_and_resume(x: XServer, layout: Layout, short_policy: Path) -> None:
    x.activate(x.open_window("xterm"))
    grant(layout, short_policy, Category.KEYBOARD)
    agent = _start(layout, short_policy, x)
    try:
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(x, "a" * RUN)
        assert request_pause(layout, None)
        assert query_status(layout)["categories"]["keyboard"]["state"] == "paused"  # type: ignore[index]
        _type_in_one_window(x, "p" * RUN)
        assert request_resume(layout)
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(x, "b" * (RUN + 1))
        # Long enough to outlast the wait for an early point in a window and the typing.
        assert request_pause(layout, utc_now() + timedelta(seconds=12))
        agent.wait_state("keyboard", "paused")
        _type_in_one_window(x, "q" * RUN)
        agent.wait_state("keyboard", "capturing", timeout=30)  # the timed pause ends by itself
        _type_in_one_window(x, "c" * (RUN + 2))
        _wait_counted(layout, 3 * RUN + 3)
    finally:
        assert agent.stop() == 0
    assert key_total(records(layout, Category.KEYBOARD)) == 3 * RUN + 3
    with Vault.open(layout) as vault:
        kinds = [e.kind for e in vault.ledger.entries() if e.kind in ("pause", "resume")]
        reasons = [e.body.get("reason") for e in vault.ledger.entries(("resume",))]
    assert kinds == ["pause", "resume", "pause", "resume"]
    assert reasons == ["employee", "pause-expired"]


def test_invalid_policy_stops_all_capture_until_fixed(x: XServer, layout: Layout, short_policy: Path) -> None:
    x.activate(x.open_window("xterm"))
    grant(layout, short_policy, Category.KEYBOARD, Category.MOUSE)
    agent = _start(layout, short_policy, x)
    try:
        agent.wait_state("keyboard", "capturing")
        short_policy.write_text("aggregation_window_seconds = 3\n")  # below the minimum
        status = agent.wait_status(lambda s: s["policy"]["state"] == "invalid", "the policy to be invalid")
        assert "aggregation_window_seconds" in status["policy"]["message"]
        for category in ("keyboard", "mouse", "apps", "files"):
            assert status["categories"][category]["state"] == "forbidden_by_policy"
            assert "policy is invalid" in status["categories"][category]["reason"]
        _type_in_one_window(x, "p" * RUN)
        x.xdotool("click", "1")
        short_policy.write_text(SHORT_WINDOW_POLICY)
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(x, "o" * RUN)
        _wait_counted(layout, RUN)
    finally:
        assert agent.stop() == 0
    assert key_total(records(layout, Category.KEYBOARD)) == RUN
    assert all(w.clicks["left"] == 0 for w in records(layout, Category.MOUSE))  # type: ignore[union-attr]


def test_a_new_window_length_while_the_employee_types_loses_no_press(
    x: XServer, layout: Layout, short_policy: Path
) -> None:
    """IT deploys a policy with another window length while the employee types: every press counts.

    The agent cuts its windows at the change and opens the next ones at once; presses still held for
    the focus source's next report at that moment were dropped, as a pause drops them.
    """
    x.activate(x.open_window("xterm"))
    grant(layout, short_policy, Category.KEYBOARD)
    agent = _start(layout, short_policy, x)
    presses = 400
    try:
        agent.wait_state("keyboard", "capturing")
        # Start just after a 20 s boundary: the 10 s window before the change and the 20 s one after it
        # each get about half the presses (more than KEYBOARD_MIN_PRESSES), and no other boundary falls in.
        time.sleep(20.5 - time.time() % 20)
        typing = threading.Thread(target=x.type, args=("k" * presses,), kwargs={"delay_ms": 20})  # about 5 s
        typing.start()
        time.sleep(2.0)
        staged = short_policy.with_suffix(".new")
        staged.write_text("aggregation_window_seconds = 20\n")
        staged.replace(short_policy)  # as configuration management deploys a file
        typing.join()
        _wait_counted(layout, presses)
    finally:
        assert agent.stop() == 0
    windows = records(layout, Category.KEYBOARD)
    assert [w.sparse for w in windows] == [False, False]  # cut at the change, both counted
    assert key_total(windows) == presses


def test_a_policy_rewritten_in_place_is_never_read_as_the_defaults(layout: Layout, short_policy: Path) -> None:
    """Editors and `echo > policy.toml` empty the file before writing it: the agent must not apply
    the embedded defaults (other categories, stewards, window) in that moment."""
    agent = _start(layout, short_policy, None)
    try:
        short_policy.write_bytes(b"")
        status = agent.wait_status(lambda s: s["policy"]["state"] != "ok", "the empty policy to be refused")
        assert "empty" in status["policy"]["message"]
        short_policy.write_text(SHORT_WINDOW_POLICY)
        agent.wait_status(lambda s: s["policy"]["state"] == "ok", "the policy to be valid again")
    finally:
        assert agent.stop() == 0


def test_killed_x_server_leaves_agent_running_and_reports_sources_unavailable(
    layout: Layout, short_policy: Path
) -> None:
    server = XServer.start(window_manager=True)
    try:
        server.activate(server.open_window("xterm"))
        grant(layout, short_policy, Category.KEYBOARD, Category.MOUSE, Category.APPS)
        agent = _start(layout, short_policy, server)
        agent.wait_state("keyboard", "capturing")
        _type_in_one_window(server, "a" * RUN)
        server.kill()
        status = agent.wait_status(
            lambda s: all(s["categories"][c]["state"] == "unavailable" for c in ("keyboard", "mouse", "apps")),
            "sources to be reported unavailable",
        )
        assert status["categories"]["keyboard"]["reason"]
        time.sleep(3)  # retries against the dead display must not crash the agent either
        assert agent.alive()
        assert query_status(layout) is not None
        assert agent.stop() == 0
    finally:
        server.stop()
    assert key_total(records(layout, Category.KEYBOARD)) == RUN


def test_deleted_watched_folder_reports_files_unavailable(
    x: XServer, layout: Layout, short_policy: Path, tmp_path: Path
) -> None:
    from agent.watched_folders import write_watched_folders

    documents = tmp_path / "Documents"
    (documents / "sub").mkdir(parents=True)
    write_watched_folders(layout, [documents])
    grant(layout, short_policy, Category.FILES)
    agent = _start(layout, short_policy, x)
    try:
        agent.wait_state("files", "capturing")
        (documents / "salary-review-2025.md").write_text("x")
        (documents / "sub" / "notes.py").write_text("x")
        (documents / "sub" / "secret-name.unknownext").write_text("x")
        time.sleep(0.5)
        for path in documents.rglob("*"):
            if path.is_file():
                path.unlink()
        time.sleep(0.3)
        documents.joinpath("sub").rmdir()
        documents.rmdir()
        status = agent.wait_state("files", "unavailable")
        assert "watched folder" in status["categories"]["files"]["reason"]
        assert str(documents) not in str(status)
        assert agent.alive()
    finally:
        assert agent.stop() == 0
    windows = records(layout, Category.FILES)
    events = [e for w in windows for e in w.events]  # type: ignore[union-attr]
    created = {(e.root_class.value, e.depth, e.ext) for e in events if e.kind.value == "created"}
    assert created == {("documents", 0, "md"), ("documents", 1, "py"), ("documents", 1, None)}
    plaintext = "".join(w.model_dump_json() for w in windows)
    assert "salary" not in plaintext and "secret-name" not in plaintext and "notes" not in plaintext


def test_kill_9_loses_at_most_the_open_window_and_corrupts_nothing(
    x: XServer, layout: Layout, short_policy: Path
) -> None:
    x.activate(x.open_window("xterm"))
    grant(layout, short_policy, Category.KEYBOARD)
    agent = _start(layout, short_policy, x)
    agent.wait_state("keyboard", "capturing")
    second = AgentProcess(layout, agent_env(layout.home, short_policy, x.display))
    assert second.proc.wait(timeout=20) == 1  # one agent per employee
    assert "already running" in second.stderr
    _type_in_one_window(x, "a" * RUN)
    wait_records(layout, Category.KEYBOARD)
    x.type("bbb")
    agent.kill9()

    assert key_total(records(layout, Category.KEYBOARD)) >= RUN
    conn = sqlite3.connect(layout.vault_db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    with Vault.open(layout) as vault:
        assert vault.ledger.verify().ok
    restarted = _start(layout, short_policy, x)  # the lock died with the process
    restarted.wait_state("keyboard", "capturing")
    assert restarted.stop() == 0
