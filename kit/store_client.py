"""The one HTTP client of the store (agents, the steward's tools, verify-log): signed requests, retries, verified receipts.

    client = StoreClient(url, signer=vault.device_key, log_public_key=<pinned, from enrollment or policy>)
    client.enroll(token)                    # once; pins the store's log key if none was given
    client.submit_manifest(manifest)        # -> BatchStatus (review queue)
    client.batch_status(batch_id)           # -> BatchStatus; poll until state == "approved"
    receipt = client.upload(sealed_batch)   # -> LogReceipt, inclusion proof verified; retried safely
    client.submit_checkpoint(checkpoint)    # -> CheckpointAck
    client.request_erasure(request)         # -> ErasureReceipt, bound to the request and verified

Every POST is idempotent on the store side (a resubmitted manifest, upload, checkpoint or erasure
returns the same answer), so transport errors and 5xx are retried with exponential backoff and full
jitter, bounded in attempts. 4xx answers are raised at once as ``protocol.store_errors`` classes.
"""

from __future__ import annotations

import os
import random
import ssl
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from protocol.approval import Approval
from protocol.auditlog import (
    ConsistencyProof,
    LogEntry,
    LogReceipt,
    TreeHead,
    verify_heads_consistent,
    verify_receipt,
    verify_tree_head,
)
from protocol.batch import SealedBatch
from protocol.checkpoint import LedgerCheckpoint
from protocol.erasure import ErasureReceipt, ErasureRequest, verify_erasure_receipt
from protocol.errors import InvalidRecord
from protocol.fields import b64decode, b64encode
from protocol.manifest import BatchManifest
from protocol.request_signing import sign_request
from protocol.signing import Signer
from protocol.store_api import (
    BatchReview,
    BatchStatus,
    CheckpointAck,
    EnrollRequest,
    EnrollResponse,
    QueueItem,
    StoreInfo,
    enroll_message,
    enroll_token_sha256,
)
from protocol.store_errors import StoreError, UntrustedStore, error_for_status

M = TypeVar("M", bound=BaseModel)
_RETRY_STATUS = {500, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)) seconds."""

    attempts: int = 6
    base_seconds: float = 0.2
    cap_seconds: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * (2**attempt)))


class ReceiptSink(Protocol):
    def keep(self, receipt: LogReceipt) -> None: ...


class JsonlReceiptSink:
    """Appends each verified receipt as one JSON line (fsynced): the agent's own copy of its proofs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def keep(self, receipt: LogReceipt) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, receipt.model_dump_json().encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[LogReceipt]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [LogReceipt.model_validate_json(line) for line in lines if line.strip()]


def _pinned_context(tls_ca: str | Path) -> ssl.SSLContext:
    """Trust only ``tls_ca`` (the policy's [store] tls_ca: a private CA or the store's own certificate)."""
    try:
        return ssl.create_default_context(cafile=str(tls_ca))
    except (OSError, ssl.SSLError):
        raise UntrustedStore(
            "tls_ca_unreadable", "cannot read [store] tls_ca as a PEM certificate; check the file IT deployed"
        ) from None


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a connection failed because the server's certificate did not verify."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


class _SignedAuth(httpx.Auth):
    """Signs every attempt afresh (new nonce and timestamp), so a retry is never a replay."""

    requires_request_body = True

    def __init__(self, signer: Signer, role: str, clock: Callable[[], float]) -> None:
        self._signer = signer
        self._role = role
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            sign_request(self._signer, self._role, request.method, target, request.content, now=int(self._clock()))
        )
        yield request


