"""The store's audit log: append entries, sign tree heads and make proofs inside a backend transaction;
and ``verify_log``, the outside check of a served log that stewards and auditors run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protocol import merkle
from protocol.auditlog import (
    ConsistencyProof,
    InclusionProof,
    LogEntry,
    LogReceipt,
    TreeHead,
    sign_tree_head,
    verify_tree_head,
)
from protocol.errors import InvalidRecord
from protocol.signing import Signer
from protocol.store_errors import NotFound
from store.backend import StoreTx

# ``batch-stored`` and ``withdrawal`` bodies carry ``"format": 2`` and name the batch's subject digest; the
# first format (no ``format`` field) named the device key id and its sequence number. Stewards read every
# entry, and a device key id is what IT's fleet view lists per computer. Old leaves stay as they were
# hashed: the log is append-only, and ``verify_log`` rehashes whatever bytes each leaf holds.
DEVICE_FREE_LEAF_FORMAT = 2


def append_entry(tx: StoreTx, log_key: Signer, entry: LogEntry) -> LogReceipt:
    """Append ``entry`` as the next leaf, store the new signed tree head, and return the receipt.

    Runs inside the caller's transaction, so the entry is durable exactly when what it records is.
    """
    tx.lock_log()
    index, nodes = tx.log_frontier()  # every node appending needs is older than this leaf is in the frontier
    size = index + 1
    data = entry.leaf_data()
    completed = merkle.completed_nodes(index)
    new = {(0, index), *completed}  # hashed here
    wanted = {(level - 1, 2 * i) for level, i in completed}  # the left siblings the new nodes hash with
    wanted |= merkle.nodes_for(lambda g: (merkle.root_hash(size, g), merkle.inclusion_path(index, size, g))) - new
    if not wanted <= nodes.keys():  # never, by the frontier's definition; read rather than trust that
        nodes.update(tx.get_nodes(wanted - nodes.keys()))
    tx.insert_leaf(index, entry.kind, entry.time, data)
    known = {(0, index): merkle.leaf_hash(data)}
    for level, i in completed:
        known[(level, i)] = merkle.node_hash(nodes[(level - 1, 2 * i)], known[(level - 1, 2 * i + 1)])
    tx.insert_nodes((level, i, digest) for (level, i), digest in sorted(known.items()))
    nodes.update(known)

    def get(level: int, i: int) -> bytes:
        return nodes[(level, i)]

    head = sign_tree_head(log_key, size, merkle.root_hash(size, get), timestamp=entry.time)
    tx.insert_head(size, head.model_dump_json())
    path = tuple(p.hex() for p in merkle.inclusion_path(index, size, get))
    return LogReceipt(v=1, entry=entry, leaf_index=index, tree_head=head, inclusion=path)


def latest_head(tx: StoreTx, log_key: Signer, now: int) -> TreeHead:
    """The newest stored tree head; an empty log gets a freshly signed size-0 head."""
    stored = tx.get_head()
    if stored is not None:
        return TreeHead.model_validate_json(stored)
    return sign_tree_head(log_key, 0, merkle.EMPTY_ROOT, timestamp=now)


def head_at(tx: StoreTx, size: int) -> TreeHead:
    stored = tx.get_head(size)
    if stored is None:
        raise NotFound("unknown_tree_size", f"no tree head of size {size}")
    return TreeHead.model_validate_json(stored)


def _getter(tx: StoreTx, compute_nodes: set[tuple[int, int]]) -> merkle.NodeGetter:
    nodes = tx.get_nodes(compute_nodes)
    return lambda level, i: nodes[(level, i)]


def consistency(tx: StoreTx, first: int, second: int) -> ConsistencyProof:
    size = tx.log_size()
    # Sizes are schema-valid; a proof between trees the log does not have simply does not exist (404).
    if not 0 < first <= second <= size:
        raise NotFound("unknown_tree_size", f"no consistency proof from {first} to {second}; the log has {size}")
    get = _getter(tx, merkle.nodes_for(lambda g: merkle.consistency_path(first, second, g)))
    path = tuple(p.hex() for p in merkle.consistency_path(first, second, get))
    return ConsistencyProof(v=1, first=first, second=second, path=path)


def inclusion(tx: StoreTx, index: int, size: int) -> InclusionProof:
    if not 0 <= index < size <= tx.log_size():
        raise NotFound("unknown_tree_size", f"no leaf {index} in a tree of size {size} of this log")
    get = _getter(tx, merkle.nodes_for(lambda g: merkle.inclusion_path(index, size, g)))
    path = tuple(p.hex() for p in merkle.inclusion_path(index, size, get))
    return InclusionProof(v=1, leaf_index=index, tree_size=size, path=path)


def entries(tx: StoreTx, start: int, end: int) -> list[LogEntry]:
    return [LogEntry.model_validate_json(data) for data in tx.get_leaves(start, end)]


def entries_of_device(tx: StoreTx, start: int, end: int, device_kid: str) -> list[LogEntry]:
    """The entries in ``start .. end - 1`` about ``device_kid``'s own batches and subjects, in log order.

    A device reads only these: other devices' entries name their key ids, sequence numbers and counts,
    which with an export's batch ids would link one device's subjects across rotation periods. Its own
    entries' indices are in its receipts; tree heads and proofs stay public, so it can still check that
    the log only grows and holds its entries. Stewards read every entry (``entries``).
    """
    owners: dict[str, str | None] = {}  # batch id -> device, looked up once per batch

    def batch_owner(batch_id: object) -> str | None:
        key = str(batch_id)
        if key not in owners:
            row = tx.get_batch(key)
            owners[key] = None if row is None else row.device_kid
        return owners[key]

    own = []
    for entry in entries(tx, start, end):
        body = entry.body
        if entry.kind in ("batch-stored", "withdrawal", "approval", "rejection"):
            # The batches table, not the leaf, says whose batch it is: format-2 leaves name no device, and
            # a batch's row (device included) outlives its erasure or withdrawal.
            mine = batch_owner(body.get("batch_id")) == device_kid
        elif entry.kind == "erasure":
            mine = tx.subject_owner(str(body.get("subject_digest"))) == device_kid
        else:  # exports, enrollments: nobody's own
            mine = False
        if mine:
            own.append(entry)
    return own


# verify_log -------------------------------------------------------------------------------------------------
_ENTRY_PAGE = 1000  # entries fetched per call: bounded memory per request on a long log


class ServedLog(Protocol):
    """The calls ``verify_log`` makes on a store (``kit.store_client.StoreClient`` has them)."""

    def tree_head(self) -> TreeHead: ...

    def check_consistency(self, older: TreeHead, newer: TreeHead) -> None: ...

    def entries(self, start: int, end: int) -> list[LogEntry]: ...


@dataclass(frozen=True)
class LogCheck:
    """What ``verify_log`` proved: the signed head, and how far back and how deep it was checked."""

    head: TreeHead
    consistent_with_size: int | None = None  # the earlier head the log was shown to extend
    entries_checked: int | None = None  # with full=True: every entry, rehashed to the head's root


def verify_log(log: ServedLog, log_public_key: bytes, *, since: TreeHead | None = None, full: bool = False) -> LogCheck:
    """Check the store's current tree head: signed by ``log_public_key``, an append-only extension of
    ``since`` (the last head verified), and with ``full`` that every entry hashes to its root.

    Raises the opaque ``InvalidRecord`` when the log does not verify; the store's own errors pass through.
    """
    head = log.tree_head()
    verify_tree_head(head, log_public_key)
    consistent_with = None
    if since is not None:
        if since.size > head.size:
            raise InvalidRecord()  # the log shrank since the last check
        log.check_consistency(since, head)
        consistent_with = since.size
    checked = None
    if full:
        tree = merkle.MemoryTree()
        for start in range(0, head.size, _ENTRY_PAGE):
            for entry in log.entries(start, min(head.size, start + _ENTRY_PAGE)):
                tree.append(entry.leaf_data())
        if tree.size != head.size or tree.root(head.size).hex() != head.root_hash:
            raise InvalidRecord()  # the log's entries do not hash to its signed root
        checked = tree.size
    return LogCheck(head=head, consistent_with_size=consistent_with, entries_checked=checked)
