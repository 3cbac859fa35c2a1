"""The public open/verify surface (``protocol.__all__``): one function per format, named in docs/formats.md.

Each is given what the product really makes (a vault file, a signed request, a frozen vector) and must
accept it, and refuse it once one byte or field is changed.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import protocol
from devkit.factories import grant, keyboard_window
from devkit.store_kit import T0, Agent
from protocol import (
    EnrollRequest,
    SigningKey,
    StoreSealKey,
    ledger_head_message,
    open_sealed,
    open_vault_record,
    sign_approval,
    sign_request,
    verify_approval,
    verify_enrollment,
    verify_ledger_head,
    verify_request,
)
from protocol.canonical import sha256_hex
from protocol.categories import Category
from protocol.errors import InvalidRecord, UnsupportedVersion
from vault.ledger_head import read_head
from vault.paths import Layout
from vault.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _documented_api() -> set[str]:
    """The names in the "Public API" section of docs/formats.md (backticked, before a parenthesis)."""
    text = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)\(", section))


def test_every_documented_function_is_public_and_every_open_or_verify_function_is_documented() -> None:
    documented = _documented_api()
    assert documented, "docs/formats.md has no Public API section"
    assert documented <= set(protocol.__all__), documented - set(protocol.__all__)
    for name in documented:
        assert callable(getattr(protocol, name))
    openers = {n for n in protocol.__all__ if n.startswith(("open_", "verify_", "hpke_", "decode_"))}
    assert openers <= documented, openers - documented


@pytest.fixture
def vault(layout: Layout) -> Vault:
    vault = Vault.open(layout, clock=lambda: NOW)
    receipt = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
    vault.write_windows([keyboard_window(int(NOW.timestamp()) - 600, receipt)])
    yield vault
    vault.close()


def test_verify_ledger_head_accepts_the_vaults_head_file_and_nothing_else(vault: Vault) -> None:
    head = json.loads(vault.head_file.read_bytes())
    verify_ledger_head(head, vault.device_key.public_bytes)
    signed = read_head(vault.head_file)
    assert ledger_head_message(head) == signed.signed_bytes()  # type: ignore[union-attr]
    assert set(head) == {"v", "vault_id", "seq", "head_hash", "prev_seq", "prev_hash", "device_kid", "at", "signature"}
    for change in ({"seq": head["seq"] + 1}, {"signature": head["signature"].upper()}, {"prev_seq": 0}):
        with pytest.raises(InvalidRecord):
            verify_ledger_head({**head, **change}, vault.device_key.public_bytes)
    with pytest.raises(InvalidRecord):
        verify_ledger_head(head, SigningKey.generate().public_bytes)
    with pytest.raises(UnsupportedVersion):
        verify_ledger_head({**head, "v": 2}, vault.device_key.public_bytes)
    with pytest.raises(ValueError, match="exactly the keys"):
        verify_ledger_head({**head, "extra": 1}, vault.device_key.public_bytes)


def test_open_vault_record_opens_a_row_of_the_vault_file(vault: Vault) -> None:
    record_id, key_id, category, blob = vault.db.execute(
        "SELECT record_id, key_id, category, blob FROM records"
    ).fetchone()
    (wrapped,) = vault.db.execute("SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()
    kek = vault.kek()
    window = json.loads(open_vault_record(kek, wrapped, blob, record_id=record_id, key_id=key_id, category=category))
    assert window["category"] == "keyboard"
    for wrong in ({"record_id": record_id + 1}, {"category": "mouse"}):
        with pytest.raises(InvalidRecord):
            open_vault_record(
                kek, wrapped, blob, **{"record_id": record_id, "key_id": key_id, "category": category, **wrong}
            )


REQUESTS = json.loads((VECTORS / "request-signing-v1.json").read_text())


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: f"{c['role']}-{c['method']}")
def test_verify_request_accepts_the_frozen_signed_requests(case: dict) -> None:
    public = bytes.fromhex(REQUESTS["public_key"])
    body_sha256 = sha256_hex(bytes.fromhex(case["body"]))
    verify_request(public, case["method"], case["target"], body_sha256, case["headers"])
    verify_request(public, case["method"].lower(), case["target"], body_sha256, case["headers"])  # method: upper-cased
    with pytest.raises(InvalidRecord):
        verify_request(public, case["method"], case["target"] + "x", body_sha256, case["headers"])
    with pytest.raises(InvalidRecord):
        verify_request(public, case["method"], case["target"], sha256_hex(b"other"), case["headers"])
    for header, value in (
        ("consentry-timestamp", "+" + case["headers"]["consentry-timestamp"]),
        ("consentry-signature", "!"),
    ):
        with pytest.raises(InvalidRecord):
            verify_request(public, case["method"], case["target"], body_sha256, {**case["headers"], header: value})


def test_verify_request_round_trips_sign_request() -> None:
    key = SigningKey.generate()
    headers = sign_request(key, "steward", "get", "/v1/steward/queue", b"", now=T0)
    verify_request(key.public_bytes, "GET", "/v1/steward/queue", sha256_hex(b""), headers)
    with pytest.raises(InvalidRecord):
        verify_request(
            key.public_bytes, "GET", "/v1/steward/queue", sha256_hex(b""), {**headers, "consentry-key": "device:x"}
        )


def test_verify_enrollment_accepts_the_frozen_enrollment_and_refuses_another_token() -> None:
    vector = json.loads((VECTORS / "enroll-v1.json").read_text())
    request = EnrollRequest(
        token=vector["token"], device_kid=vector["device_kid"], public_key=vector["public_key"], proof=vector["proof"]
    )
    verify_enrollment(request)
    with pytest.raises(InvalidRecord):
        verify_enrollment(request.model_copy(update={"token": vector["token"] + "x"}))
    with pytest.raises(InvalidRecord):
        verify_enrollment(request.model_copy(update={"device_kid": "0" * 16}))


def test_verify_approval_refuses_a_changed_decision() -> None:
    steward = SigningKey.generate()
    approval = sign_approval(steward, "ab" * 16, "cd" * 32, "approve", created=T0)
    verify_approval(approval)
    with pytest.raises(InvalidRecord):
        verify_approval(approval.model_copy(update={"decision": "reject"}))


def test_open_sealed_checks_the_version_byte_first() -> None:
    agent, store = Agent(), StoreSealKey.generate()
    manifest, payload = agent.next_batch(3)
    batch = agent.seal(manifest, payload, store.public_bytes)
    sealed = protocol.b64decode(batch.sealed)
    assert open_sealed(sealed, batch.header, store) == payload
    with pytest.raises(UnsupportedVersion):
        open_sealed(b"\x02" + sealed[1:], batch.header, store)
    with pytest.raises(InvalidRecord):
        open_sealed(b"", batch.header, store)


def test_the_worked_examples_in_the_docs_are_what_the_code_computes() -> None:
    text = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    aad = protocol.record_context("records", 7, "keyboard/2026-03-02/0", "keyboard")
    assert aad.replace(b"\0", b'\\0" ').decode() in text  # written as "consentry-blob\0" {...}
    subject = "subj-0123456789abcdef0123456789abcdef"
    assert f"subject `{subject}` has digest\n  `{protocol.subject_digest(subject)}`" in text
