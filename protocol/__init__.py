"""Release wire formats and crypto: what a batch is, how it is sealed, approved, logged and erased.

The workstation side (``vault.batches`` seals, ``agent.shipping`` ships) calls, in this order::

    from protocol import (ConsentReceiptRef, LedgerCheckpointRef, build_header, build_manifest,
                               encode_payload, rekey_app_tokens, seal_batch, NO_PREVIOUS_BATCH)

    batch_key = os.urandom(32)                       # per batch; discard after sealing
    released = rekey_app_tokens(records, batch_key)  # anon: app tokens unlinkable across batches
    payload = encode_payload(batch_id, released)     # batch_id = uuid.uuid4().hex
    manifest = build_manifest(batch_id=..., subject=..., seq=n,     # version 2: names no device
                              prev_batch_hash=<manifest_digest of batch n-1, or NO_PREVIOUS_BATCH>,
                              records=released, receipts=[ConsentReceiptRef(...), ...],
                              payload=payload, created=now, source_records=records)
    # employee preview / hold / veto on `manifest`; then StoreClient.submit_manifest(manifest)
    # after approval: header = build_header(manifest, LedgerCheckpointRef(seq=, head_hash=),
    #                                       device_kid=device_key.kid, created=now)
    sealed = seal_batch(header, payload, store_public_key, device_key)   # device_key: any Signer
    receipt = StoreClient(...).upload(sealed)                             # a verified LogReceipt
    StoreClient(...).submit_checkpoint(sign_checkpoint(device_key, seq, head, created=now))
    # (same bytes as vault.ledger's own checkpoints: LedgerCheckpoint.model_validate(cp.model_dump()))
    StoreClient(...).request_erasure(sign_erasure(device_key, uuid4().hex, subject, created=now))
    # -> an ErasureReceipt, checked by verify_erasure_receipt against that very request

``seq`` is assigned when a manifest is *submitted* (a vetoed batch never gets one), starting at 1;
``prev_batch_hash`` is ``manifest_digest`` of the previous submitted manifest (of either version:
``read_manifest`` reads a stored one, version 1 from older agents included). The store side calls
``open_batch``, ``tally``, ``run_privacy_checks`` and the ``merkle``/``auditlog`` functions.
Errors: crypto failures are the opaque ``protocol.errors.InvalidRecord``; unknown versions
``protocol.errors.UnsupportedVersion``; misuse a precise ``ValueError``.

Every format also has one public function that opens or verifies it from its bytes alone (``open_*``,
``verify_*``, ``hpke_open``, ``decode_*``), listed per format in docs/formats.md, "Public API"
(``tests/protocol/test_public_api.py`` keeps that list and ``__all__`` in step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.lazy import lazy_exports

# name -> module: resolved on first use (PEP 562), so importing one submodule stays cheap
_EXPORTS: dict[str, str] = {
    "Approval": "protocol.approval",
    "Tally": "protocol.approval",
    "approval_is_valid": "protocol.approval",
    "approval_message": "protocol.approval",
    "sign_approval": "protocol.approval",
    "tally": "protocol.approval",
    "ConsistencyProof": "protocol.auditlog",
    "InclusionProof": "protocol.auditlog",
    "LogEntry": "protocol.auditlog",
    "LogReceipt": "protocol.auditlog",
    "TreeHead": "protocol.auditlog",
    "sign_tree_head": "protocol.auditlog",
    "subject_digest": "protocol.auditlog",
    "verify_heads_consistent": "protocol.auditlog",
    "verify_receipt": "protocol.auditlog",
    "verify_tree_head": "protocol.auditlog",
    "BatchHeader": "protocol.batch",
    "LedgerCheckpointRef": "protocol.batch",
    "SealedBatch": "protocol.batch",
    "build_header": "protocol.batch",
    "header_mismatches": "protocol.batch",
    "ExtensionProof": "protocol.checkpoint",
    "LedgerCheckpoint": "protocol.checkpoint",
    "LedgerLink": "protocol.checkpoint",
    "MAX_LINKS": "protocol.checkpoint",
    "extend_chain": "protocol.checkpoint",
    "sign_checkpoint": "protocol.checkpoint",
    "verify_checkpoint": "protocol.checkpoint",
    "with_proof": "protocol.checkpoint",
    "ConsentReceiptRef": "protocol.consent_ref",
    "ErasureReceipt": "protocol.erasure",
    "ErasureRequest": "protocol.erasure",
    "sign_erasure": "protocol.erasure",
    "sign_erasure_receipt": "protocol.erasure",
    "verify_erasure": "protocol.erasure",
    "verify_erasure_receipt": "protocol.erasure",
    "NO_PREVIOUS_BATCH": "protocol.manifest",
    "b64decode": "protocol.fields",
    "b64encode": "protocol.fields",
    "BatchManifest": "protocol.manifest",
    "BatchManifestV1": "protocol.manifest",
    "BatchManifestV2": "protocol.manifest",
    "read_manifest": "protocol.manifest",
    "build_manifest": "protocol.manifest",
    "manifest_digest": "protocol.manifest",
    "decode_payload": "protocol.payload",
    "encode_payload": "protocol.payload",
    "payload_digest": "protocol.payload",
    "PrivacyCheck": "protocol.privacy",
    "REQUIRED_CHECKS": "protocol.privacy",
    "STORE_CHECKS": "protocol.privacy",
    "rekey_app_tokens": "protocol.privacy",
    "run_privacy_checks": "protocol.privacy",
    "StoreSealKey": "protocol.sealing",
    "open_batch": "protocol.sealing",
    "seal_batch": "protocol.sealing",
    "verify_batch_signature": "protocol.sealing",
    "Signer": "protocol.signing",
    "SigningKey": "protocol.signing",
    "is_valid_signature": "protocol.signing",
    "key_id": "protocol.signing",
    "verify_signature": "protocol.signing",
    # Opening and verifying each format from its bytes alone (docs/formats.md, "Public API"): with the
    # verify_*/open_* names above (open_batch, verify_batch_signature, verify_checkpoint, verify_erasure,
    # verify_erasure_receipt, verify_tree_head, verify_receipt, verify_heads_consistent, decode_payload).
    "verify_approval": "protocol.approval",
    "chain_hash": "protocol.ledger_chain",
    "entry_digest": "protocol.ledger_chain",
    "kek_check_context": "protocol.envelope",
    "open_blob": "protocol.envelope",
    "open_vault_record": "protocol.envelope",
    "record_context": "protocol.envelope",
    "secret_context": "protocol.envelope",
    "wrap_context": "protocol.envelope",
    "decode_key": "protocol.keyfile",
    "ledger_head_message": "protocol.ledger_head",
    "verify_ledger_head": "protocol.ledger_head",
    "digest_message": "protocol.request_signing",
    "sign_request": "protocol.request_signing",
    "verify_request": "protocol.request_signing",
    "hpke_open": "protocol.sealing",
    "hpke_seal": "protocol.sealing",
    "open_sealed": "protocol.sealing",
    "EnrollRequest": "protocol.store_api",
    "enroll_message": "protocol.store_api",
    "verify_enrollment": "protocol.store_api",
}

__all__, __getattr__, __dir__ = lazy_exports("protocol", _EXPORTS)


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from protocol.approval import (
        Approval,
        Tally,
        approval_is_valid,
        approval_message,
        sign_approval,
        tally,
        verify_approval,
    )
    from protocol.auditlog import (
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
    from protocol.batch import BatchHeader, LedgerCheckpointRef, SealedBatch, build_header, header_mismatches
    from protocol.checkpoint import (
        MAX_LINKS,
        ExtensionProof,
        LedgerCheckpoint,
        LedgerLink,
        extend_chain,
        sign_checkpoint,
        verify_checkpoint,
        with_proof,
    )
    from protocol.consent_ref import ConsentReceiptRef
    from protocol.envelope import (
        kek_check_context,
        open_blob,
        open_vault_record,
        record_context,
        secret_context,
        wrap_context,
    )
    from protocol.erasure import (
        ErasureReceipt,
        ErasureRequest,
        sign_erasure,
        sign_erasure_receipt,
        verify_erasure,
        verify_erasure_receipt,
    )
    from protocol.fields import b64decode, b64encode
    from protocol.keyfile import decode_key
    from protocol.ledger_chain import chain_hash, entry_digest
    from protocol.ledger_head import ledger_head_message, verify_ledger_head
    from protocol.manifest import (
        NO_PREVIOUS_BATCH,
        BatchManifest,
        BatchManifestV1,
        BatchManifestV2,
        build_manifest,
        manifest_digest,
        read_manifest,
    )
    from protocol.payload import decode_payload, encode_payload, payload_digest
    from protocol.privacy import REQUIRED_CHECKS, STORE_CHECKS, PrivacyCheck, rekey_app_tokens, run_privacy_checks
    from protocol.request_signing import digest_message, sign_request, verify_request
    from protocol.sealing import (
        StoreSealKey,
        hpke_open,
        hpke_seal,
        open_batch,
        open_sealed,
        seal_batch,
        verify_batch_signature,
    )
    from protocol.signing import Signer, SigningKey, is_valid_signature, key_id, verify_signature
    from protocol.store_api import EnrollRequest, enroll_message, verify_enrollment
