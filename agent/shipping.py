"""Talking to the on-prem store on the employee's behalf: enroll, submit, poll, ship, erase.

``sync`` is one pass, safe to repeat at any time (the agent runs it periodically; ``consentry batches
sync`` runs it once). Nothing leaves before the employee's hold passed and the stewards approved; a
shipped batch is shredded locally only after the store returned a receipt whose Merkle inclusion
proof verified. While the store is unreachable everything stays encrypted in the vault and the error
is kept for ``consentry status``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from protocol.checkpoint import MAX_LINKS, LedgerCheckpoint, sign_checkpoint, with_proof
from protocol.errors import ConsentryError, InvalidRecord
from protocol.fields import b64decode
from vault import batches, outbox
from vault.ledger import Checkpoint
from vault.policy import MachinePolicy
from vault.vault import Vault

if TYPE_CHECKING:
    from kit.store_client import StoreClient


class ShippingError(ConsentryError):
    """The store cannot be used: not configured, not enrolled, or its keys do not match the policy."""


@dataclass
class SyncReport:
    submitted: list[str] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    shipped: list[str] = field(default_factory=list)
    erasures_sent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def enrolled_store(vault: Vault, policy: MachinePolicy) -> tuple[str, bytes, bytes]:
    """(url, store public key, log key) this device enrolled with, checked against the policy."""
    if policy.store is None:
        raise ShippingError("the machine policy names no store, so nothing leaves this computer")
    enrolled = outbox.enrollment(vault)
    if enrolled is None:
        raise ShippingError(
            "this computer is not enrolled with the store yet; IT runs: consentry enroll --token-file F"
        )
    url = enrolled.url
    if url.rstrip("/") != policy.store.url.rstrip("/"):
        raise ShippingError(f"enrolled with {url}, but the policy now names {policy.store.url}; enroll again")
    if enrolled.store_public_key != policy.store.public_key:
        raise ShippingError("the store's key differs from the key in the machine policy; nothing is sent")
    return url, b64decode(enrolled.store_public_key), b64decode(enrolled.log_public_key)


def client_for(vault: Vault, policy: MachinePolicy, **kwargs: Any) -> StoreClient:
    from kit.store_client import JsonlReceiptSink, StoreClient

    url, _, log_key = enrolled_store(vault, policy)
    return StoreClient(
        url,
        signer=vault.device_key,
        log_public_key=log_key,
        receipts=JsonlReceiptSink(vault.layout.home / "receipts.jsonl"),
        tls_ca=policy.store.tls_ca if policy.store else None,  # the pinned store certificate, if any
        **kwargs,
    )


def enroll(vault: Vault, policy: MachinePolicy, token: str, now: datetime, **client_kwargs: Any) -> str:
    """Register this device's key with the store named by the policy, using IT's one-time token.

    The store's keys are compared with the policy's before the token is spent, so a wrong URL or a
    typo in the policy costs no token; enrolling again after a lost answer is harmless.
    """
    from kit.store_client import StoreClient

    if policy.store is None:
        raise ShippingError("the machine policy names no store to enroll with")
    with StoreClient(policy.store.url, signer=vault.device_key, tls_ca=policy.store.tls_ca, **client_kwargs) as client:
        info = client.info()
        if info.store_public_key != policy.store.public_key:
            raise ShippingError("the store's key is not the one in the machine policy; not enrolled")
        if policy.store.log_key is not None and info.log_public_key != policy.store.log_key:
            raise ShippingError("the store's log key is not the one in the machine policy; not enrolled")
        response = client.enroll(token)
    enrolled = outbox.Enrollment(
        url=policy.store.url,
        store_public_key=response.store.store_public_key,
        log_public_key=response.store.log_public_key,
    )
    outbox.record_enrollment(vault, enrolled, now)
    return response.device_kid


def _store_error(exc: Exception) -> str:
    """What the store (or the network) said, for ``consentry status``: its code once, then its message."""
    code, message = getattr(exc, "code", None), getattr(exc, "message", None)
    if code and message:
        return f"{code}: {message}"
    return f"{type(exc).__name__}: {exc}"


def sync(vault: Vault, policy: MachinePolicy, now: datetime, client: StoreClient | None = None) -> SyncReport:
    """One pass: erasures and withdrawals first, then submit due manifests, poll decisions, ship.

    Every step is safe to repeat: what was sent before is sent again byte for byte.
    """
    report = SyncReport()
    own_client = client is None
    if client is None:
        client = client_for(vault, policy)
    try:
        _send_erasures(vault, client, report)
        _send_withdrawals(vault, client, now, report)
        batches.release_expired_holds(vault, now)
        for info in outbox.list_batches(vault, ("released", "submitting")):
            _step(vault, info.batch_id, now, report, lambda b: _submit(vault, policy, client, b, now, report))
        for info in outbox.list_batches(vault, ("submitted",)):
            _step(vault, info.batch_id, now, report, lambda b: _poll(vault, client, b, now, report))
        for info in outbox.list_batches(vault, ("approved",)):
            _step(vault, info.batch_id, now, report, lambda b: _ship(vault, policy, client, b, now, report))
    finally:
        if own_client:
            client.close()
    return report


def _step(vault: Vault, batch_id: str, now: datetime, report: SyncReport, action: Callable[[str], None]) -> None:
    """Run one batch's step; a refused or unreachable store keeps the batch and says why."""
    try:
        action(batch_id)
    except Exception as exc:
        message = _store_error(exc)
        batches.record_error(vault, batch_id, message, now)
        report.errors.append(f"{batch_id}: {message}")


