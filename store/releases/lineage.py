"""The lineage register: which training or evaluation runs read which release, and what an erasure owes them.

A consumer records each run (``consentry dataset use RELEASE --run NAME``), signed with its key::

    b"consentry-release-use-v1\\0" || canonical_json(use without "signature")

When the store erases a subject (``on_erasure``, inside the erasure's own transaction), every run that
read a release holding the subject is marked ``trained on erased data: retrain or unlearn``; the counts
go into the erasure's audit-log entry and receipt, and ``consentry dataset runs`` shows the marks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field

from protocol import domains
from protocol.auditlog import LogEntry, LogReceipt
from protocol.canonical import canonical_json
from protocol.fields import BatchId, EpochSeconds, PublicKey32, Signature64, Versioned, b64decode, b64encode
from protocol.signing import Signer, is_valid_signature
from store.audit import append_entry
from store.backend import StoreBackend, StoreTx
from store.keys import StoreKeys
from store.releases import governance_db as db
from store.releases.consumers import ReleasePolicy
from store.releases.governance import BadSignature, NotApproved, UnknownConsumer, UnknownRelease

USE_V1 = domains.RELEASE_USE_V1
ERASED_FLAG = "trained on erased data: retrain or unlearn"


class ReleaseUse(Versioned):
    release_id: BatchId
    run: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$", description="the run's name in your tracker")
    consumer_key: PublicKey32
    created: EpochSeconds
    signature: Signature64


def use_message(release_id: str, run: str, consumer_key: str, created: int) -> bytes:
    fields = {"v": 1, "release_id": release_id, "run": run, "consumer_key": consumer_key, "created": created}
    return USE_V1 + canonical_json(fields)


def sign_use(consumer: Signer, release_id: str, run: str, *, created: int) -> ReleaseUse:
    key = b64encode(consumer.public_bytes)
    signature = consumer.sign(use_message(release_id, run, key, created))
    return ReleaseUse(
        v=1, release_id=release_id, run=run, consumer_key=key, created=created, signature=b64encode(signature)
    )


@dataclass(frozen=True)
class RunView:
    run: str
    release_id: str
    consumer: str
    recorded: int
    flag: str | None
    flagged_at: int | None


def record_use(
    backend: StoreBackend, keys: StoreKeys, policy: ReleasePolicy, use: ReleaseUse, *, now: int
) -> LogReceipt:
    """Register that run ``use.run`` read release ``use.release_id`` (idempotent per release and run)."""
    consumer = policy.consumers.name_of(use.consumer_key)
    if consumer is None:
        raise UnknownConsumer("this key is not a data consumer of this store; nothing was recorded")
    if not is_valid_signature(
        b64decode(use.consumer_key),
        use_message(use.release_id, use.run, use.consumer_key, use.created),
        b64decode(use.signature),
    ):
        raise BadSignature("the use record's signature does not verify; nothing was recorded")
    run_id = hashlib.sha256(f"{use.release_id}\0{use.run}".encode()).hexdigest()[:32]
    with backend.transaction() as tx:
        db.ensure_tables(tx)
        row = db.get_release(tx, use.release_id)
        if row is None:
            raise UnknownRelease(f"no release {use.release_id}. Run: consentry dataset list")
        if row.state != "built":
            raise NotApproved(f"release {use.release_id} is {row.state}, not built: no run can have read it")
        db.insert_run(tx, run_id, use.release_id, use.run, use.consumer_key, use.model_dump_json(), now)
        body = {"release_id": use.release_id, "run": use.run, "consumer": consumer}
        return append_entry(tx, keys.log, LogEntry(v=1, kind="release-use", time=now, body=body))


def list_runs(backend: StoreBackend, policy: ReleasePolicy) -> list[RunView]:
    with backend.transaction() as tx:
        db.ensure_tables(tx)
        rows = db.list_runs(tx)
    return [
        RunView(
            r.run_name,
            r.release_id,
            policy.consumers.name_of(r.consumer_key) or "(removed consumer)",
            r.created,
            r.flag,
            r.flagged_at,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class ErasureLineage:
    releases: tuple[str, ...]  # releases that held the subject (rewritten or removed)
    runs: tuple[str, ...]  # runs marked

    def as_body(self) -> dict[str, int]:
        return {"releases_with_subject": len(self.releases), "runs_notified": len(self.runs)}


def on_erasure(
    tx: StoreTx, subject_digest: str, now: int, *, remove_release: Callable[[str], object] | None = None
) -> ErasureLineage:
    """Inside the erasure's transaction: the releases holding the subject, their runs marked, the links dropped.

    ``remove_release(release_id)`` takes the subject's rows out of that release's data (the release table's
    ``erase_subject``, or removing a Parquet release folder whole).
    """
    db.ensure_tables(tx)
    releases = db.releases_with_subject(tx, subject_digest)
    runs = db.flag_runs(tx, releases, ERASED_FLAG, now) if releases else []
    if remove_release is not None:
        for release_id in releases:
            remove_release(release_id)
    db.forget_subject(tx, subject_digest)
    return ErasureLineage(tuple(releases), tuple(r.run_name for r in runs))
