"""Generator of tests/vectors/release-v1.json. Run once per format version; never rerun over a frozen file.

python tests/vectors/make_release_vectors.py tests/vectors/release-v1.json
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from devkit.store_kit import T0, as_version_1, make_records, receipt_ref
from protocol import (
    NO_PREVIOUS_BATCH,
    LedgerCheckpointRef,
    SigningKey,
    StoreSealKey,
    build_header,
    build_manifest,
    encode_payload,
    manifest_digest,
    payload_digest,
    rekey_app_tokens,
    seal_batch,
    sign_approval,
    sign_checkpoint,
    sign_erasure,
    sign_tree_head,
)
from protocol.categories import Category

device = SigningKey(bytes(range(32)))
steward = SigningKey(bytes(range(32, 64)))
log = SigningKey(bytes(range(64, 96)))
store = StoreSealKey(bytes(range(96, 128)))
batch_id = "0123456789abcdef0123456789abcdef"
records = rekey_app_tokens(make_records(4), b"\x07" * 32)
payload = encode_payload(batch_id, records)
# Version 1 of the manifest (it named the device); version 2 has its own file (make_manifest_v2_vectors.py).
manifest = as_version_1(
    build_manifest(
        batch_id=batch_id,
        subject="subj-vector-0001",
        seq=1,
        prev_batch_hash=NO_PREVIOUS_BATCH,
        records=records,
        receipts=[receipt_ref(c, f"r-{c.value}") for c in Category],
        payload=payload,
        created=T0,
        source_records=make_records(4),
    ),
    device.kid,
)
header = build_header(manifest, LedgerCheckpointRef(seq=3, head_hash="ef" * 32), device_kid=device.kid, created=T0 + 10)
sealed = seal_batch(header, payload, store.public_bytes, device)
approval = sign_approval(steward, batch_id, manifest_digest(manifest), "approve", created=T0 + 20)
cp = sign_checkpoint(device, 3, "ef" * 32, created=T0 + 5)
er = sign_erasure(device, "fedcba9876543210fedcba9876543210", "subj-vector-0001", created=T0 + 30)
th = sign_tree_head(
    log,
    8,
    bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    timestamp=T0 + 40,
)
out = {
    "description": "Consentry release formats v1 known answers. Keys are fixed test keys (bytes 0..127). "
    "Ed25519 is deterministic, so signatures must be reproduced exactly; HPKE is randomised, "
    "so the sealed batch is checked by opening it.",
    "device_private_key": device.private_bytes().hex(),
    "device_public_key": device.public_bytes.hex(),
    "device_kid": device.kid,
    "steward_private_key": steward.private_bytes().hex(),
    "log_private_key": log.private_bytes().hex(),
    "store_private_key": store.private_bytes().hex(),
    "store_public_key": store.public_bytes.hex(),
    "app_token_batch_key": ("07" * 32),
    "payload_hex": payload.hex(),
    "payload_sha256": payload_digest(payload),
    "manifest": manifest.canonical_dict(),
    "manifest_sha256": manifest_digest(manifest),
    "header": header.canonical_dict(),
    "header_canonical_hex": header.canonical_bytes().hex(),
    "sealed_batch": sealed.model_dump(mode="json"),
    "approval": approval.model_dump(mode="json"),
    "checkpoint": cp.model_dump(mode="json"),
    "erasure": er.model_dump(mode="json"),
    "tree_head": th.model_dump(mode="json"),
}
target = Path(sys.argv[1])
if target.exists():
    sys.exit(f"{target} exists: vectors are frozen; a new version writes a new file")
target.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n", encoding="utf-8")