def _submit(vault: Vault, policy: MachinePolicy, client: StoreClient, batch_id: str, now: datetime,
            report: SyncReport) -> None:  # fmt: skip
    batches.check_terms(vault, batch_id, policy)  # never under wider terms than the records were captured under
    if outbox.get_batch(vault, batch_id).state == "released":
        batches.prepare_submission(vault, batch_id, now)  # numbered and stored before it is sent
    client.submit_manifest(batches.manifest_of(vault, batch_id))  # the store accepts an identical retry
    if batches.mark_submitted(vault, batch_id, now):
        report.submitted.append(batch_id)


def _poll(vault: Vault, client: StoreClient, batch_id: str, now: datetime, report: SyncReport) -> None:
    status = client.batch_status(batch_id)
    if status.state == "approved":
        if batches.mark_decision(vault, batch_id, "approved", f"{status.approvals} approval(s)", now):
            report.approved.append(batch_id)
    elif status.state == "rejected":
        reasons = "; ".join(status.rejection_reasons) or "rejected by the data stewards"
        if batches.mark_decision(vault, batch_id, "rejected", reasons, now):
            report.rejected.append(batch_id)


def _ship(vault: Vault, policy: MachinePolicy, client: StoreClient, batch_id: str, now: datetime,
          report: SyncReport) -> None:  # fmt: skip
    from protocol.store_errors import Conflict

    _, store_key, _ = enrolled_store(vault, policy)
    batches.check_terms(vault, batch_id, policy)  # the policy may have widened since review
    sealed, checkpoint = batches.prepare_upload(vault, batch_id, store_key, now)  # stored: a retry sends the same
    # The store witnesses the very checkpoint the device keeps (same signed bytes), with the proof that
    # it extends the one witnessed before.
    try:
        witness_checkpoint(vault, client, checkpoint, now)
    except Conflict as exc:
        # The store witnessed a later checkpoint since this upload was made (an earlier attempt's answer
        # was lost, and another batch or the ledger witness went on). That attempt may have been stored:
        # the same upload then gets its receipt back below, before the store looks at the checkpoint.
        if exc.code != "checkpoint_regressed":
            raise
    try:
        receipt = client.upload(sealed)  # verified: signature on the tree head and inclusion proof
    except Conflict as exc:
        # Not stored, and its checkpoint is behind the store's: the next pass makes a fresh upload.
        if exc.code == "checkpoint_regressed":
            batches.discard_upload(vault, batch_id)
        raise
    body = receipt.entry.body
    if receipt.entry.kind != "batch-stored" or body.get("batch_id") != batch_id or \
            body.get("header_sha256") != sealed.header.digest():  # fmt: skip
        raise ShippingError("the store's receipt is not for this batch; the local copy is kept")
    if batches.mark_shipped(vault, batch_id, receipt.model_dump(mode="json"), now):
        report.shipped.append(batch_id)


