"""The store under hostile input: it authenticates before it reads a body, bounds bodies per route, and caps
how many large bodies it holds at once; the audit log and the API docs are not public; HTTP conformance."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from protocol import b64encode
from protocol.request_signing import sign_request
from tests import store_kit
from tests.store_kit import Agent, Harness, SigningKey, running_store

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
