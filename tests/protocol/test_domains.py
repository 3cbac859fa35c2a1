"""One list of domain-separation prefixes: distinct, prefix-free, and nobody else spells one out."""

from __future__ import annotations

import ast
import hashlib
import hmac
from pathlib import Path

import pytest

from agent.app_tokens import TOKEN_SECRET_NAME, TOKEN_SECRET_NAME_V2, AppResolver, TokenKey, token_key
from protocol import domains
from vault.paths import Layout
from vault.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("agent", "vault", "protocol", "store", "kit", "admin")

# Not a prefix: the known plaintext sealed under the KEK to check it is this vault's (vault/vault.py).
KNOWN_PLAINTEXTS = {"vault/vault.py": {b"consentry-kek-check-v1"}}


def _consentry_byte_literals(path: Path) -> set[bytes]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes) and node.value.startswith(b"consentry")
    }


def test_every_prefix_is_distinct_and_none_is_a_prefix_of_another() -> None:
    assert len(set(domains.ALL)) == len(domains.ALL)
    for a in domains.ALL:
        for b in domains.ALL:
            assert a == b or not b.startswith(a), (a, b)


def test_every_listed_constant_is_in_the_list() -> None:
    constants = {v for k, v in vars(domains).items() if k.isupper() and isinstance(v, bytes)}
    assert constants == set(domains.ALL)


def test_prefixes_name_consentry_a_version_and_end_the_name() -> None:
    whole_messages = {domains.PAGE_SESSION_V1, domains.PAGE_CSRF_V1}
    for prefix in domains.ALL:
        assert prefix.startswith(b"consentry-"), prefix
        if prefix != domains.BLOB_V1:  # the blob's version follows inside its associated data
            assert b"-v" in prefix, prefix
        assert prefix.endswith(b"\0") or prefix in whole_messages, prefix


def test_no_other_module_spells_a_prefix() -> None:
    found: dict[str, set[bytes]] = {}
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            literals = _consentry_byte_literals(path)
            if literals and rel != "protocol/domains.py":
                found[rel] = literals
    assert found == KNOWN_PLAINTEXTS


# Each value is frozen: changing one breaks every signature, hash and blob made with it. A new format
# adds a constant (and a line here); it never edits one.
FROZEN = {
    "REQUEST_V1": b"consentry-request-v1\0",
    "RECORDS_KEK_ID_V1": b"consentry-records-kek-id-v1\0",
    "ENROLL_V1": b"consentry-enroll-v1\0",
    "BATCH_V1": b"consentry-batch-v1\0",
    "APPROVE_V1": b"consentry-approve-v1\0",
    "REVIEW_SET_V1": b"consentry-review-set-v1\0",
    "REVIEW_SET_REJECT_V1": b"consentry-review-set-reject-v1\0",
    "ERASE_V1": b"consentry-erase-v1\0",
    "ERASURE_RECEIPT_V1": b"consentry-erasure-receipt-v1\0",
    "TREE_HEAD_V1": b"consentry-treehead-v1\0",
    "CHECKPOINT_V1": b"consentry-checkpoint-v1\0",
    "LEDGER_HEAD_V1": b"consentry-ledger-head-v1\0",
    "LEDGER_V1": b"consentry-ledger-v1\0",
    "LEDGER_V2": b"consentry-ledger-v2\0",
    "LEDGER_ENTRY_V2": b"consentry-ledger-entry-v2\0",
    "SUBJECT_V1": b"consentry-subject-v1\0",
    "REJECTION_REASON_V1": b"consentry-rejection-reason-v1\0",
    "ENROLL_TOKEN_V1": b"consentry-enroll-token-v1\0",
    "ENROLL_SECRET_V1": b"consentry-enroll-secret-v1\0",
    "STEWARD_SET_V1": b"consentry-steward-set-v1\0",
    "FOLDER_SCOPE_V1": b"consentry-folder-scope-v1\0",
    "APP_TOKEN_V1": b"consentry-app-token-v1\0",
    "LOCAL_APP_TOKEN_V2": b"consentry-local-app-token-v2\0",
    "RECEIPT_ALIAS_V1": b"consentry-receipt-alias-v1\0",
    "PAGE_SESSION_V1": b"consentry-page-session-v1",
    "PAGE_CSRF_V1": b"consentry-page-csrf-v1",
    "BLOB_V1": b"consentry-blob\0",
    "RELEASE_REQUEST_V1": b"consentry-release-request-v1\0",
    "RELEASE_APPROVE_V1": b"consentry-release-approve-v1\0",
    "RELEASE_USE_V1": b"consentry-release-use-v1\0",
}


def test_the_frozen_prefix_values() -> None:
    listed = {k: v for k, v in vars(domains).items() if k.isupper() and isinstance(v, bytes)}
    assert listed == FROZEN


SECRET = bytes(range(32))


def test_version_1_local_app_tokens_are_unchanged() -> None:
    """Tokens already stored in vaults: HMAC(secret, name) with no prefix, frozen."""
    resolver = AppResolver({}, (), SECRET)
    expected = hmac.new(SECRET, b"inhousetool", hashlib.sha256).hexdigest()[:16]
    assert resolver.resolve("InHouseTool").token == f"anon:{expected}"
    assert AppResolver({}, (), TokenKey(SECRET, 1)).resolve("InHouseTool").token == f"anon:{expected}"


def test_version_2_local_app_tokens_use_their_prefix() -> None:
    resolver = AppResolver({}, (), TokenKey(SECRET, 2))
    expected = hmac.new(SECRET, domains.LOCAL_APP_TOKEN_V2 + b"inhousetool", hashlib.sha256).hexdigest()[:16]
    assert resolver.resolve("InHouseTool").token == f"anon:{expected}"
    assert resolver.resolve("InHouseTool").token != AppResolver({}, (), SECRET).resolve("InHouseTool").token


def test_an_unknown_token_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        AppResolver({}, (), TokenKey(SECRET, 3))


def test_a_new_vault_gets_version_2_tokens_and_keeps_them(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        first = token_key(vault)
        assert first.version == 2 and first.secret == vault.local_secret(TOKEN_SECRET_NAME_V2, create=False)
    with Vault.open(layout) as vault:
        assert token_key(vault) == first
    assert "secret" not in repr(first) and first.secret.hex() not in repr(first)


def test_a_vault_with_version_1_tokens_keeps_version_1(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        old = vault.local_secret(TOKEN_SECRET_NAME)  # what the agent made before version 2 existed
        assert token_key(vault) == TokenKey(old, 1)
