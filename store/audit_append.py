"""Append many audit-log entries in one transaction under one signed tree head (a review set's approvals).

``store.audit.append_entry`` signs a tree head after every leaf, which a receipt for that leaf needs.
The approvals of one review set need no receipts, so 1,000 of them cost 1,000 leaves, the nodes they
complete and one signature. The tree is the same RFC 9162 tree: heads of the intermediate sizes are
simply not stored, and consistency and inclusion proofs exist for every size as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol import merkle
from protocol.auditlog import LogEntry, TreeHead, sign_tree_head
from protocol.signing import Signer
from store.backend import StoreTx


def append_entries(tx: StoreTx, log_key: Signer, entries: Sequence[LogEntry], *, now: int) -> TreeHead | None:
    """Append ``entries`` in order, store and return the signed head after the last (None if none)."""
    if not entries:
        return None
    tx.lock_log()
    first = tx.log_size()
    known: dict[tuple[int, int], bytes] = {}

    def get(level: int, i: int) -> bytes:
        if (level, i) not in known:
            known.update(tx.get_nodes([(level, i)]))  # a left sibling older than this append
        return known[(level, i)]

    new: list[tuple[int, int, bytes]] = []
    for offset, entry in enumerate(entries):
        index = first + offset
        data = entry.leaf_data()
        tx.insert_leaf(index, entry.kind, entry.time, data)
        known[(0, index)] = merkle.leaf_hash(data)
        new.append((0, index, known[(0, index)]))
        for level, i in merkle.completed_nodes(index):
            known[(level, i)] = merkle.node_hash(get(level - 1, 2 * i), get(level - 1, 2 * i + 1))
            new.append((level, i, known[(level, i)]))
    tx.insert_nodes(new)
    size = first + len(entries)
    wanted = merkle.nodes_for(lambda g: merkle.root_hash(size, g)) - set(known)
    known.update(tx.get_nodes(wanted))
    head = sign_tree_head(log_key, size, merkle.root_hash(size, get), timestamp=now)
    tx.insert_head(size, head.model_dump_json())
    return head