def witness_checkpoint(vault: Vault, client: StoreClient, checkpoint: Checkpoint, now: datetime) -> None:
    """Send a checkpoint with the links from the one the store last acknowledged (else the previous one
    kept here, else the genesis), and remember it as acknowledged.

    The store refuses a higher checkpoint that does not extend what it witnessed (docs/store.md). A gap
    longer than MAX_LINKS goes in steps, each an intermediate checkpoint signed here.
    """
    from protocol.store_errors import Conflict

    target = LedgerCheckpoint.model_validate(checkpoint._asdict())
    acknowledged = outbox.witnessed_seq(vault)
    earlier = [cp.seq for cp in vault.ledger.checkpoints() if cp.seq < target.seq]
    candidates = [acknowledged] if acknowledged is not None else []
    candidates += [max(earlier)] if earlier else []
    starts = [s for s in dict.fromkeys([*candidates, 0]) if s <= target.seq]
    for start in starts:
        try:
            _submit_extending(vault, client, target, start, now)
            break
        except Conflict as exc:
            if exc.code != "checkpoint_unproven" or start == starts[-1]:
                raise  # a refused extension is the store catching a rewritten ledger: never retried around
    outbox.record_witnessed(vault, target.seq)


def _submit_extending(vault: Vault, client: StoreClient, target: LedgerCheckpoint, start: int, now: datetime) -> None:
    while target.seq - start > MAX_LINKS:
        step = start + MAX_LINKS
        step_hash = vault.ledger.hash_at(step)
        if step_hash is None:
            raise ShippingError(f"the consent ledger has no entry {step}; run: consentry ledger verify")
        middle = sign_checkpoint(vault.device_key, step, step_hash, created=int(now.timestamp()))
        client.submit_checkpoint(with_proof(middle, start, vault.ledger.extension_links(start, step)))
        start = step
    client.submit_checkpoint(with_proof(target, start, vault.ledger.extension_links(start, target.seq)))


def _send_withdrawals(vault: Vault, client: StoreClient, now: datetime, report: SyncReport) -> None:
    """Tell the store about submitted batches erased here, so later batches can follow them."""
    from protocol.store_errors import NotFound

    for info in outbox.list_batches(vault, ("withdrawing",)):
        try:
            client.withdraw(info.batch_id)
        except NotFound:
            pass  # the store never received it: nothing to close
        except Exception as exc:
            batches.record_error(vault, info.batch_id, _store_error(exc), now)
            report.errors.append(f"{info.batch_id}: {_store_error(exc)}")
            continue
        batches.mark_withdrawn(vault, info.batch_id, now)


def _send_erasures(vault: Vault, client: StoreClient, report: SyncReport) -> None:
    from protocol.erasure import ErasureRequest

    for queued in outbox.erasure_requests(vault, unsent_only=True):
        request_id = queued.request_id
        try:
            # Verified against this very request (id, subject, scope, log index, inclusion proof): a
            # replayed or forged answer raises, so the request stays queued and the next sync resends it.
            receipt = client.request_erasure(ErasureRequest.model_validate_json(queued.request))
        except Exception as exc:
            message = _store_error(exc)
            if isinstance(exc, InvalidRecord):
                message = f"the store's receipt was refused ({exc}); the request is sent again"
            outbox.record_erasure_error(vault, request_id, message)
            report.errors.append(f"erasure {request_id}: {message}")
            continue
        outbox.record_erasure_receipt(vault, request_id, receipt.model_dump(mode="json"))
        report.erasures_sent.append(request_id)


def request_store_erasure(vault: Vault, policy: MachinePolicy, scope: str, now: datetime) -> str | None:
    """If this device ever enrolled, queue a signed erasure request for the subject and try once to send it.

    Returns a line for the employee, or None when no store was ever involved. A request that could
    not be sent stays queued and goes out with the next sync.
    """
    if outbox.enrollment(vault) is None:
        return None
    from kit.store_client import RetryPolicy
    from vault import subjects

    # One request per pseudonym this vault ever used (one per policy period); new data gets a new one.
    used = subjects.all_subjects(vault)
    request_ids = [outbox.queue_erasure(vault, scope, now, subject) for subject in used]
    with vault.transaction():
        subjects.retire(vault, used)
    request_id = ", ".join(request_ids)
    report = SyncReport()
    try:
        with client_for(vault, policy, retry=RetryPolicy(attempts=1), timeout=5.0) as client:
            _send_erasures(vault, client, report)
    except ShippingError as exc:
        return f"Erasure request {request_id} is queued for the store ({exc})."
    if set(request_ids) <= set(report.erasures_sent):
        from agent.erasure_words import released_data_sentence

        receipts = [q.receipt for q in outbox.erasure_requests(vault) if q.request_id in request_ids and q.receipt]
        return (
            f"The store erased what it held under your {len(used)} pseudonym(s) "
            f"(receipts for request {request_id} kept). {released_data_sentence(receipts)}"
        )
    return f"Erasure request {request_id} is queued; it is sent when the store is reachable."
