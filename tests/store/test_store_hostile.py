"""The store under hostile input: it authenticates before it reads a body, bounds bodies per route, and caps
how many large bodies it holds at once; the audit log and the API docs are not public; HTTP conformance."""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from devkit import store_kit
from devkit.store_kit import Agent, Harness, SigningKey, running_store
from protocol import b64encode
from protocol.request_signing import sign_request

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends

HOSTILE_BYTES = 28 * 1024 * 1024  # declared, never sent: under the default 32 MB limit
LIVENESS = 15.0  # seconds a socket waits for the server; a bound on a hang, not a timing assertion


@pytest.fixture
def store(backend_kind: str, tmp_path: Path) -> Iterator[Harness]:
    with running_store(backend_kind, tmp_path) as harness:
        yield harness


@pytest.fixture
def agent(store: Harness) -> Agent:
    a = Agent()
    store.enroll(a)
    return a


def _open(
    url: str, method: str, path: str, headers: dict[str, str], declared: int | None, sent: bytes
) -> socket.socket:
    """A raw HTTP/1.1 request that declares ``declared`` body bytes (or is chunked) but sends only ``sent``."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=LIVENESS)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if declared is None:
        lines.append("Transfer-Encoding: chunked")
        sent = f"{len(sent):x}\r\n".encode() + sent + b"\r\n" if sent else b""
    else:
        lines.append(f"Content-Length: {declared}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + sent)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response (status, lower-case headers, body); raises socket.timeout if the server never answers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if ":" in h)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def _signed_headers(signer: SigningKey, role: str, path: str, *, now: int | None = None) -> dict[str, str]:
    """Well-formed auth headers for a body the attacker never sends (so the signature cannot verify)."""
    return sign_request(signer, role, "POST", path, b"not the body", now=int(time.time()) if now is None else now)


def _hostile_headers(kind: str, store: Harness) -> dict[str, str]:
    if kind == "unsigned":
        return {}
    if kind == "unknown_device":
        return _signed_headers(SigningKey.generate(), "device", "/v1/uploads")
    if kind == "unknown_steward":
        return _signed_headers(SigningKey.generate(), "steward", "/v1/uploads")
    if kind == "stale":
        return _signed_headers(SigningKey.generate(), "device", "/v1/uploads", now=int(time.time()) - 7200)
    if kind == "garbled":
        return {"consentry-key": "device:" + "x" * 300, "consentry-timestamp": "soon", "consentry-nonce": "n"}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["unsigned", "unknown_device", "unknown_steward", "stale", "garbled"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_unauthenticated_large_body_is_refused_before_it_is_read(store: Harness, kind: str, chunked: bool) -> None:
    before = store.stored()
    sock = _open(
        store.url,
        "POST",
        "/v1/uploads",
        _hostile_headers(kind, store),
        None if chunked else HOSTILE_BYTES,
        b"{" + b" " * 4096,  # a few KB of a 28 MB body: the server must answer without the rest
    )
    with sock:
        status, _headers, body = _response(sock)
    assert status in (400, 401, 403), (status, body)
    assert b'"error"' in body and b"Traceback" not in body
    assert store.stored() == before


def test_declared_body_over_the_route_limit_gets_413_before_it_is_read(store: Harness, agent: Agent) -> None:
    # Enrollment takes a few hundred bytes: a 1 MB "enrollment" is refused on its Content-Length alone.
    with _open(store.url, "POST", "/v1/enroll", {}, 1024 * 1024, b"{") as sock:
        status, _, body = _response(sock)
    assert status == 413 and b"body_too_large" in body
    # A device's checkpoint is small too, even when the device is enrolled.
    headers = _signed_headers(agent.device, "device", "/v1/checkpoints")
    with _open(store.url, "POST", "/v1/checkpoints", headers, 8 * 1024 * 1024, b"{") as sock:
        assert _response(sock)[0] == 413


def test_streamed_body_over_the_route_limit_gets_413(store: Harness, agent: Agent) -> None:
    headers = _signed_headers(agent.device, "device", "/v1/checkpoints")
    with _open(store.url, "POST", "/v1/checkpoints", headers, None, b"{" + b" " * (300 * 1024)) as sock:
        status, _, body = _response(sock)
    assert status == 413 and b"body_too_large" in body


def test_excess_concurrent_large_bodies_get_503_with_retry_after(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, large_body_bytes=64 * 1024, max_large_bodies=1) as store:
        agent = Agent()
        store.enroll(agent)
        # Two enrolled-looking senders each start a 1 MB upload and stall: one holds the only large-body slot.
        socks = [
            _open(store.url, "POST", "/v1/uploads", _signed_headers(agent.device, "device", "/v1/uploads"), 2**20, b"{")
            for _ in range(2)
        ]
        try:
            readable, _, _ = select.select(socks, [], [], LIVENESS)
            assert len(readable) == 1, "exactly one of two stalled large bodies must be turned away at once"
            refused = readable[0]
            status, headers, body = _response(refused)
            assert status == 503 and int(headers["retry-after"]) >= 1 and b"busy" in body
            holder = socks[1 - socks.index(refused)]
            holder.sendall(b" " * (2**20 - 1))  # the rest: read, then refused for its signature
            assert _response(holder)[0] == 401
        finally:
            for s in socks:
                s.close()
        # The slot is free again: a genuine large upload goes through.
        with store.client(agent) as client:
            assert client.upload(store.shippable(agent, 400)[1]).entry.kind == "batch-stored"


def test_legitimate_large_upload_under_the_limit_is_stored(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, large_body_bytes=4096) as store:
        agent = Agent()
        store.enroll(agent)
        _, sealed = store.shippable(agent, 2000)
        assert len(sealed.model_dump_json()) > 64 * 1024
        with store.client(agent) as client:
            receipt = client.upload(sealed)
        assert receipt.entry.body["records"] == 2000
        assert store.stored()[:2] == (1, 2000)


def test_health_answers_while_a_large_body_is_stalled(store: Harness, agent: Agent) -> None:
    headers = _signed_headers(agent.device, "device", "/v1/uploads")
    with _open(store.url, "POST", "/v1/uploads", headers, HOSTILE_BYTES, b"{" + b" " * 65536):
        assert httpx.get(store.url + "/v1/health", timeout=LIVENESS).json() == {"status": "ok"}


# item 10: the audit log's entries and the API docs are not public ------------------------------------------


def test_log_entries_need_an_enrolled_device_or_a_steward(store: Harness, agent: Agent) -> None:
    with store.client(agent) as client:
        client.upload(store.shippable(agent)[1])
        size = client.tree_head().size
        assert len(client.entries(0, size)) == size  # a device may read them
    with store.steward_client(store.stewards.signers[0]) as steward:
        assert [e.kind for e in steward.entries(0, size)][:2] == ["approval", "approval"]
    anonymous = httpx.get(store.url + "/v1/log/entries", params={"start": 0, "end": size})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "auth_missing"
    with store.client(Agent()) as stranger, pytest.raises(Exception) as info:
        stranger.entries(0, size)
    assert getattr(info.value, "code", None) == "unknown_key"
    # Tree heads and proofs stay public: anyone can check the log only grows.
    assert httpx.get(store.url + "/v1/log/head").status_code == 200
    assert httpx.get(store.url + "/v1/log/inclusion", params={"index": 0, "size": size}).status_code == 200


def test_api_docs_are_off_unless_enabled(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path / "off") as off:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(off.url + path).status_code == 404, path
    with running_store(backend_kind, tmp_path / "on", api_docs=True) as on:
        assert httpx.get(on.url + "/openapi.json").json()["info"]["title"] == "Consentry store"
        assert httpx.get(on.url + "/docs").status_code == 200


# item 14: HTTP conformance ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/health", {"GET"}),
        ("GET", "/v1/uploads", {"POST"}),
        ("PUT", "/v1/log/entries", {"GET"}),
        ("PATCH", "/v1/steward/batches/" + "a" * 32 + "/decisions", {"POST"}),
    ],
)
def test_405_names_the_allowed_methods(store: Harness, method: str, path: str, allowed: set[str]) -> None:
    r = httpx.request(method, store.url + path)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed


def test_schema_says_exactly_what_the_server_accepts(backend_kind: str, tmp_path: Path) -> None:
    from store.app import create_app

    with running_store(backend_kind, tmp_path) as store:
        schema = create_app(store.backend, store.keys, store.settings).openapi()
    parts = schema["components"]["schemas"]
    assert parts["SealedBatch"]["properties"]["v"].get("const") == 1  # not "any integer"
    entries = {p["name"]: p["schema"] for p in schema["paths"]["/v1/log/entries"]["get"]["parameters"]}
    assert entries["limit"]["maximum"] == 1000 and entries["limit"]["minimum"] == 1
    enroll = parts["EnrollRequest"]["properties"]
    assert enroll["public_key"]["pattern"] and enroll["proof"]["pattern"]


def test_log_entries_page_past_the_end_is_empty_not_an_error(store: Harness, agent: Agent) -> None:
    with store.client(agent) as client:
        client.upload(store.shippable(agent)[1])
        size = client.tree_head().size
        assert client.entries(size, size + 5) == []
        assert len(client.entries(0, size + 1500)) == size  # the client pages through the store's limit


def test_enrollment_key_that_is_not_32_bytes_is_rejected_by_the_schema(store: Harness) -> None:
    # 43 base64 characters plus "=" that decode to 32 bytes is the only accepted shape.
    r = httpx.post(
        store.url + "/v1/enroll",
        json={"token": "t" * 20, "device_kid": "k" * 20, "public_key": "A" * 44, "proof": b64encode(bytes(64))},
    )
    assert r.status_code == 422


# Senders that know an enrolled device's key id (no secret: stewards see it) but not its private key, and
# senders that never finish a request: each is refused or cut off, and holds nothing for long -----------------


def _until_closed(sock: socket.socket, limit: float = 4 * LIVENESS) -> bytes:
    """Everything the store sends before it closes the connection; socket.timeout if it never does."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _stall(store: Harness, agent: Agent, declared: int, sent: bytes) -> socket.socket:
    """An upload under ``agent``'s key id whose signature cannot verify, stalled after ``sent``."""
    headers = _signed_headers(agent.device, "device", "/v1/uploads")
    return _open(store.url, "POST", "/v1/uploads", headers, declared, sent)


