"""An independent reader of Consentry's files and uploads, written from docs/formats.md and docs/store.md alone.

It uses only the standard library, pycryptodome (HPKE, AES-256-GCM) and PyNaCl (libsodium's Ed25519),
never Consentry's own code: ``test_independent_reader.py`` checks that no module of the project is
imported here. If the docs leave anything out, this module cannot be written, or its tests fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
from Crypto.Cipher import AES
from Crypto.Protocol import HPKE
from Crypto.Protocol.DH import import_x25519_private_key

KEK_CHECK_PLAINTEXT = b"consentry-kek-check-v1"


class Unreadable(Exception):
    """Something did not authenticate or is not laid out as documented."""


def canonical(value: Any) -> bytes:
    """RFC 8785 for what is signed here (objects, ASCII keys, strings, integers): sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> None:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except Exception as exc:  # BadSignatureError, or a malformed key/signature
        raise Unreadable(f"bad Ed25519 signature over {message[:30]!r}") from exc


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def read_key_file(path: Path, kind: str) -> bytes:
    """``consentry-key-v1 <kind> <base64 of 32 bytes>``."""
    magic, found, encoded = path.read_text(encoding="ascii").split()
    if magic != "consentry-key-v1" or found != kind:
        raise Unreadable(f"not a version-1 {kind} key file")
    key = b64(encoded)
    if len(key) != 32:
        raise Unreadable("a key is 32 bytes")
    return key


def open_blob(key: bytes, blob: bytes, context: dict[str, Any]) -> bytes:
    """``0x01 || nonce(12) || ct || tag(16)``, aad ``"consentry-blob\\0" || canonical({"v": 1, **context})``."""
    if blob[:1] != b"\x01":
        raise Unreadable("not a version-1 blob")
    cipher = AES.new(key, AES.MODE_GCM, nonce=blob[1:13], mac_len=16)
    cipher.update(b"consentry-blob\0" + canonical({"v": 1, **context}))
    try:
        return cipher.decrypt_and_verify(blob[13:-16], blob[-16:])
    except ValueError as exc:
        raise Unreadable("blob does not authenticate") from exc


# -- the vault file and its key folder -------------------------------------------------------------------------


@dataclass
class VaultReading:
    vault_id: str
    device_public_key: bytes
    records: list[dict[str, Any]]  # each: the row's columns, and "window": the decrypted JSON record
    ledger_head: dict[str, Any]
    checkpoints: int


