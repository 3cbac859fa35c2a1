"""The agent's control socket under clients that misbehave: a real agent process, real Unix sockets.

Found in issue 14: a pause whose ``until`` had no UTC offset went unanswered for 10 s (the agent's
loop failed on it and never answered), and one client sending its request a byte at a time held the
one-at-a-time accept loop, so the CLI and the tray could not reach the agent at all.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.control import query_status
from agent.control_server import MAX_CLIENTS
from tests.agent_harness import AgentProcess, agent_env
from vault.paths import Layout
from vault.vault import Vault

PATIENCE = 30.0  # how long a test client waits for an answer: generous, the machine is shared


@pytest.fixture
def agent(layout: Layout, policy_path: Path) -> Iterator[AgentProcess]:
    running = AgentProcess(layout, agent_env(layout.home, policy_path, None))
    try:
        running.wait_status(lambda s: True, "the agent's first status")
        yield running
    finally:
        assert running.stop() == 0


def _connect(layout: Layout) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(PATIENCE)
    sock.connect(str(layout.control_socket))
    return sock


def _answer(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def _ask(layout: Layout, line: bytes) -> dict[str, Any]:
    with _connect(layout) as sock:
        sock.sendall(line)
        return _answer(sock)


def _ledger_kinds(layout: Layout) -> list[str]:
    with Vault.open(layout, create=False) as vault:
        return [entry.kind for entry in vault.ledger.entries()]


def test_a_pause_until_a_time_without_offset_is_refused_with_the_reason(agent: AgentProcess, layout: Layout) -> None:
    before = _ledger_kinds(layout)
    answer = _ask(layout, b'{"v": 1, "op": "pause", "until": "2030-01-01T09:00:00"}\n')
    assert answer["ok"] is False and "timezone" in answer["error"], answer
    assert "busy" not in answer["error"]
    answer = _ask(layout, b'{"v": 1, "op": "pause", "until": "2020-01-01T09:00:00Z"}\n')
    assert answer == {
        "v": 1,
        "ok": False,
        "error": "a pause must end in the future",
        "ledger_seq": None,
        "status": None,
    }
    answer = _ask(layout, b'{"v": 1, "op": "status", "until": "2030-01-01T09:00:00Z"}\n')
    assert answer["ok"] is False and "'until' belongs to a pause only" in answer["error"]
    assert _ledger_kinds(layout) == before  # nothing was recorded
    assert agent.status()["paused_until"] is None  # type: ignore[index]
    status = query_status(layout, timeout=PATIENCE)  # and the agent still answers
    assert status is not None and status["agent_state"] == "running"


def test_bad_input_is_answered_at_once_with_an_error(agent: AgentProcess, layout: Layout) -> None:
    for line in (b"not json\n", b'{"v": 2, "op": "status"}\n', b'{"v": 1, "op": "erase-everything"}\n'):
        answer = _ask(layout, line)
        assert answer["ok"] is False and answer["error"].startswith("malformed request"), (line, answer)
    answer = _ask(layout, b"x" * (70 * 1024))  # no newline, over the limit
    assert answer["ok"] is False and "longer than" in answer["error"]


def test_a_trickling_client_does_not_delay_another(agent: AgentProcess, layout: Layout) -> None:
    trickler = _connect(layout)
    stop = threading.Event()
    refusal: list[dict[str, Any]] = []

    def trickle() -> None:
        try:
            for byte in b'{"v": 1, "op": "status"' * 10:  # one byte every half second, never the newline
                trickler.sendall(bytes([byte]))
                if stop.wait(0.5):
                    return
        except OSError:  # the agent hung up on it, which is the point
            pass

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        status = query_status(layout, timeout=PATIENCE)  # served while the trickler is still trickling
        assert status is not None and status["agent_state"] == "running"
        refusal.append(_answer(trickler))  # and the trickler itself is told, then disconnected
    finally:
        stop.set()
        sender.join()
        trickler.close()
    assert refusal[0]["ok"] is False and "did not arrive within" in refusal[0]["error"]


def test_more_clients_than_it_serves_at_once_are_refused_not_queued(agent: AgentProcess, layout: Layout) -> None:
    silent = [_connect(layout) for _ in range(MAX_CLIENTS)]
    try:
        answer = _ask(layout, b'{"v": 1, "op": "status"}\n')
        assert answer["ok"] is False and "too many" in answer["error"]
        for sock in silent:  # each silent one is told off in its turn, freeing its place
            assert _answer(sock)["ok"] is False
        status = query_status(layout, timeout=PATIENCE)
        assert status is not None and status["agent_state"] == "running"
    finally:
        for sock in silent:
            sock.close()
