"""Release wire formats and crypto: what a batch is, how it is sealed, approved, logged and erased.

The workstation side (the lead's shipping code) calls, in this order::

    from vault.release import (ConsentReceiptRef, LedgerCheckpointRef, build_header, build_manifest,
                               encode_payload, rekey_app_tokens, seal_batch, GENESIS_HASH)

    batch_key = os.urandom(32)                       # per batch; discard after sealing
    released = rekey_app_tokens(records, batch_key)  # anon: app tokens unlinkable across batches
    payload = encode_payload(batch_id, released)     # batch_id = uuid.uuid4().hex
    manifest = build_manifest(batch_id=..., subject=..., device_kid=device_key.kid, seq=n,
                              prev_batch_hash=<manifest_digest of batch n-1, or GENESIS_HASH>,
                              records=released, receipts=[ConsentReceiptRef(...), ...],
                              payload=payload, created=now, source_records=records)
    # employee preview / hold / veto on `manifest`; then StoreClient.submit_manifest(manifest)
    # after approval: header = build_header(manifest, LedgerCheckpointRef(seq=, head_hash=), created=now)
    sealed = seal_batch(header, payload, store_public_key, device_key)   # device_key: any Signer
    receipt = StoreClient(...).upload(sealed)                             # a verified LogReceipt
    StoreClient(...).submit_checkpoint(sign_checkpoint(device_key, seq, head, created=now))
    # (same bytes as vault.ledger's own checkpoints: LedgerCheckpoint.model_validate(cp.model_dump()))
    StoreClient(...).request_erasure(sign_erasure(device_key, uuid4().hex, subject, created=now))
    # -> an ErasureReceipt, checked by verify_erasure_receipt against that very request

``seq`` is assigned when a manifest is *submitted* (a vetoed batch never gets one), starting at 1;
``prev_batch_hash`` is ``manifest_digest`` of the previous submitted manifest. The store side calls
``open_batch``, ``tally``, ``run_privacy_checks`` and the ``merkle``/``auditlog`` functions.
Errors: crypto failures are the opaque ``vault.errors.InvalidRecord``; unknown versions
``vault.errors.UnsupportedVersion``; misuse a precise ``ValueError``.
"""

from __future__ import annotations

from vault.release.approval import Approval, Tally, approval_is_valid, approval_message, sign_approval, tally
from vault.release.auditlog import (
    ConsistencyProof,
    InclusionProof,
    LogEntry,
    LogReceipt,
    TreeHead,
    sign_tree_head,
    subject_digest,
    verify_heads_consistent,
    verify_receipt,
    verify_tree_head,
)
from vault.release.batch import BatchHeader, LedgerCheckpointRef, SealedBatch, build_header, header_mismatches
from vault.release.checkpoint import (
    MAX_LINKS,
    ExtensionProof,
    LedgerCheckpoint,
    LedgerLink,
    extend_chain,
    sign_checkpoint,
    verify_checkpoint,
    with_proof,
)
from vault.release.consent_ref import ConsentReceiptRef
from vault.release.erasure import (
    ErasureReceipt,
    ErasureRequest,
    sign_erasure,
    sign_erasure_receipt,
    verify_erasure,
    verify_erasure_receipt,
)
from vault.release.fields import GENESIS_HASH, b64decode, b64encode
from vault.release.manifest import BatchManifest, build_manifest, manifest_digest
from vault.release.payload import decode_payload, encode_payload, payload_digest
from vault.release.privacy import (
    REQUIRED_CHECKS,
    STORE_CHECKS,
    PrivacyCheck,
    rekey_app_tokens,
    run_privacy_checks,
)
from vault.release.sealing import StoreSealKey, open_batch, seal_batch, verify_batch_signature
from vault.signing import Signer, SigningKey, is_valid_signature, key_id, verify_signature

__all__ = [
    "GENESIS_HASH",
    "MAX_LINKS",
    "REQUIRED_CHECKS",
    "STORE_CHECKS",
    "Approval",
    "BatchHeader",
    "BatchManifest",
    "ConsentReceiptRef",
    "ConsistencyProof",
    "SigningKey",
    "ErasureReceipt",
    "ErasureRequest",
    "ExtensionProof",
    "InclusionProof",
    "LedgerCheckpoint",
    "LedgerCheckpointRef",
    "LedgerLink",
    "LogEntry",
    "LogReceipt",
    "PrivacyCheck",
    "SealedBatch",
    "Signer",
    "StoreSealKey",
    "Tally",
    "TreeHead",
    "approval_is_valid",
    "approval_message",
    "b64decode",
    "b64encode",
    "build_header",
    "build_manifest",
    "decode_payload",
    "encode_payload",
    "extend_chain",
    "header_mismatches",
    "is_valid_signature",
    "key_id",
    "manifest_digest",
    "open_batch",
    "payload_digest",
    "rekey_app_tokens",
    "run_privacy_checks",
    "seal_batch",
    "sign_approval",
    "sign_checkpoint",
    "sign_erasure",
    "sign_erasure_receipt",
    "sign_tree_head",
    "subject_digest",
    "tally",
    "verify_batch_signature",
    "verify_checkpoint",
    "verify_erasure",
    "verify_erasure_receipt",
    "verify_heads_consistent",
    "verify_receipt",
    "verify_signature",
    "verify_tree_head",
    "with_proof",
]