def read_vault(vault_db: Path, key_dir: Path) -> VaultReading:
    kek = read_key_file(key_dir / "kek", "aes256")
    db = sqlite3.connect(f"file:{vault_db}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        vault_id = meta["vault_id"]
        # meta.kek_check is hex text (a TEXT column), unlike the BLOB columns below.
        check = open_blob(kek, bytes.fromhex(meta["kek_check"]), {"purpose": "kek-check", "vault_id": vault_id})
        if check != KEK_CHECK_PLAINTEXT:
            raise Unreadable("kek_check does not hold the documented plaintext")
        (device_blob,) = db.execute("SELECT blob FROM secrets WHERE name = 'device-key'").fetchone()
        seed = open_blob(kek, device_blob, {"purpose": "secret", "name": "device-key"})
        device_public = bytes(nacl.signing.SigningKey(seed).verify_key)

        data_keys: dict[str, bytes] = {}
        records = []
        rows = db.execute(
            "SELECT record_id, category, start, end, key_id, receipt_id, blob FROM records ORDER BY record_id"
        )
        for record_id, category, start, end, key, receipt_id, blob in rows.fetchall():
            if key not in data_keys:
                (wrapped,) = db.execute("SELECT wrapped FROM data_keys WHERE key_id = ?", (key,)).fetchone()
                data_keys[key] = open_blob(kek, wrapped, {"purpose": "dek", "key_id": key})
            context = {"table": "records", "record_id": record_id, "key_id": key, "category": category}
            window = json.loads(open_blob(data_keys[key], blob, context))
            records.append(
                {
                    "record_id": record_id,
                    "category": category,
                    "start": start,
                    "end": end,
                    "receipt_id": receipt_id,
                    "window": window,
                }  # fmt: skip
            )

        chain = verify_ledger_chain(db)
        checkpoints = db.execute("SELECT seq, head_hash, at, device_kid, signature FROM checkpoints").fetchall()
        for seq, head_hash, at, device_kid, signature in checkpoints:
            body = {"v": 1, "seq": seq, "head_hash": head_hash, "device_kid": device_kid, "at": at}
            verify_ed25519(device_public, b"consentry-checkpoint-v1\0" + canonical(body), bytes.fromhex(signature))
            if chain.get(seq) != head_hash:
                raise Unreadable("a checkpoint names a head the ledger does not have")
    finally:
        db.close()

    head = json.loads((key_dir / "ledger-head").read_bytes())
    unsigned = {k: v for k, v in head.items() if k != "signature"}
    verify_ed25519(device_public, b"consentry-ledger-head-v1\0" + canonical(unsigned), bytes.fromhex(head["signature"]))
    if head["vault_id"] != vault_id or head["device_kid"] != key_id(device_public):
        raise Unreadable("the ledger head is another vault's")
    if chain.get(head["seq"]) != head["head_hash"] or max(chain) != head["seq"]:
        raise Unreadable("the ledger does not end at its signed head")
    return VaultReading(vault_id, device_public, records, head, len(checkpoints))


def verify_ledger_chain(db: sqlite3.Connection) -> dict[int, str]:
    """Recompute the consent ledger's hash chain (version 2 entries); the hash at each seq."""
    chain: dict[int, str] = {}
    prev = "00" * 32
    for seq, text, prev_hash, digest in db.execute("SELECT seq, body, prev_hash, hash FROM ledger ORDER BY seq"):
        body = json.loads(text)
        if body["v"] != 2 or body["seq"] != seq or canonical(body).decode("utf-8") != text:
            raise Unreadable(f"ledger entry {seq} is not a canonical version-2 body")
        entry = hashlib.sha256(b"consentry-ledger-entry-v2\0" + canonical(body)).digest()
        link = hashlib.sha256(b"consentry-ledger-v2\0" + bytes.fromhex(prev) + entry).hexdigest()
        if (prev_hash, digest) != (prev, link):
            raise Unreadable(f"ledger entry {seq} does not chain")
        chain[seq] = prev = link
    return chain


def batch_row(vault_db: Path, batch_id: str) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{vault_db}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT upload, manifest, receipt FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    finally:
        db.close()
    return dict(zip(("upload", "manifest", "receipt"), row, strict=True))


# -- a sealed upload -----------------------------------------------------------------------------------------------


@dataclass
class OpenedUpload:
    header: dict[str, Any]
    payload: bytes
    records: list[dict[str, Any]]


def open_upload(upload: str, store_private_key: bytes, device_public_key: bytes) -> OpenedUpload:
    """Verify the device's signature on a ``POST /v1/uploads`` body, then decrypt it (HPKE, empty aad)."""
    batch = json.loads(upload)
    if batch["v"] != 1:
        raise Unreadable("not a version-1 upload")
    header = batch["header"]
    header_bytes = canonical(header)
    sealed, signature = b64(batch["sealed"]), b64(batch["signature"])
    if sealed[0] != 1:
        raise Unreadable("not version-1 sealed bytes")
    if header["device_kid"] != key_id(device_public_key):
        raise Unreadable("signed by another device")
    verify_ed25519(
        device_public_key, b"consentry-batch-v1\0" + header_bytes + hashlib.sha256(sealed).digest(), signature
    )
    receiver = HPKE.new(
        receiver_key=import_x25519_private_key(store_private_key),
        aead_id=HPKE.AEAD.AES256_GCM,
        enc=sealed[1:33],
        info=header_bytes,
    )
    try:
        payload = receiver.unseal(sealed[33:])  # aad: none
    except ValueError as exc:
        raise Unreadable("sealed bytes do not open") from exc
    body = json.loads(payload)
    if body["v"] != 1 or body["batch_id"] != header["batch_id"]:
        raise Unreadable("payload is not this batch's")
    return OpenedUpload(header, payload, body["records"])


MANIFEST_FIELDS = {
    "v", "batch_id", "subject", "seq", "prev_batch_hash", "period_start", "period_end", "schema_version",
    "record_counts", "consent_receipts", "privacy_checks", "payload_sha256", "payload_bytes", "created",
}  # fmt: skip


def check_manifest(manifest: dict[str, Any], header: dict[str, Any]) -> str:
    """A batch manifest of version 2 (no device_kid) or 1 (device_kid, equal to the header's) that the
    header describes; returns its manifest_sha256 (SHA-256 of its canonical JSON, every field it has)."""
    expected = {2: MANIFEST_FIELDS, 1: MANIFEST_FIELDS | {"device_kid"}}.get(manifest.get("v"))
    if expected is None:
        raise Unreadable("not a version-1 or version-2 manifest")
    if set(manifest) != expected:
        raise Unreadable(f"manifest fields are not those of version {manifest['v']}")
    for name in ("batch_id", "subject", "seq", "prev_batch_hash") + (("device_kid",) if manifest["v"] == 1 else ()):
        if header[name] != manifest[name]:
            raise Unreadable(f"the header's {name} is not the manifest's")
    digest = hashlib.sha256(canonical(manifest)).hexdigest()
    if header["manifest_sha256"] != digest:
        raise Unreadable("the header names another manifest")
    return digest


# -- the store's receipt (RFC 9162 tree) ---------------------------------------------------------------------------


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_tree_head(head: dict[str, Any], log_public_key: bytes) -> None:
    signed = {"v": 1, "size": head["size"], "root_hash": head["root_hash"], "timestamp": head["timestamp"]}
    verify_ed25519(log_public_key, b"consentry-treehead-v1\0" + canonical(signed), b64(head["signature"]))


def verify_log_receipt(receipt: dict[str, Any], log_public_key: bytes) -> None:
    head = receipt["tree_head"]
    verify_tree_head(head, log_public_key)
    leaf = hashlib.sha256(b"\x00" + canonical(receipt["entry"])).digest()
    path = [bytes.fromhex(p) for p in receipt["inclusion"]]
    if not verify_inclusion(leaf, receipt["leaf_index"], head["size"], path, bytes.fromhex(head["root_hash"])):
        raise Unreadable("the receipt's entry is not in the signed tree")


# -- the other signed formats ----------------------------------------------------------------------------------


def subject_digest(subject: str) -> str:
    return hashlib.sha256(b"consentry-subject-v1\0" + subject.encode("utf-8")).hexdigest()


def verify_checkpoint(checkpoint: dict[str, Any], device_public_key: bytes) -> None:
    """A ``LedgerCheckpoint`` as sent to ``POST /v1/checkpoints``: the signature is hex."""
    body = {k: checkpoint[k] for k in ("seq", "head_hash", "device_kid", "at")}
    message = b"consentry-checkpoint-v1\0" + canonical({"v": 1, **body})
    verify_ed25519(device_public_key, message, bytes.fromhex(checkpoint["signature"]))


def verify_approval(approval: dict[str, Any]) -> None:
    """Under the key it names (whether that key is a steward's is the verifier's configuration)."""
    message = b"consentry-approve-v1\0" + "".join(
        approval[k] for k in ("batch_id", "manifest_sha256", "decision")
    ).encode("ascii")
    verify_ed25519(b64(approval["steward_key"]), message, b64(approval["signature"]))


def verify_erasure_request(request: dict[str, Any], device_public_key: bytes) -> None:
    body = {k: request[k] for k in ("request_id", "subject", "device_kid", "created")}
    message = b"consentry-erase-v1\0" + canonical({"v": 1, **body})
    verify_ed25519(device_public_key, message, b64(request["signature"]))


def verify_erasure_receipt(receipt: dict[str, Any], request: dict[str, Any], log_public_key: bytes) -> None:
    digest = subject_digest(request["subject"])
    if (receipt["request_id"], receipt["subject_digest"], receipt["scope"]) != (
        request["request_id"],
        digest,
        "subject",
    ):
        raise Unreadable("the receipt is for another request")
    body = {k: receipt[k] for k in ("request_id", "subject_digest", "scope", "leaf_index")}
    message = b"consentry-erasure-receipt-v1\0" + canonical({"v": 1, **body})
    verify_ed25519(log_public_key, message, b64(receipt["signature"]))
    entry = receipt["log"]["entry"]
    if entry["kind"] != "erasure" or receipt["log"]["leaf_index"] != receipt["leaf_index"]:
        raise Unreadable("the receipt's log entry is not an erasure")
    if (entry["body"]["request_id"], entry["body"]["subject_digest"]) != (request["request_id"], digest):
        raise Unreadable("the receipt's log entry is another request's")
    verify_log_receipt(receipt["log"], log_public_key)


def verify_request(public_key: bytes, method: str, target: str, body: bytes, headers: dict[str, str]) -> None:
    """The four ``Consentry-*`` headers (lower-case names) of one HTTP request."""
    signed = {
        "v": 1,
        "method": method.upper(),
        "target": target,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "key": headers["consentry-key"],
        "timestamp": int(headers["consentry-timestamp"]),
        "nonce": headers["consentry-nonce"],
    }
    message = b"consentry-request-v1\0" + canonical(signed)
    verify_ed25519(public_key, message, b64(headers["consentry-signature"]))


def verify_enrollment(token: str, device_kid: str, public_key: str, proof: str) -> None:
    """A ``POST /v1/enroll`` body's proof; ``public_key`` as sent (base64)."""
    if device_kid != key_id(b64(public_key)):
        raise Unreadable("device_kid is not the key's id")
    token_sha256 = hashlib.sha256(b"consentry-enroll-token-v1\0" + token.encode("utf-8")).hexdigest()
    body = {"v": 1, "token_sha256": token_sha256, "device_kid": device_kid, "public_key": public_key}
    verify_ed25519(b64(public_key), b"consentry-enroll-v1\0" + canonical(body), b64(proof))
