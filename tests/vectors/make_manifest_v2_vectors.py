"""Generator of tests/vectors/manifest-v2.json. Run once per format version; never rerun over a frozen file.

python tests/vectors/make_manifest_v2_vectors.py tests/vectors/manifest-v2.json

Batch manifest version 2 is version 1 without ``device_kid``: this takes the frozen version-1 manifest of
release-v1.json (same keys, payload and batch), makes its version-2 form, and signs the header and a
steward approval over the new digest with the same fixed test keys.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from protocol import LedgerCheckpointRef, SigningKey, build_header, manifest_digest, read_manifest, sign_approval
from protocol.canonical import canonical_json

T0 = 1_700_000_000
release = json.loads((Path(__file__).resolve().parent / "release-v1.json").read_text())
device = SigningKey(bytes.fromhex(release["device_private_key"]))
steward = SigningKey(bytes.fromhex(release["steward_private_key"]))
v1 = release["manifest"]
manifest = read_manifest({**{k: v for k, v in v1.items() if k != "device_kid"}, "v": 2})
header = build_header(manifest, LedgerCheckpointRef(seq=3, head_hash="ef" * 32), device_kid=device.kid, created=T0 + 10)
approval = sign_approval(steward, manifest.batch_id, manifest_digest(manifest), "approve", created=T0 + 20)
out = {
    "description": "Consentry batch manifest v2 known answers: the manifest of release-v1.json without "
    "device_kid and with v 2; its digest is SHA-256 of its canonical JSON, as for v1. The header (v1, "
    "unchanged) still names the device. Keys are release-v1.json's fixed test keys.",
    "device_kid": device.kid,
    "manifest_v1_sha256": release["manifest_sha256"],
    "manifest": manifest.canonical_dict(),
    "manifest_canonical_hex": canonical_json(manifest.canonical_dict()).hex(),
    "manifest_sha256": manifest_digest(manifest),
    "header": header.canonical_dict(),
    "header_canonical_hex": header.canonical_bytes().hex(),
    "approval": approval.model_dump(mode="json"),
}
target = Path(sys.argv[1])
if target.exists():
    sys.exit(f"{target} exists: vectors are frozen; a new version writes a new file")
target.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n", encoding="utf-8")
