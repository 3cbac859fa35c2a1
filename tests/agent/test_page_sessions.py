"""The page guard's own rules over real HTTP: sessions that expire, session-bound CSRF, fetch metadata,
and the peer check that refuses every connection from another local user's programs."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agent.web.employee import EmployeePage
from kit.web.peer import PeerCheckUnavailable, peer_owners, same_user
from kit.web.peer_linux import ProcNetTcp, proc_hex
from kit.web.security import ABSOLUTE, IDLE, SessionGuard
from kit.web.server import PageServer
from tests.other_user import SYSTEM_PYTHON, as_other_user, require_other_user
from vault.paths import Layout
from vault.vault import Vault


class Clock:
    """A monotonic clock the test moves by hand (the guard's ``clock``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by.total_seconds()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(layout: Layout, policy_path: Path, clock: Clock) -> Iterator[PageServer]:
    Vault.open(layout).close()
    page = PageServer(
        EmployeePage(layout, policy_path, lambda: True), guard=lambda port: SessionGuard(port, clock=clock)
    )
    with page:
        yield page


def _session(server: PageServer) -> httpx.Client:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    assert client.get("/", params={"token": server.token}).status_code == 200
    return client


def _csrf(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/").text)
    assert found
    return found.group(1)


def test_a_session_ends_after_thirty_idle_minutes(server: PageServer, clock: Clock) -> None:
    client = _session(server)
    clock.advance(IDLE - timedelta(seconds=1))
    assert client.get("/ledger").status_code == 200  # used: the idle time starts again
    clock.advance(IDLE - timedelta(seconds=1))
    assert client.get("/ledger").status_code == 200
    clock.advance(IDLE)
    ended = client.get("/ledger")
    assert ended.status_code == 403 and "30 minutes without use" in ended.text and "consentry page" in ended.text
    assert _session(server).get("/ledger").status_code == 200  # the link opens a new one


def test_an_open_page_asking_for_its_state_does_not_keep_its_session_alive(server: PageServer, clock: Clock) -> None:
    """The overview asks /state every few seconds while it is open; an unattended page's session still ends."""
    client = _session(server)
    clock.advance(IDLE - timedelta(seconds=2))
    asked = client.get("/state")
    assert asked.status_code == 200 and asked.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{64}", asked.json()["shown"])
    clock.advance(timedelta(seconds=2))
    assert client.get("/state").status_code == 403  # thirty minutes since the person last used the page
    assert client.get("/").status_code == 403


class WallClock:
    """The page's own clock (EmployeePage ``clock``): the time a pause is measured against."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_state_an_open_page_shows_changes_when_a_pause_ends(layout: Layout, policy_path: Path) -> None:
    wall = WallClock()
    Vault.open(layout).close()
    with PageServer(EmployeePage(layout, policy_path, lambda: True, clock=wall, tz=UTC)) as page:
        client = _session(page)
        assert client.post(
            "/pause", data={"csrf": _csrf(client), "for": "15m"}, headers={"Origin": page.url.rstrip("/")}
        ).is_redirect
        paused = client.get("/state").json()["shown"]
        assert "All capture is paused until 2026-12-07 09:15 UTC" in client.get("/").text
        wall.now += timedelta(minutes=14)
        assert client.get("/state").json()["shown"] == paused  # nothing the page shows changed
        wall.now += timedelta(minutes=1)
        assert client.get("/state").json()["shown"] != paused  # the open page loads itself again
        assert "All capture is paused" not in client.get("/").text


def test_a_session_ends_after_eight_hours_however_busy(server: PageServer, clock: Clock) -> None:
    client = _session(server)
    used = timedelta()
    while used + timedelta(minutes=20) < ABSOLUTE:
        clock.advance(timedelta(minutes=20))
        used += timedelta(minutes=20)
        assert client.get("/").status_code == 200
    clock.advance(ABSOLUTE - used)
    assert client.get("/").status_code == 403
    cookie = _session(server).get("/", params={"token": server.token}).headers["Set-Cookie"]
    assert f"Max-Age={int(ABSOLUTE.total_seconds())}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_each_session_has_its_own_cookie_and_csrf_token(server: PageServer, layout: Layout) -> None:
    first, second = _session(server), _session(server)
    assert first.cookies.get(f"consentry-session-{server.port}") != second.cookies.get(
        f"consentry-session-{server.port}"
    )
    origin = {"Origin": server.url.rstrip("/")}
    other = second.post("/pause", data={"csrf": _csrf(first), "for": "1h"}, headers=origin)
    assert other.status_code == 403
    with Vault.open(layout) as vault:
        assert not list(vault.ledger.entries(("pause",)))
    assert second.post("/pause", data={"csrf": _csrf(second), "for": "1h"}, headers=origin).status_code == 303


def test_fetch_metadata_refuses_posts_and_embeds_from_other_origins(server: PageServer, layout: Layout) -> None:
    client = _session(server)
    csrf = _csrf(client)
    origin = {"Origin": server.url.rstrip("/")}
    for site in ("same-site", "cross-site", "none"):
        answer = client.post("/pause", data={"csrf": csrf, "for": "1h"}, headers={**origin, "Sec-Fetch-Site": site})
        assert answer.status_code == 403, site
    with Vault.open(layout) as vault:
        assert not list(vault.ledger.entries(("pause",)))
    embedded = client.get("/mydata", headers={"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"})
    assert embedded.status_code == 403
    followed = client.get("/mydata", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert followed.status_code == 200  # a link the employee follows from elsewhere shows their own page
    same = {"Sec-Fetch-Site": "same-origin", **origin}
    assert client.post("/pause", data={"csrf": csrf, "for": "1h"}, headers=same).status_code == 303


# -- the peer check -----------------------------------------------------------------------------


def test_the_peer_owner_is_read_from_proc_for_our_own_connections() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert same_user(accepted, ProcNetTcp())
                assert not same_user(accepted, ProcNetTcp(), uid=12345)
                # The client's row is found by (its address, ours); our own end of it is not the peer.
                assert ProcNetTcp().owner_uid(accepted.getsockname(), accepted.getpeername()) is not None
        with socket.socket(socket.AF_INET6) as mapped:  # an IPv6 socket reaching 127.0.0.1: its row is in tcp6
            mapped.connect(("::ffff:127.0.0.1", listener.getsockname()[1]))
            accepted, _ = listener.accept()
            with accepted:
                assert same_user(accepted, ProcNetTcp())


def test_a_socket_row_without_a_live_owner_matches_no_user(tmp_path: Path) -> None:
    """TIME_WAIT and orphaned sockets are listed with uid 0 and inode 0: never taken for root's own."""
    peer, local = ("127.0.0.1", 50000), ("127.0.0.1", 8080)
    p4, _ = proc_hex(*peer)
    l4, _ = proc_hex(*local)
    assert (p4, l4) == ("0100007F:C350", "0100007F:1F90")
    table = tmp_path / "tcp"
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    table.write_text(header + f"   0: {p4} {l4} 06 00000000:00000000 03:00001000 00000000     0        0 0 3\n")
    assert ProcNetTcp((table,)).owner_uid(peer, local) is None
    table.write_text(header + f"   0: {p4} {l4} 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1\n")
    assert ProcNetTcp((table,)).owner_uid(peer, local) == 1000
    assert ProcNetTcp((tmp_path / "missing",)).owner_uid(peer, local) is None  # unreadable: refused


def test_a_connection_from_another_user_is_refused_before_anything_is_read(server: PageServer) -> None:
    """Even with the token: the other user's process gets a refusal and no session."""
    require_other_user()
    code = (
        "import http.client, sys\n"
        "c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=30)\n"
        "c.request('GET', '/?token=' + sys.stdin.read(), headers={'Host': '127.0.0.1:' + sys.argv[1]})\n"
        "r = c.getresponse()\n"
        "print(r.status, r.getheader('Set-Cookie'), 'another user' in r.read().decode())\n"
    )
    done = subprocess.run(
        [*as_other_user(), SYSTEM_PYTHON, "-I", "-c", code, str(server.port)],
        input=server.token, capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["403", "None", "True"]


def test_no_page_starts_where_the_peer_cannot_be_checked() -> None:
    for platform in ("darwin", "win32", "freebsd14"):
        with pytest.raises(PeerCheckUnavailable, match="consentry commands"):
            peer_owners(platform)
    assert isinstance(peer_owners("linux"), ProcNetTcp)
    with pytest.raises(PeerCheckUnavailable, match="/proc/net/tcp"):
        ProcNetTcp((Path("/nonexistent/tcp"), Path("/nonexistent/tcp6"))).check_readable()
