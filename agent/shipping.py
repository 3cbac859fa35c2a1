"""Talking to the on-prem store on the employee's behalf: enroll, submit, poll, ship, erase.

``sync`` is one pass, safe to repeat at any time (the agent runs it periodically; ``consentry batches
sync`` runs it once). Nothing leaves before the employee's hold passed and the stewards approved; a
shipped batch is shredded locally only after the store returned a receipt whose Merkle inclusion
proof verified. While the store is unreachable everything stays encrypted in the vault and the error
is kept for ``consentry status``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vault import batches
from vault.errors import VaultError
from vault.policy import MachinePolicy
from vault.release import (
    LedgerCheckpointRef,
    b64decode,
    build_header,
    seal_batch,
    sign_checkpoint,
    sign_erasure,
)
from vault.timeutil import iso
from vault.vault import Vault

if TYPE_CHECKING:
    from vault.store.client import StoreClient

META_URL = "store_url"
META_STORE_KEY = "store_public_key"
META_LOG_KEY = "store_log_key"


class ShippingError(VaultError):
    """The store cannot be used: not configured, not enrolled, or its keys do not match the policy."""


@dataclass
class SyncReport:
    submitted: list[str] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    shipped: list[str] = field(default_factory=list)
    erasures_sent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _set_meta(vault: Vault, values: dict[str, str]) -> None:
    with vault.transaction():
        vault.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))
    vault.meta.update(values)


def enrolled_store(vault: Vault, policy: MachinePolicy) -> tuple[str, bytes, bytes]:
    """(url, store public key, log key) this device enrolled with, checked against the policy."""
    if policy.store is None:
        raise ShippingError("the machine policy names no store, so nothing leaves this computer")
    url = vault.meta.get(META_URL)
    if url is None:
        raise ShippingError(
            "this computer is not enrolled with the store yet; IT runs: consentry enroll --token-file F"
        )
    if url.rstrip("/") != policy.store.url.rstrip("/"):
        raise ShippingError(f"enrolled with {url}, but the policy now names {policy.store.url}; enroll again")
    store_key = vault.meta[META_STORE_KEY]
    if store_key != policy.store.public_key:
        raise ShippingError("the store's key differs from the key in the machine policy; nothing is sent")
    return url, b64decode(store_key), b64decode(vault.meta[META_LOG_KEY])


def client_for(vault: Vault, policy: MachinePolicy, **kwargs: Any) -> StoreClient:
    from vault.store.client import JsonlReceiptSink, StoreClient

    url, _, log_key = enrolled_store(vault, policy)
    return StoreClient(
        url,
        signer=vault.device_key,
        log_public_key=log_key,
        receipts=JsonlReceiptSink(vault.layout.home / "receipts.jsonl"),
        **kwargs,
    )


def enroll(vault: Vault, policy: MachinePolicy, token: str, now: datetime, **client_kwargs: Any) -> str:
    """Register this device's key with the store named by the policy, using IT's one-time token."""
    from vault.store.client import StoreClient

    if policy.store is None:
        raise ShippingError("the machine policy names no store to enroll with")
    with StoreClient(policy.store.url, signer=vault.device_key, **client_kwargs) as client:
        response = client.enroll(token)
    if response.store.store_public_key != policy.store.public_key:
        raise ShippingError("the store answered with a key that is not the one in the machine policy; not enrolled")
    if policy.store.log_key is not None and response.store.log_public_key != policy.store.log_key:
        raise ShippingError("the store's log key is not the one in the machine policy; not enrolled")
    _set_meta(
        vault,
        {
            META_URL: policy.store.url,
            META_STORE_KEY: response.store.store_public_key,
            META_LOG_KEY: response.store.log_public_key,
            "enrolled_at": iso(now),
        },
    )
    return response.device_kid


def queue_erasure(vault: Vault, scope: str, now: datetime) -> str:
    """Record a signed request that the store erase this subject; sent by the next sync."""
    request_id = uuid.uuid4().hex
    request = sign_erasure(vault.device_key, request_id, vault.subject, created=int(now.timestamp()))
    with vault.transaction():
        vault.db.execute(
            "INSERT INTO erasure_requests (request_id, created, scope, request) VALUES (?, ?, ?, ?)",
            (request_id, iso(now), scope, request.model_dump_json()),
        )
        vault.ledger.append("erasure-requested", {"request_id": request_id, "scope": scope}, now)
    return request_id


def erasure_requests(vault: Vault) -> list[dict[str, Any]]:
    rows = vault.db.execute(
        "SELECT request_id, created, scope, receipt, last_error FROM erasure_requests ORDER BY created"
    ).fetchall()
    return [
        {
            "request_id": r[0],
            "created": r[1],
            "scope": r[2],
            "receipt": json.loads(r[3]) if r[3] else None,
            "last_error": r[4],
        }
        for r in rows
    ]


def _store_error(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"


def sync(vault: Vault, policy: MachinePolicy, now: datetime, client: StoreClient | None = None) -> SyncReport:
    """One pass: submit due manifests, poll decisions, ship approved batches, send erasure requests."""
    report = SyncReport()
    own_client = client is None
    if client is None:
        client = client_for(vault, policy)
    try:
        _send_erasures(vault, client, report)
        for info in batches.due_for_review(vault, now):
            try:
                manifest = batches.build_submission(vault, info.batch_id, now)
                client.submit_manifest(manifest)
                batches.mark_submitted(vault, manifest, now)
                report.submitted.append(info.batch_id)
            except Exception as exc:  # a refused or unreachable store: keep the batch, show why
                _failed(vault, info.batch_id, exc, now, report)
        for info in batches.list_batches(vault):
            if info.state != "submitted":
                continue
            try:
                status = client.batch_status(info.batch_id)
            except Exception as exc:
                _failed(vault, info.batch_id, exc, now, report)
                continue
            if status.state == "approved":
                batches.mark_decision(vault, info.batch_id, "approved", f"{status.approvals} approval(s)", now)
                report.approved.append(info.batch_id)
            elif status.state == "rejected":
                reasons = "; ".join(status.rejection_reasons) or "rejected by the data stewards"
                batches.mark_decision(vault, info.batch_id, "rejected", reasons, now)
                report.rejected.append(info.batch_id)
        for info in batches.list_batches(vault):
            if info.state == "approved":
                try:
                    _ship(vault, policy, client, info.batch_id, now)
                    report.shipped.append(info.batch_id)
                except Exception as exc:
                    _failed(vault, info.batch_id, exc, now, report)
    finally:
        if own_client:
            client.close()
    return report


def _failed(vault: Vault, batch_id: str, exc: Exception, now: datetime, report: SyncReport) -> None:
    message = _store_error(exc)
    batches.record_error(vault, batch_id, message, now)
    report.errors.append(f"{batch_id}: {message}")


def _ship(vault: Vault, policy: MachinePolicy, client: StoreClient, batch_id: str, now: datetime) -> None:
    _, store_key, _ = enrolled_store(vault, policy)
    manifest = batches.manifest_of(vault, batch_id)
    with vault.transaction():  # the device keeps a signed checkpoint of what it shows the store
        local = vault.ledger.checkpoint(vault.device_key, now)
    seq, head = local.seq, local.head_hash
    checkpoint = sign_checkpoint(vault.device_key, seq, head, created=int(now.timestamp()))
    client.submit_checkpoint(checkpoint)
    header = build_header(manifest, LedgerCheckpointRef(seq=seq, head_hash=head), created=int(now.timestamp()))
    sealed = seal_batch(header, batches.payload(vault, batch_id), store_key, vault.device_key)
    receipt = client.upload(sealed)  # verified: signature on the tree head and inclusion proof
    batches.mark_shipped(vault, batch_id, receipt.model_dump(mode="json"), now)


def _send_erasures(vault: Vault, client: StoreClient, report: SyncReport) -> None:
    from vault.release import ErasureRequest

    rows = vault.db.execute("SELECT request_id, request FROM erasure_requests WHERE receipt IS NULL").fetchall()
    for request_id, text in rows:
        try:
            receipt = client.request_erasure(ErasureRequest.model_validate_json(text))
        except Exception as exc:
            message = _store_error(exc)
            with vault.transaction():
                vault.db.execute(
                    "UPDATE erasure_requests SET last_error = ? WHERE request_id = ?", (message, request_id)
                )
            report.errors.append(f"erasure {request_id}: {message}")
            continue
        with vault.transaction():
            vault.db.execute(
                "UPDATE erasure_requests SET receipt = ?, last_error = NULL WHERE request_id = ?",
                (json.dumps(receipt.model_dump(mode="json"), sort_keys=True), request_id),
            )
        report.erasures_sent.append(request_id)


def request_store_erasure(vault: Vault, policy: MachinePolicy, scope: str, now: datetime) -> str | None:
    """If this device ever enrolled, queue a signed erasure request for the subject and try once to send it.

    Returns a line for the employee, or None when no store was ever involved. A request that could
    not be sent stays queued and goes out with the next sync.
    """
    if META_URL not in vault.meta:
        return None
    from vault.store.client import RetryPolicy

    request_id = queue_erasure(vault, scope, now)
    report = SyncReport()
    try:
        with client_for(vault, policy, retry=RetryPolicy(attempts=1), timeout=5.0) as client:
            _send_erasures(vault, client, report)
    except ShippingError as exc:
        return f"Erasure request {request_id} is queued for the store ({exc})."
    if request_id in report.erasures_sent:
        return f"The store erased what it held under your pseudonym (receipt for request {request_id} kept)."
    return f"Erasure request {request_id} is queued; it is sent when the store is reachable."
