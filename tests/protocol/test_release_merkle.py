"""The audit log's Merkle tree against RFC 6962 known answers and an independent recursive implementation."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from protocol import merkle

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "merkle-rfc6962.json").read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]


# --- an independent, straightforward implementation of RFC 6962 §2.1 over a list of leaf data ---------
def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def _tree(leaves: list[bytes]) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree


def test_roots_match_rfc6962_reference_values() -> None:
    tree = merkle.MemoryTree()
    assert tree.root().hex() == VECTORS["roots"]["0"]
    for n, leaf in enumerate(LEAVES, start=1):
        tree.append(leaf)
        assert tree.root().hex() == VECTORS["roots"][str(n)]
        assert ref_mth(LEAVES[:n]).hex() == VECTORS["roots"][str(n)]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}")
def test_inclusion_proofs_match_rfc6962_reference_values(case: dict) -> None:
    tree = _tree(LEAVES[: case["size"]])
    path = merkle.inclusion_path(case["index"], case["size"], tree.get)
    assert [p.hex() for p in path] == case["path"]
    root = bytes.fromhex(VECTORS["roots"][str(case["size"])])
    assert merkle.verify_inclusion(merkle.leaf_hash(LEAVES[case["index"]]), case["index"], case["size"], path, root)


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-to-{c['second']}")
def test_consistency_proofs_match_rfc6962_reference_values(case: dict) -> None:
    tree = _tree(LEAVES[: case["second"]])
    path = merkle.consistency_path(case["first"], case["second"], tree.get)
    assert [p.hex() for p in path] == case["path"]
    r1 = bytes.fromhex(VECTORS["roots"][str(case["first"])])
    r2 = bytes.fromhex(VECTORS["roots"][str(case["second"])])
    assert merkle.verify_consistency(case["first"], case["second"], r1, r2, path)


def test_every_proof_agrees_with_the_independent_implementation() -> None:
    rng = random.Random(9162)
    leaves = [rng.randbytes(rng.randint(0, 12)) for _ in range(70)]
    tree = _tree(leaves)
    for n in range(1, len(leaves) + 1):
        root = tree.root(n)
        assert root == ref_mth(leaves[:n])
        for m in range(n):
            path = merkle.inclusion_path(m, n, tree.get)
            assert path == ref_path(m, leaves[:n])
            assert merkle.verify_inclusion(merkle.leaf_hash(leaves[m]), m, n, path, root)
        for m in range(1, n + 1):
            proof = merkle.consistency_path(m, n, tree.get)
            assert proof == ref_subproof(m, leaves[:n], True)
            assert merkle.verify_consistency(m, n, ref_mth(leaves[:m]), root, proof)


def test_altered_leaf_path_or_root_fails_verification() -> None:
    tree = _tree(LEAVES)
    root = tree.root()
    path = merkle.inclusion_path(5, 8, tree.get)
    leaf = merkle.leaf_hash(LEAVES[5])
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), 5, 8, path, root)
    assert not merkle.verify_inclusion(leaf, 4, 8, path, root)
    assert not merkle.verify_inclusion(leaf, 5, 6, path, root)
    assert not merkle.verify_inclusion(leaf, 5, 8, path[:-1], root)
    assert not merkle.verify_inclusion(leaf, 5, 8, [bytes(32)] + path[1:], root)
    proof = merkle.consistency_path(3, 8, tree.get)
    assert not merkle.verify_consistency(3, 8, tree.root(4), root, proof)
    assert not merkle.verify_consistency(3, 8, tree.root(3), tree.root(7), proof)
    assert not merkle.verify_consistency(3, 8, tree.root(3), root, proof[:-1])


def test_proof_for_a_leaf_outside_the_tree_is_misuse() -> None:
    tree = _tree(LEAVES[:3])
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_path(3, 3, tree.get)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_path(4, 3, tree.get)


def test_nodes_for_names_exactly_the_perfect_subtrees_a_proof_reads() -> None:
    tree = _tree([bytes([i]) for i in range(13)])
    wanted = merkle.nodes_for(lambda g: merkle.inclusion_path(6, 13, g))
    nodes = {c: tree.get(*c) for c in wanted}
    assert merkle.inclusion_path(6, 13, lambda lv, i: nodes[(lv, i)]) == merkle.inclusion_path(6, 13, tree.get)
