"""The spec is complete: a reader written from the docs alone opens what the product really makes.

The product (a real vault file, the agent's shipping code, a real store on 127.0.0.1) makes a vault,
a sealed upload the store accepts and the store's receipt; ``independent_reader`` (standard library,
pycryptodome and libsodium only) verifies and decrypts each of them.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import nacl.signing
import pytest

from agent import shipping
from devkit.factories import apps_window, grant, keyboard_window, mouse_window
from devkit.store_kit import Harness, Stewards, running_store
from protocol import b64encode, sign_approval
from protocol.categories import Category
from protocol.windows import window_to_json_dict
from store.auth import issue_token
from tests.protocol import independent_reader as reader
from vault import batches
from vault.paths import Layout
from vault.policy import MachinePolicy, StewardConfig, StoreConfig
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60 - 3600
PROJECT_PACKAGES = {"agent", "vault", "protocol", "store", "kit", "admin", "tests"}


def test_the_reader_uses_none_of_the_projects_code() -> None:
    tree = ast.parse(Path(reader.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names) | {"nacl", "Crypto"}, imported
    assert not imported & PROJECT_PACKAGES


@pytest.fixture
def store(tmp_path: Path) -> Harness:
    with running_store("dir", tmp_path, Stewards.make(1, 1)) as harness:
        yield harness


def _policy(store: Harness, url: str | None = None) -> MachinePolicy:
    keys = {f"steward{i}": b64encode(s.public_bytes) for i, s in enumerate(store.stewards.signers)}
    return MachinePolicy(
        hold_hours=1,
        allow_short_hold_for_testing=True,  # below the 24 h floor: tests only
        store=StoreConfig(
            url=url or store.url,
            public_key=b64encode(store.keys.seal.public_bytes),
            log_key=b64encode(store.keys.log.public_bytes),
        ),
        stewards=StewardConfig(keys=keys, approvals_required=1),
    )


def test_an_independent_reader_opens_the_vault_the_upload_and_the_receipt(store: Harness, layout: Layout) -> None:
    policy = _policy(store)
    vault = Vault.open(layout)
    try:
        receipts = {
            c: grant(vault, c, NOW - timedelta(hours=3), policy)
            for c in (Category.KEYBOARD, Category.MOUSE, Category.APPS)
        }
        written = [
            keyboard_window(T, receipts[Category.KEYBOARD]),
            mouse_window(T, receipts[Category.MOUSE]),
            apps_window(T, receipts[Category.APPS]),
        ]
        vault.write_windows(written)
        shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)

        # The vault file alone (with its key folder): every record decrypts to what was written.
        reading = reader.read_vault(layout.vault_db, layout.key_dir)
        assert reading.device_public_key == vault.device_key.public_bytes
        assert sorted(json.dumps(r["window"], sort_keys=True) for r in reading.records) == sorted(
            json.dumps(window_to_json_dict(w), sort_keys=True) for w in written
        )
        assert {r["category"] for r in reading.records} == {"keyboard", "mouse", "apps"}
        assert reading.checkpoints >= 0 and reading.ledger_head["vault_id"] == reading.vault_id

        # Seal, submit, approve at the real store; the upload is made and kept exactly as shipping makes it.
        info = batches.seal_pending(vault, policy, NOW)
        assert info is not None
        batches.release(vault, info.batch_id, NOW)
        assert shipping.sync(vault, policy, NOW).submitted == [info.batch_id]
        steward = store.stewards.signers[0]
        with store.steward_client(steward) as client:
            digest = client.review(info.batch_id).status.manifest_sha256
            client.decide(sign_approval(steward, info.batch_id, digest, "approve", created=int(NOW.timestamp())))
        assert batches.mark_decision(vault, info.batch_id, "approved", "1 approval(s)", NOW)  # what sync's poll does
        batches.prepare_upload(vault, info.batch_id, store.keys.seal.public_bytes, NOW)  # what sync's ship does first

        row = reader.batch_row(layout.vault_db, info.batch_id)
        opened = reader.open_upload(row["upload"], store.keys.seal.private_bytes(), reading.device_public_key)
        manifest = json.loads(row["manifest"])
        assert opened.header["batch_id"] == info.batch_id == manifest["batch_id"]
        assert manifest["v"] == 2 and "device_kid" not in manifest  # the header names the device
        assert reader.check_manifest(manifest, opened.header) == digest
        assert opened.header["manifest_sha256"] == hashlib.sha256(reader.canonical(manifest)).hexdigest()
        assert manifest["payload_sha256"] == hashlib.sha256(opened.payload).hexdigest()
        assert sorted((r["category"], r["start"]) for r in opened.records) == sorted(
            (r["category"], r["start"]) for r in reading.records
        )
        with pytest.raises(reader.Unreadable):  # another device's key does not verify it
            reader.open_upload(row["upload"], store.keys.seal.private_bytes(), store.keys.log.public_bytes)

        # The store accepts those very bytes, and its receipt verifies from the docs too.
        report = shipping.sync(vault, policy, NOW)
        assert report.shipped == [info.batch_id], report.errors
        receipt = json.loads(reader.batch_row(layout.vault_db, info.batch_id)["receipt"])
        reader.verify_log_receipt(receipt, store.keys.log.public_bytes)
        assert receipt["entry"]["body"]["batch_id"] == info.batch_id
        assert receipt["entry"]["body"]["header_sha256"] == hashlib.sha256(reader.canonical(opened.header)).hexdigest()
        with pytest.raises(reader.Unreadable):
            reader.verify_log_receipt(receipt, store.keys.seal.public_bytes)  # not the log key

        # After shipping: the records are gone, the signed head and checkpoints still verify.
        after = reader.read_vault(layout.vault_db, layout.key_dir)
        assert after.records == [] and after.checkpoints >= 1
        assert after.ledger_head["seq"] > reading.ledger_head["seq"]
    finally:
        vault.close()


def test_the_reader_refuses_a_record_moved_to_another_row(layout: Layout) -> None:
    vault = Vault.open(layout)
    try:
        receipt = grant(vault, Category.MOUSE, NOW - timedelta(hours=3))
        vault.write_windows([mouse_window(T, receipt), mouse_window(T + 60, receipt)])
        assert len(reader.read_vault(layout.vault_db, layout.key_dir).records) == 2
        with vault.transaction() as db:  # swap the two ciphertexts: each is bound to its record_id
            (a, blob_a), (b, blob_b) = db.execute("SELECT record_id, blob FROM records ORDER BY record_id").fetchall()
            db.execute("UPDATE records SET blob = ? WHERE record_id = ?", (blob_b, a))
            db.execute("UPDATE records SET blob = ? WHERE record_id = ?", (blob_a, b))
    finally:
        vault.close()
    with pytest.raises(reader.Unreadable):
        reader.read_vault(layout.vault_db, layout.key_dir)


VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _vector(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _flip(signature: str) -> str:
    """The same signature with its first byte changed, in the encoding it came in."""
    if len(signature) == 128:
        return f"{int(signature[:2], 16) ^ 1:02x}" + signature[2:]
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_the_reader_checks_both_manifest_versions_against_their_headers() -> None:
    """Version 1 (device_kid, equal to the header's) and version 2 (none): each hash as documented."""
    v1, v2 = _vector("release-v1.json"), _vector("manifest-v2.json")
    assert reader.check_manifest(v1["manifest"], v1["header"]) == v1["manifest_sha256"]
    assert reader.check_manifest(v2["manifest"], v2["header"]) == v2["manifest_sha256"]
    assert v2["header"]["device_kid"] == v1["manifest"]["device_kid"] and "device_kid" not in v2["manifest"]
    refused = (
        ({**v2["manifest"], "device_kid": v2["header"]["device_kid"]}, v2["header"]),  # v2 naming a device
        ({k: v for k, v in v1["manifest"].items() if k != "device_kid"}, v1["header"]),  # v1 without one
        (v1["manifest"], {**v1["header"], "device_kid": "0123456789abcdef"}),  # another device's header
        ({**v2["manifest"], "v": 3}, v2["header"]),
        (v2["manifest"], v1["header"]),  # the header names the version-1 manifest's hash
    )
    for manifest, header in refused:
        with pytest.raises(reader.Unreadable):
            reader.check_manifest(manifest, header)


def test_the_reader_verifies_every_frozen_signed_format_the_product_made() -> None:
    release, receipts = _vector("release-v1.json"), _vector("erasure-receipt-v1.json")
    requests, enroll = _vector("request-signing-v1.json"), _vector("enroll-v1.json")
    device = bytes.fromhex(release["device_public_key"])
    log = bytes(nacl.signing.SigningKey(bytes.fromhex(release["log_private_key"])).verify_key)
    checks = {
        "checkpoint": (reader.verify_checkpoint, release["checkpoint"], (device,)),
        "approval": (reader.verify_approval, release["approval"], ()),
        "erasure request": (reader.verify_erasure_request, release["erasure"], (device,)),
        "tree head": (reader.verify_tree_head, release["tree_head"], (log,)),
        "erasure receipt": (
            reader.verify_erasure_receipt,
            receipts["erasure_receipt"],
            (receipts["erasure_request"], log),
        ),
    }
    for what, (verify, item, args) in checks.items():
        verify(item, *args)
        with pytest.raises(reader.Unreadable):
            verify({**item, "signature": _flip(item["signature"])}, *args)
            pytest.fail(f"a changed {what} signature verified")
    request_key = bytes.fromhex(requests["public_key"])
    for case in requests["cases"]:
        body = bytes.fromhex(case["body"])
        reader.verify_request(request_key, case["method"], case["target"], body, case["headers"])
        with pytest.raises(reader.Unreadable):
            reader.verify_request(request_key, case["method"], case["target"] + "?", body, case["headers"])
    reader.verify_enrollment(enroll["token"], enroll["device_kid"], enroll["public_key"], enroll["proof"])
    with pytest.raises(reader.Unreadable):
        reader.verify_enrollment(enroll["token"] + "x", enroll["device_kid"], enroll["public_key"], enroll["proof"])
    assert (
        reader.subject_digest(receipts["erasure_request"]["subject"]) == receipts["erasure_receipt"]["subject_digest"]
    )


# -- what actually crosses the wire ------------------------------------------------------------------------------


class Recorder(ThreadingHTTPServer):
    """A real HTTP hop on 127.0.0.1 that forwards everything to the store and keeps a copy of each exchange."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30.0)
        self.exchanges: list[dict] = []  # method, target, headers (lower-case), body, status, answer
        super().__init__(("127.0.0.1", 0), _RecordingHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def sent(self, method: str, path: str) -> list[dict]:
        return [x for x in self.exchanges if x["method"] == method and x["target"].split("?")[0] == path]


class _RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        answer = self.server.upstream.request(self.command, self.path, content=body, headers=headers)
        self.server.exchanges.append(
            {
                "method": self.command,
                "target": self.path,
                "headers": headers,
                "body": body,
                "status": answer.status_code,
                "answer": answer.content,
            }  # fmt: skip
        )
        self.send_response(answer.status_code)
        self.send_header("content-type", answer.headers.get("content-type", "application/json"))
        self.send_header("content-length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = _forward
    do_POST = _forward


_HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


@pytest.fixture
def recorder(store: Harness) -> Recorder:
    hop = Recorder(store.url)
    thread = threading.Thread(target=hop.serve_forever, daemon=True)
    thread.start()
    yield hop
    hop.shutdown()
    hop.server_close()
    hop.upstream.close()
    thread.join()


def test_the_reader_verifies_every_request_and_answer_the_agent_exchanged_with_the_store(
    store: Harness, recorder: Recorder, layout: Layout
) -> None:
    policy = _policy(store, url=recorder.url)
    vault = Vault.open(layout)
    try:
        receipts = {c: grant(vault, c, NOW - timedelta(hours=3), policy) for c in (Category.KEYBOARD, Category.APPS)}
        vault.write_windows([keyboard_window(T, receipts[Category.KEYBOARD]), apps_window(T, receipts[Category.APPS])])
        shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)
        info = batches.seal_pending(vault, policy, NOW)
        assert info is not None
        batches.release(vault, info.batch_id, NOW)
        shipping.sync(vault, policy, NOW)
        steward = store.stewards.signers[0]
        with store.steward_client(steward) as client:
            digest = client.review(info.batch_id).status.manifest_sha256
            client.decide(sign_approval(steward, info.batch_id, digest, "approve", created=int(NOW.timestamp())))
        assert shipping.sync(vault, policy, NOW).shipped == [info.batch_id]
        assert "erased" in (shipping.request_store_erasure(vault, policy, "all", NOW) or "")
    finally:
        vault.close()
    device = reader.read_vault(layout.vault_db, layout.key_dir).device_public_key
    log_key = store.keys.log.public_bytes

    (enrollment,) = recorder.sent("POST", "/v1/enroll")
    body = json.loads(enrollment["body"])
    reader.verify_enrollment(body["token"], body["device_kid"], body["public_key"], body["proof"])
    assert reader.b64(body["public_key"]) == device

    signed = [x for x in recorder.exchanges if "consentry-signature" in x["headers"]]
    assert {x["target"].split("?")[0] for x in signed} >= {
        "/v1/manifests",
        "/v1/checkpoints",
        "/v1/uploads",
        "/v1/erasures",
    }
    for exchange in signed:
        assert exchange["status"] < 300, exchange
        reader.verify_request(device, exchange["method"], exchange["target"], exchange["body"], exchange["headers"])

    for exchange in recorder.sent("POST", "/v1/checkpoints"):
        reader.verify_checkpoint(json.loads(exchange["body"]), device)
    (upload,) = recorder.sent("POST", "/v1/uploads")
    opened = reader.open_upload(upload["body"].decode(), store.keys.seal.private_bytes(), device)
    assert opened.header["batch_id"] == info.batch_id and len(opened.records) == 2
    reader.verify_log_receipt(json.loads(upload["answer"]), log_key)
    (erasure,) = recorder.sent("POST", "/v1/erasures")
    request = json.loads(erasure["body"])
    reader.verify_erasure_request(request, device)
    receipt = json.loads(erasure["answer"])
    reader.verify_erasure_receipt(receipt, request, log_key)
    assert receipt["subject_digest"] == reader.subject_digest(opened.header["subject"])
