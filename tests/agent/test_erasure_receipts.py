"""An erasure is done only when the store signed a receipt bound to that very request.

A real HTTP proxy on 127.0.0.1 sits between the agent and a real store (both backends). It forwards
everything, and remembers the store's answers; when told to, it swallows the erasure request and
answers with a receipt it saw earlier. The agent must keep the request queued, say why, and send it
again; through an honest proxy the same request is then done, with a verified receipt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from agent import shipping
from devkit import store_kit
from devkit.factories import apps_window, grant, keyboard_window, mouse_window, receipt_for
from devkit.store_kit import Harness, Stewards, running_store
from protocol import ErasureRequest, b64encode, manifest_digest, sign_approval, subject_digest
from protocol.categories import Category
from protocol.erasure import ErasureReceipt, verify_erasure_receipt
from protocol.errors import InvalidRecord
from store.auth import issue_token
from vault import batches, outbox
from vault.paths import Layout
from vault.policy import MachinePolicy, StewardConfig, StoreConfig
from vault.vault import Vault

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends
NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60 - 3600
_HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


class Proxy(ThreadingHTTPServer):
    """Forwards to ``upstream``; ``replay_for_erasure`` (bytes) is answered instead of any erasure."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30.0)
        self.answers: dict[str, list[bytes]] = {}  # path -> every 2xx body the store sent back
        self.replay_for_erasure: bytes | None = None
        self.swallowed = 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.command == "POST" and self.path == "/v1/erasures" and self.server.replay_for_erasure is not None:
            self.server.swallowed += 1  # the store never hears of it
            self._send(200, self.server.replay_for_erasure)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        answer = self.server.upstream.request(self.command, self.path, content=body, headers=headers)
        if answer.is_success:
            self.server.answers.setdefault(self.path.split("?")[0], []).append(answer.content)
        self._send(answer.status_code, answer.content, answer.headers.get("content-type", "application/json"))

    do_GET = _forward
    do_POST = _forward


@contextmanager
def proxy_to(url: str) -> Iterator[Proxy]:
    proxy = Proxy(url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        proxy.upstream.close()
        thread.join()


def _policy(url: str, store: Harness) -> MachinePolicy:
    keys = {f"steward{i}": b64encode(s.public_bytes) for i, s in enumerate(store.stewards.signers)}
    return MachinePolicy(
        hold_hours=24,
        store=StoreConfig(
            url=url, public_key=b64encode(store.keys.seal.public_bytes), log_key=b64encode(store.keys.log.public_bytes)
        ),
        stewards=StewardConfig(keys=keys, approvals_required=store.stewards.required),
    )


def _ship_one_batch(vault: Vault, policy: MachinePolicy, store: Harness, start: int) -> str:
    receipts = {c: receipt_for(vault.consent(policy), c) for c in (Category.KEYBOARD, Category.MOUSE, Category.APPS)}
    vault.write_windows(
        [
            keyboard_window(start, receipts[Category.KEYBOARD]),
            mouse_window(start, receipts[Category.MOUSE]),
            apps_window(start, receipts[Category.APPS]),
        ]
    )
    info = batches.seal_pending(vault, policy, NOW)
    batches.release(vault, info.batch_id, NOW)
    shipping.sync(vault, policy, NOW)
    steward = store.stewards.signers[0]
    digest = manifest_digest(batches.manifest_of(vault, info.batch_id))
    with store.steward_client(steward) as client:
        client.decide(sign_approval(steward, info.batch_id, digest, "approve", created=int(NOW.timestamp())))
    report = shipping.sync(vault, policy, NOW)
    assert report.shipped == [info.batch_id], report.errors
    return info.batch_id


@pytest.fixture
def setup(backend_kind: str, tmp_path: Path, layout: Layout) -> Iterator[tuple[Vault, MachinePolicy, Harness, Proxy]]:
    with running_store(backend_kind, tmp_path, Stewards.make(1, 1)) as store, proxy_to(store.url) as proxy:
        policy = _policy(proxy.url, store)
        vault = Vault.open(layout)
        for c in (Category.KEYBOARD, Category.MOUSE, Category.APPS):
            grant(vault, c, NOW - timedelta(hours=3), policy)
        shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)
        try:
            yield vault, policy, store, proxy
        finally:
            vault.close()


def _pending(vault: Vault) -> list[outbox.QueuedErasure]:
    return outbox.erasure_requests(vault, unsent_only=True)


def test_a_replayed_batch_receipt_does_not_complete_an_erasure_and_it_is_retried(setup) -> None:
    vault, policy, store, proxy = setup
    _ship_one_batch(vault, policy, store, T)
    assert store.stored()[1] == 3
    (old_receipt,) = proxy.answers["/v1/uploads"]  # a genuine, signed, provable receipt: for a batch
    proxy.replay_for_erasure = old_receipt

    line = shipping.request_store_erasure(vault, policy, "all", NOW)
    assert line is not None and "queued" in line and "erased" not in line
    (pending,) = _pending(vault)
    assert pending.last_error and "receipt" in pending.last_error
    assert store.stored()[1] == 3  # the store never saw it: the records are still there
    report = shipping.sync(vault, policy, NOW)  # still swallowed: still not done, and tried again
    assert report.erasures_sent == [] and len(_pending(vault)) == 1 and proxy.swallowed == 2

    proxy.replay_for_erasure = None  # the honest path
    report = shipping.sync(vault, policy, NOW)
    assert report.erasures_sent == [pending.request_id] and not report.errors, report.errors
    assert _pending(vault) == [] and store.stored()[1] == 0
    (done,) = outbox.erasure_requests(vault)
    receipt = ErasureReceipt.model_validate(done.receipt)
    assert receipt.request_id == done.request_id and receipt.subject_digest == subject_digest(vault.subject)