@pytest.mark.parametrize("head", [b"", b"POST /v1/uploads HTTP/1.1\r\nHost: store\r\n"], ids=["nothing", "half"])
def test_a_request_head_that_never_completes_gets_408_and_is_closed(store: Harness, head: bytes) -> None:
    parts = urlsplit(store.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=LIVENESS) as sock:
        sock.sendall(head)
        answer = _until_closed(sock)  # default header timeout (10 s)
    assert answer.startswith(b"HTTP/1.1 408") and b"head_too_slow" in answer
    assert httpx.get(store.url + "/v1/health", timeout=LIVENESS).status_code == 200


def test_connections_over_the_cap_get_503_while_open_ones_keep_working(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, max_connections=20, header_timeout_seconds=120) as store:
        parts = urlsplit(store.url)
        with httpx.Client(base_url=store.url, timeout=LIVENESS) as kept:
            assert kept.get("/v1/health").status_code == 200  # one connection, kept alive
            idle = [socket.create_connection((parts.hostname, parts.port), timeout=LIVENESS) for _ in range(19)]
            try:
                with socket.create_connection((parts.hostname, parts.port), timeout=LIVENESS) as extra:
                    extra.sendall(f"GET /v1/health HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
                    status, headers, body = _response(extra)
                assert status == 503 and b"too_many_connections" in body and int(headers["retry-after"]) >= 1
                assert kept.get("/v1/health").status_code == 200  # an established connection is served
            finally:
                for sock in idle:
                    sock.close()
        # The cap counts open connections: once they close, new ones are served again.
        deadline = time.monotonic() + LIVENESS
        while httpx.get(store.url + "/v1/health", timeout=LIVENESS).status_code != 200:
            assert time.monotonic() < deadline, "closed connections still count against the cap"
            time.sleep(0.05)


def _tricklers_holding_both_slots(store: Harness, tricklers: list[Agent], other: Agent) -> list[socket.socket]:
    """Start the trickling uploads until both hold a large-body slot, which a third large body being
    refused as busy shows. (Each sender is authenticated before it takes a slot, so another sender's
    lookup can finish first and take the slot a trickler was about to take: then start again.)"""
    for _ in range(5):
        socks = [_stall(store, a, 8 * 2**20, b"{") for a in tricklers]
        time.sleep(0.5)
        with _stall(store, other, 2 * 2**20, b"{" + b" " * (2 * 2**20 - 1)) as sock:
            status, _, body = _response(sock)
        if status == 503 and b"busy" in body:
            return socks
        for sock in socks:
            sock.close()
    raise AssertionError(f"the two trickling uploads never held both large-body slots (last answer {status})")


def test_a_trickling_upload_is_cut_off_and_frees_its_large_body_slot(backend_kind: str, tmp_path: Path) -> None:
    """Two uploads under known key ids take both large-body slots and send a byte now and then (defaults:
    1 MiB large, 2 slots, 64 KiB/s after 5 s): they get 408, and someone else's large body is read again."""
    with running_store(backend_kind, tmp_path) as store:
        tricklers, other = [Agent(), Agent()], Agent()
        for a in (*tricklers, other):
            store.enroll(a)
        socks = _tricklers_holding_both_slots(store, tricklers, other)
        try:
            statuses: list[int] = []
            deadline = time.monotonic() + 4 * LIVENESS
            while 401 not in statuses:  # the other body was read (and refused for its signature), not 503 busy
                assert time.monotonic() < deadline, f"the trickling uploads still hold the slots: {statuses}"
                for sock in socks:
                    try:
                        sock.sendall(b" ")
                    except OSError:
                        pass  # cut off already
                with _stall(store, other, 2 * 2**20, b"{" + b" " * (2 * 2**20 - 1)) as sock:
                    statuses.append(_response(sock)[0])
                time.sleep(0.5)
            for sock in socks:
                answer = _until_closed(sock)
                assert answer.startswith(b"HTTP/1.1 408") and b"body_too_slow" in answer
        finally:
            for sock in socks:
                sock.close()


def test_one_key_gets_a_bounded_number_of_requests_in_progress(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, max_requests_per_key=3, body_grace_seconds=120) as store:
        agent, other = Agent(), Agent()
        store.enroll(agent)
        store.enroll(other)
        before = store.stored()
        stalled = [_stall(store, agent, 1000, b"{") for _ in range(3)]
        try:
            deadline = time.monotonic() + LIVENESS
            while True:  # once the three are counted, a fourth under the same key is refused at once
                with _stall(store, agent, 1000, b"{") as sock:
                    status, headers, body = _response(sock)
                if status == 503:
                    break
                assert time.monotonic() < deadline, (status, body)
            assert b"key_busy" in body and int(headers["retry-after"]) >= 1
            with _stall(store, other, 10, b"{" + b" " * 9) as sock:  # another key is served meanwhile
                assert _response(sock)[0] == 401
        finally:
            for sock in stalled:
                sock.close()
        with store.client(agent) as client:  # the key is free again once its requests end
            assert client.upload(store.shippable(agent, 12)[1]).entry.kind == "batch-stored"
        assert store.stored()[0] == before[0] + 1


def test_bodies_not_yet_verified_share_one_bounded_budget(backend_kind: str, tmp_path: Path) -> None:
    """Under several known key ids, bodies that stall before their signature is checked hold at most the
    budget; past it, a sender gets 503 busy instead of the store holding more memory."""
    settings = {"max_body_bytes": 256 * 1024, "unverified_body_bytes": 300 * 1024, "body_grace_seconds": 120}
    with running_store(backend_kind, tmp_path, **settings) as store:
        agents = [Agent() for _ in range(3)]
        for a in agents:
            store.enroll(a)
        held = [_stall(store, a, 200 * 1024, b"{" + b" " * (120 * 1024)) for a in agents[:2]]
        try:
            deadline = time.monotonic() + LIVENESS
            while True:
                with _stall(store, agents[2], 200 * 1024, b"{" + b" " * (200 * 1024 - 1)) as sock:
                    status, headers, body = _response(sock)
                if status == 503:
                    break
                assert time.monotonic() < deadline, (status, body)
            assert b"busy" in body and int(headers["retry-after"]) >= 1
        finally:
            for sock in held:
                sock.close()
        with store.client(agents[2]) as client:  # their bytes are released with them
            assert client.upload(store.shippable(agents[2], 12)[1]).entry.kind == "batch-stored"


def test_a_burst_of_new_connections_waits_unread_and_every_one_is_answered(
    backend_kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """200 new connections at once, each with a complete request, against a store that starts reading one
    new connection per event-loop turn: the rest wait unread in the kernel (deferred, not dropped), an
    established connection keeps being served meanwhile, every one of the 200 gets its answer, and the
    store logs that a burst had to wait."""
    caplog.set_level(logging.WARNING, logger="store.connections")
    with running_store(backend_kind, tmp_path, new_connections_per_turn=1) as store:
        parts = urlsplit(store.url)
        request = f"GET /v1/health HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
        with httpx.Client(base_url=store.url, timeout=LIVENESS) as kept:
            assert kept.get("/v1/health").status_code == 200  # an established, kept-alive connection
            burst: list[socket.socket] = []
            try:
                for _ in range(200):
                    sock = socket.create_connection((parts.hostname, parts.port), timeout=LIVENESS)
                    sock.sendall(request)
                    burst.append(sock)
                assert kept.get("/v1/health").json() == {"status": "ok"}
                answers = [_response(sock)[0] for sock in burst]
            finally:
                for sock in burst:
                    sock.close()
        assert answers == [200] * len(burst)
    waited = [r.getMessage() for r in caplog.records if r.name == "store.connections"]
    assert waited and "waited" in waited[0], waited
