"""Generator of tests/vectors/erasure-receipt-v1.json. Run once per format version; never rerun over a frozen file.

python tests/vectors/make_erasure_receipt_vectors.py tests/vectors/erasure-receipt-v1.json

Same keys and erasure request as release-v1.json; the receipt's log holds a batch entry and then the
erasure entry (leaf 1 of a 2-leaf tree).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from devkit.store_kit import T0
from protocol import ErasureRequest, LogEntry, LogReceipt, SigningKey, merkle, sign_tree_head, subject_digest  # noqa: E501
from protocol.erasure import erasure_receipt_message, sign_erasure_receipt

release = json.loads((Path(__file__).parent / "release-v1.json").read_text())
log = SigningKey(bytes.fromhex(release["log_private_key"]))
request = ErasureRequest.model_validate(release["erasure"])
entries = [
    LogEntry(v=1, kind="batch-stored", time=T0 + 35, body={"batch_id": "0123456789abcdef0123456789abcdef"}),
    LogEntry(
        v=1,
        kind="erasure",
        time=T0 + 50,
        body={
            "request_id": request.request_id,
            "subject_digest": subject_digest(request.subject),
            "scope": "subject",
            "batches": 1,
            "records": 4,
            "exports_marked": 0,
        },
    ),
]
tree = merkle.MemoryTree()
for entry in entries:
    tree.append(entry.leaf_data())
head = sign_tree_head(log, 2, tree.root(2), timestamp=T0 + 50)
path = tuple(p.hex() for p in merkle.inclusion_path(1, 2, tree.get))
receipt = sign_erasure_receipt(
    log, request, LogReceipt(v=1, entry=entries[1], leaf_index=1, tree_head=head, inclusion=path)
)
vectors = {
    "description": "Consentry erasure receipt v1: the store log key's signature binding (request id, subject digest, "
    "scope, log index), with the erasure entry's log receipt. Keys and request: release-v1.json.",
    "erasure_request": request.model_dump(mode="json"),
    "signed_message_hex": erasure_receipt_message(
        receipt.request_id, receipt.subject_digest, receipt.scope, receipt.leaf_index
    ).hex(),
    "erasure_receipt": receipt.model_dump(mode="json"),
}
Path(sys.argv[1]).write_text(json.dumps(vectors, indent=1, sort_keys=True) + "\n")