def test_a_replayed_receipt_of_an_earlier_erasure_does_not_complete_a_new_one(setup) -> None:
    vault, policy, store, proxy = setup
    _ship_one_batch(vault, policy, store, T)
    assert "erased" in (shipping.request_store_erasure(vault, policy, "all", NOW) or "")
    (earlier,) = proxy.answers["/v1/erasures"]  # signed by the store, for this subject, with a valid proof
    _ship_one_batch(vault, policy, store, T + 600)  # collected again after the first erasure
    assert store.stored()[1] == 3
    proxy.replay_for_erasure = earlier

    line = shipping.request_store_erasure(vault, policy, "all", NOW)
    assert line is not None and "queued" in line
    pending = _pending(vault)  # one request per pseudonym the vault used, the first one's included
    assert pending and all("receipt was refused" in (p.last_error or "") for p in pending), pending
    assert store.stored()[1] == 3

    proxy.replay_for_erasure = None
    sent = shipping.sync(vault, policy, NOW).erasures_sent
    assert sorted(sent) == sorted(p.request_id for p in pending)
    assert _pending(vault) == [] and store.stored()[1] == 0


def test_an_erasure_receipt_is_checked_field_by_field(setup) -> None:
    """Each bound field, the store's signature and the inclusion proof: any change is refused."""
    vault, policy, store, proxy = setup
    _ship_one_batch(vault, policy, store, T)
    shipping.request_store_erasure(vault, policy, "all", NOW)
    (done,) = outbox.erasure_requests(vault)
    receipt = ErasureReceipt.model_validate(done.receipt)
    request = ErasureRequest.model_validate_json(done.request)
    log_key = store.keys.log.public_bytes
    verify_erasure_receipt(receipt, request, log_key)  # the genuine one verifies
    other_hex = "ab" * 32
    forged = [
        receipt.model_copy(update={"request_id": "0" * 32}),
        receipt.model_copy(update={"subject_digest": other_hex}),
        receipt.model_copy(update={"leaf_index": receipt.leaf_index + 1}),
        receipt.model_copy(update={"log": receipt.log.model_copy(update={"inclusion": (other_hex,)})}),
        receipt.model_copy(
            update={
                "log": receipt.log.model_copy(
                    update={"tree_head": receipt.log.tree_head.model_copy(update={"root_hash": other_hex})}
                )
            }
        ),  # fmt: skip
    ]
    for bad in forged:
        with pytest.raises(InvalidRecord):
            verify_erasure_receipt(bad, request, log_key)
    with pytest.raises(InvalidRecord):
        verify_erasure_receipt(receipt, request, bytes(32))  # not the pinned log key


def test_erasure_receipt_known_answer_vector() -> None:
    """The frozen v1 vector: the signed bytes, the signature (Ed25519 is deterministic) and the proof."""
    import json

    from protocol import SigningKey
    from protocol.erasure import erasure_receipt_message, sign_erasure_receipt

    vectors = Path(__file__).resolve().parents[1] / "vectors"
    v = json.loads((vectors / "erasure-receipt-v1.json").read_text())
    release = json.loads((vectors / "release-v1.json").read_text())
    log = SigningKey(bytes.fromhex(release["log_private_key"]))
    request = ErasureRequest.model_validate(v["erasure_request"])
    receipt = ErasureReceipt.model_validate(v["erasure_receipt"])
    message = erasure_receipt_message(receipt.request_id, receipt.subject_digest, receipt.scope, receipt.leaf_index)
    assert message.hex() == v["signed_message_hex"]
    verify_erasure_receipt(receipt, request, log.public_bytes)
    assert sign_erasure_receipt(log, request, receipt.log) == receipt
    other = ErasureRequest.model_validate({**v["erasure_request"], "request_id": "0" * 32})
    with pytest.raises(InvalidRecord):
        verify_erasure_receipt(receipt, other, log.public_bytes)


def test_a_request_id_reused_for_another_subject_is_refused_and_a_retry_gets_the_first_receipt(
    backend_kind: str, tmp_path: Path
) -> None:
    from devkit.store_kit import Agent
    from protocol import sign_erasure
    from protocol.store_errors import Conflict

    with running_store(backend_kind, tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        request_id = "ab" * 16
        first = sign_erasure(agent.device, request_id, agent.subject, created=int(NOW.timestamp()))
        with store.client(agent) as client:
            receipt = client.request_erasure(first)
            assert client.request_erasure(first) == receipt  # a retry: the same, still bound, receipt
            reused = sign_erasure(agent.device, request_id, "subj-" + "cd" * 8, created=int(NOW.timestamp()))
            with pytest.raises(Conflict) as refused:
                client.request_erasure(reused)
        assert refused.value.code == "request_id_reused"
