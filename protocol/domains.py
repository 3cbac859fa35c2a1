"""Every domain-separation prefix Consentry signs, hashes, MACs or authenticates under, in one list.

A prefix names what a message is, so bytes signed, hashed or MACed for one purpose can never be
taken for another. Each ends in a NUL byte (a name cannot run into the message) and carries its own
version: a new format adds a prefix here, it never edits one (the frozen vectors in ``tests/vectors/``
would fail). ``tests/protocol/test_domains.py`` checks that no prefix is a prefix of another and
that no other module spells one out.
"""

from __future__ import annotations

# Ed25519 signatures.
REQUEST_V1 = b"consentry-request-v1\0"  # signed HTTP requests (protocol.request_signing)
ENROLL_V1 = b"consentry-enroll-v1\0"  # the device's proof of key possession when enrolling (protocol.store_api)
BATCH_V1 = b"consentry-batch-v1\0"  # the device's signature over a sealed batch (protocol.sealing)
APPROVE_V1 = b"consentry-approve-v1\0"  # a steward's decision on a batch (protocol.approval)
REVIEW_SET_V1 = b"consentry-review-set-v1\0"  # a steward's approval of a review set's root (protocol.review_set)
REVIEW_SET_REJECT_V1 = (
    b"consentry-review-set-reject-v1\0"  # a steward's rejection of a review set (protocol.review_set)
)
ERASE_V1 = b"consentry-erase-v1\0"  # the device's erasure request (protocol.erasure)
ERASURE_RECEIPT_V1 = b"consentry-erasure-receipt-v1\0"  # the store's erasure receipt (protocol.erasure)
TREE_HEAD_V1 = b"consentry-treehead-v1\0"  # the store's signed audit-log tree head (protocol.auditlog)
CHECKPOINT_V1 = b"consentry-checkpoint-v1\0"  # a signed consent-ledger checkpoint (protocol.ledger_chain)
LEDGER_HEAD_V1 = b"consentry-ledger-head-v1\0"  # the signed ledger head file (vault.ledger_head)

# SHA-256 hashes.
LEDGER_V1 = b"consentry-ledger-v1\0"  # a version-1 ledger chain step (protocol.ledger_chain)
LEDGER_V2 = b"consentry-ledger-v2\0"  # a version-2 ledger chain step (protocol.ledger_chain)
LEDGER_ENTRY_V2 = b"consentry-ledger-entry-v2\0"  # a version-2 ledger entry digest (protocol.ledger_chain)
SUBJECT_V1 = b"consentry-subject-v1\0"  # a subject pseudonym's digest in the audit log (protocol.auditlog)
# A rejection's reason as the audit log names it, salted with the decision's signature (protocol.approval).
REJECTION_REASON_V1 = b"consentry-rejection-reason-v1\0"
ENROLL_TOKEN_V1 = b"consentry-enroll-token-v1\0"  # how the store keeps enrollment tokens (store.auth)
ENROLL_SECRET_V1 = b"consentry-enroll-secret-v1\0"  # how the store keeps fleet enrollment secrets (protocol.fleet)
RELEASE_REQUEST_V1 = b"consentry-release-request-v1\0"  # a consumer's signed release request (store.releases.requests)
RELEASE_APPROVE_V1 = b"consentry-release-approve-v1\0"  # a steward's decision on a release (store.releases.governance)
RELEASE_USE_V1 = b"consentry-release-use-v1\0"  # a consumer's signed record of a training run (store.releases.lineage)
STEWARD_SET_V1 = b"consentry-steward-set-v1\0"  # the data stewards a grant receipt names (vault.consent)

# HMAC-SHA-256 messages.
FOLDER_SCOPE_V1 = b"consentry-folder-scope-v1\0"  # the watched-folder scope a consent names (vault.consent)
APP_TOKEN_V1 = b"consentry-app-token-v1\0"  # an app token re-keyed per batch (protocol.privacy)
# Local app tokens (agent.app_tokens), version 2. Version 1 tokens, already stored in vaults, are
# HMAC(secret, name) with no prefix: they stay as they are, since changing them would split every
# application's history in two; the secret they use is dedicated to them and nothing else.
LOCAL_APP_TOKEN_V2 = b"consentry-local-app-token-v2\0"
RECORDS_KEK_ID_V1 = b"consentry-records-kek-id-v1\0"  # the id of the store's records KEK (store.records_kek)
RECEIPT_ALIAS_V1 = b"consentry-receipt-alias-v1\0"  # a consent receipt's per-subject alias (vault.subjects)
# The local page's session lookup key and CSRF token, each MACed under the session's random id
# (kit.web.security): whole messages rather than prefixes, hence no NUL.
PAGE_SESSION_V1 = b"consentry-page-session-v1"
PAGE_CSRF_V1 = b"consentry-page-csrf-v1"

# AES-GCM associated data.
BLOB_V1 = b"consentry-blob\0"  # every envelope blob (protocol.envelope); the version follows inside

ALL: tuple[bytes, ...] = (
    REQUEST_V1,
    ENROLL_V1,
    BATCH_V1,
    APPROVE_V1,
    REVIEW_SET_V1,
    REVIEW_SET_REJECT_V1,
    ERASE_V1,
    ERASURE_RECEIPT_V1,
    TREE_HEAD_V1,
    CHECKPOINT_V1,
    LEDGER_HEAD_V1,
    LEDGER_V1,
    LEDGER_V2,
    LEDGER_ENTRY_V2,
    SUBJECT_V1,
    REJECTION_REASON_V1,
    ENROLL_TOKEN_V1,
    STEWARD_SET_V1,
    FOLDER_SCOPE_V1,
    APP_TOKEN_V1,
    LOCAL_APP_TOKEN_V2,
    RECORDS_KEK_ID_V1,
    RECEIPT_ALIAS_V1,
    PAGE_SESSION_V1,
    PAGE_CSRF_V1,
    BLOB_V1,
    ENROLL_SECRET_V1,
    RELEASE_REQUEST_V1,
    RELEASE_APPROVE_V1,
    RELEASE_USE_V1,
)