class StoreClient:
    """One store, one key (a device's or a steward's). Use as a context manager or call ``close``."""

    def __init__(
        self,
        base_url: str,
        *,
        signer: Signer | None = None,
        role: str = "device",
        log_public_key: bytes | None = None,
        receipts: ReceiptSink | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        tls_ca: str | Path | None = None,
    ) -> None:
        if role not in ("device", "steward", "operator"):  # operator: IT's fleet view (store.fleet_api)
            raise ValueError(f"role must be device, steward or operator, not {role!r}")
        verify = True if tls_ca is None else _pinned_context(tls_ca)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, verify=verify)
        self._auth = _SignedAuth(signer, role, clock) if signer is not None else None
        self._signer = signer
        self.log_public_key = log_public_key
        self._receipts = receipts
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.last_tree_head: TreeHead | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # transport -------------------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
        signed: bool = True,
        retry: bool = True,
    ) -> Any:
        content = body.model_dump_json().encode("utf-8") if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else {}
        auth = self._auth if signed else None
        if signed and auth is None:
            raise ValueError("this request needs a signing key (signer=...)")
        attempts = self._retry.attempts if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.request(
                    method,
                    path,
                    content=content,
                    headers=headers,
                    params=params,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.ConnectError as exc:
                if _certificate_refused(exc):
                    # Not retried: a wrong certificate does not fix itself, and nothing was sent.
                    raise UntrustedStore(
                        "tls_untrusted",
                        "the store's TLS certificate is not trusted (not the one [store] tls_ca pins, or "
                        "no tls_ca for a private certificate); nothing was sent",
                    ) from None
                if last:
                    raise
                self._sleep(self._retry.delay(attempt, self._rng))
                continue
            except httpx.TransportError:
                if last:
                    raise
                self._sleep(self._retry.delay(attempt, self._rng))
                continue
            if response.status_code in _RETRY_STATUS and not last:
                self._sleep(self._retry.delay(attempt, self._rng))
                continue
            return self._decode(response)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            raise error_for_status(response.status_code, str(error.get("code")), str(error.get("message")))
        raise error_for_status(response.status_code, f"http_{response.status_code}", response.text[:200])

    def _get(self, model: type[M], path: str, **kwargs: Any) -> M:
        return model.model_validate(self._request("GET", path, **kwargs))

    def _post(self, model: type[M], path: str, body: BaseModel, **kwargs: Any) -> M:
        return model.model_validate(self._request("POST", path, body=body, **kwargs))

    # agent -----------------------------------------------------------------------------------------------
    def info(self) -> StoreInfo:
        return self._get(StoreInfo, "/v1/info", signed=False)

    def enroll(self, token: str) -> EnrollResponse:
        """Register this device's key with a one-time token from IT; pins the store's log key."""
        if self._signer is None:
            raise ValueError("enrollment needs the device key (signer=...)")
        public = b64encode(self._signer.public_bytes)
        proof = self._signer.sign(enroll_message(enroll_token_sha256(token), self._signer.kid, public))
        request = EnrollRequest(token=token, device_kid=self._signer.kid, public_key=public, proof=b64encode(proof))
        # Not retried: the token is single-use, so a blind retry would fail after a lost response.
        response = self._post(EnrollResponse, "/v1/enroll", request, signed=False, retry=False)
        if self.log_public_key is None:
            self.log_public_key = b64decode(response.store.log_public_key)
        return response

    def submit_manifest(self, manifest: BatchManifest) -> BatchStatus:
        return self._post(BatchStatus, "/v1/manifests", manifest)

    def batch_status(self, batch_id: str) -> BatchStatus:
        return self._get(BatchStatus, f"/v1/batches/{batch_id}")

    def withdraw(self, batch_id: str) -> BatchStatus:
        """Close a submitted batch this device erased locally (it will never be uploaded)."""
        return BatchStatus.model_validate(self._request("POST", f"/v1/batches/{batch_id}/withdrawal"))

    def upload(self, batch: SealedBatch) -> LogReceipt:
        """Upload a sealed, approved batch; returns the store's receipt after verifying its proof."""
        receipt = self._post(LogReceipt, "/v1/uploads", batch)
        self._accept(receipt)
        return receipt

    def submit_checkpoint(self, checkpoint: LedgerCheckpoint) -> CheckpointAck:
        return self._post(CheckpointAck, "/v1/checkpoints", checkpoint)

    def request_erasure(self, request: ErasureRequest) -> ErasureReceipt:
        """Send a signed erasure request; returns the store's receipt once it is proven to be for it.

        ``InvalidRecord`` when the answer is not a receipt the pinned log key bound to this very request
        (request id, subject, scope, log index) with a verified inclusion proof: e.g. a replayed receipt
        of an earlier batch or erasure. The request is then not done and must be sent again.
        """
        data = self._request("POST", "/v1/erasures", body=request)
        try:
            receipt = ErasureReceipt.model_validate(data)
        except ValueError:
            raise InvalidRecord() from None  # not an erasure receipt: the request is kept and retried
        if self.log_public_key is None:
            raise ValueError("no pinned store log key to verify receipts with (log_public_key=...)")
        verify_erasure_receipt(receipt, request, self.log_public_key)
        self._accept(receipt.log)
        return receipt

    def _accept(self, receipt: LogReceipt) -> None:
        """Check a log receipt (signed head, inclusion), that the log only grew since the last one, then keep it."""
        if self.log_public_key is None:
            raise ValueError("no pinned store log key to verify receipts with (log_public_key=...)")
        verify_receipt(receipt, self.log_public_key)
        head = receipt.tree_head
        if self.last_tree_head is not None and head.size > self.last_tree_head.size:
            self.check_consistency(self.last_tree_head, head)
        if self.last_tree_head is None or head.size > self.last_tree_head.size:
            self.last_tree_head = head
        if self._receipts is not None:
            self._receipts.keep(receipt)

    # steward ---------------------------------------------------------------------------------------------
    def queue(self) -> list[QueueItem]:
        return TypeAdapter(list[QueueItem]).validate_python(self._request("GET", "/v1/steward/queue"))

    def review(self, batch_id: str) -> BatchReview:
        return self._get(BatchReview, f"/v1/steward/batches/{batch_id}")

    def decide(self, approval: Approval) -> BatchStatus:
        path = f"/v1/steward/batches/{approval.batch_id}/decisions"
        try:
            return self._post(BatchStatus, path, approval)
        except StoreError as exc:
            if exc.code != "already_decided":
                raise
            # A lost response to our own earlier attempt looks like this; report the state if it is ours.
            review = self.review(approval.batch_id)
            if any(d.signature == approval.signature for d in review.decisions):
                return review.status
            raise

    # steward: review sets (protocol.review_set_api) ----------------------------------------------------------
    def review_set_groups(self) -> list[Any]:  # -> list[GroupSummary]
        from protocol.review_set_api import GroupSummary

        return TypeAdapter(list[GroupSummary]).validate_python(self._request("GET", "/v1/steward/review-sets/groups"))

    def create_review_set(self, key: Any) -> Any:  # GroupKey -> ReviewSetView
        from protocol.review_set_api import CreateSet, ReviewSetView

        return self._post(ReviewSetView, "/v1/steward/review-sets", CreateSet(key=key), retry=False)

    def review_set(self, set_id: str) -> Any:  # -> ReviewSetView
        from protocol.review_set_api import ReviewSetView

        return self._get(ReviewSetView, f"/v1/steward/review-sets/{set_id}")

    def approve_review_set(self, approval: Any) -> Any:  # SetApproval -> SetOutcome
        from protocol.review_set_api import SetOutcome

        return self._post(SetOutcome, f"/v1/steward/review-sets/{approval.set_id}/approvals", approval, retry=False)

    def reject_review_set(self, rejection: Any) -> Any:  # SetRejection -> SetRejectionOutcome
        from protocol.review_set_api import SetRejectionOutcome

        path = f"/v1/steward/review-sets/{rejection.set_id}/rejections"
        return self._post(SetRejectionOutcome, path, rejection, retry=False)

    # audit log -------------------------------------------------------------------------------------------
    def tree_head(self) -> TreeHead:
        head = self._get(TreeHead, "/v1/log/head", signed=False)
        if self.log_public_key is not None:
            verify_tree_head(head, self.log_public_key)
        return head

    def consistency(self, first: int, second: int) -> ConsistencyProof:
        return self._get(
            ConsistencyProof, "/v1/log/consistency", params={"first": first, "second": second}, signed=False
        )

    def entries(self, start: int, end: int) -> list[LogEntry]:
        """Log entries ``start`` .. ``end - 1`` that exist and this key may read (signed: a steward reads every
        entry, a device only those about its own batches and subjects).

        The store answers at most 1000 positions per request, so this pages by position: a device's page
        may hold fewer entries than positions, or none.
        """
        found: list[LogEntry] = []
        while start < end:
            limit = min(end - start, 1000)
            params = {"start": start, "limit": limit}
            page = TypeAdapter(list[LogEntry]).validate_python(self._request("GET", "/v1/log/entries", params=params))
            found.extend(page)
            start += limit
        return found

    def check_consistency(self, older: TreeHead, newer: TreeHead) -> None:
        """``InvalidRecord`` unless ``newer`` extends ``older`` (both signed by the pinned log key)."""
        if self.log_public_key is None:
            raise ValueError("no pinned store log key (log_public_key=...)")
        if older.size == 0:
            verify_tree_head(newer, self.log_public_key)
            return
        if older.size == newer.size:
            if older.root_hash != newer.root_hash:
                raise InvalidRecord()  # two tree heads of one size disagree: the log was rewritten
            return
        proof = self.consistency(older.size, newer.size)
        verify_heads_consistent(older, newer, proof, self.log_public_key)

    # fleet (protocol.fleet, store.fleet_api) ---------------------------------------------------------------
    def enroll_with_secret(self, secret: str) -> EnrollResponse:
        """Register this device's key with IT's fleet enrollment secret; pins the store's log key."""
        from protocol.fleet import SecretEnrollRequest, secret_sha256

        if self._signer is None:
            raise ValueError("enrollment needs the device key (signer=...)")
        public = b64encode(self._signer.public_bytes)
        proof = self._signer.sign(enroll_message(secret_sha256(secret), self._signer.kid, public))
        request = SecretEnrollRequest(
            secret=secret, device_kid=self._signer.kid, public_key=public, proof=b64encode(proof)
        )
        # Safe to retry: enrolling the same key again returns the same device.
        response = self._post(EnrollResponse, "/v1/fleet/enroll", request, signed=False)
        if self.log_public_key is None:
            self.log_public_key = b64decode(response.store.log_public_key)
        return response

    def heartbeat(self, heartbeat: BaseModel) -> Any:
        """Send a padded heartbeat (agent.heartbeat.build_heartbeat); returns the store's HeartbeatAck."""
        from protocol.fleet import HeartbeatAck

        return self._post(HeartbeatAck, "/v1/fleet/heartbeats", heartbeat)

    def fleet(self, **filters: Any) -> Any:
        """IT's fleet report (operator key); ``filters``: label, version, stale, drift, errors, retired."""
        from protocol.fleet import FleetReport

        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items() if v is not None}
        return self._get(FleetReport, "/v1/fleet/devices", params=params)
