"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proofs and proof verification.

    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")

Trees are read through *perfect subtrees*: ``(level, index)`` names the root of leaves
``[index * 2**level, (index + 1) * 2**level)``. Every subtree the RFC's recursive definitions visit is
aligned, so any tree head or proof is computed from O(log^2 n) perfect-subtree hashes, which a store keeps
in a table (``completed_nodes`` says which ones a new leaf completes). ``nodes_for`` runs a computation
once with placeholders to learn which nodes it needs, so a database can fetch them in one query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

NodeGetter = Callable[[int, int], bytes]
T = TypeVar("T")

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(start: int, size: int, get: NodeGetter) -> bytes:
    """MTH of leaves [start, start + size); ``start`` is aligned as the RFC recursion guarantees."""
    if size <= 0:
        raise ValueError("a subtree has at least one leaf")
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        return get(level, start >> level)
    k = _split(size)
    return node_hash(subtree_hash(start, k, get), subtree_hash(start + k, size - k, get))


def root_hash(size: int, get: NodeGetter) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, get)


def inclusion_path(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")

    def path(m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return path(m, start, k) + [subtree_hash(start + k, n - k, get)]
        return path(m - k, start + k, n - k) + [subtree_hash(start, k, get)]

    return path(index, 0, size)


def consistency_path(first: int, second: int, get: NodeGetter) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 for 0 < m <= n (empty when m == n)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")

    def subproof(m: int, start: int, n: int, whole: bool) -> list[bytes]:
        if m == n:
            return [] if whole else [subtree_hash(start, n, get)]
        k = _split(n)
        if m <= k:
            return subproof(m, start, k, whole) + [subtree_hash(start + k, n - k, get)]
        return subproof(m - k, start + k, n - k, False) + [subtree_hash(start, k, get)]

    return subproof(first, 0, second, True)


def nodes_for(compute: Callable[[NodeGetter], T]) -> set[tuple[int, int]]:
    """The perfect-subtree coordinates ``compute`` reads (it is run once with placeholder hashes)."""
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return bytes(32)

    compute(record)
    return wanted


def completed_nodes(index: int) -> list[tuple[int, int]]:
    """Perfect subtrees above level 0 that appending leaf ``index`` completes, lowest first."""
    done = []
    level, count = 1, index + 1
    while count % (1 << level) == 0:
        done.append((level, (count >> level) - 1))
        level += 1
    return done


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` in the tree with ``root``?"""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (second, second_root) an append-only extension of (first, first_root)?"""
    if first < 0 or first > second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path  # every tree extends the empty tree
    proof = list(path)
    if not proof:
        return False
    if first & (first - 1) == 0:
        proof.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class MemoryTree:
    """A Merkle tree held in memory, keeping every perfect subtree (clients, exports, verify-log)."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def append(self, data: bytes) -> int:
        index = self.size
        self._nodes[(0, index)] = leaf_hash(data)
        for level, i in completed_nodes(index):
            self._nodes[(level, i)] = node_hash(self._nodes[(level - 1, 2 * i)], self._nodes[(level - 1, 2 * i + 1)])
        self.size += 1
        return index

    def get(self, level: int, index: int) -> bytes:
        return self._nodes[(level, index)]

    def root(self, size: int | None = None) -> bytes:
        return root_hash(self.size if size is None else size, self.get)
