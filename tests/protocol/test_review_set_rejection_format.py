"""The set rejection and the rejection-reason digest as docs/store.md states them, rebuilt here from the
documentation alone (JCS by hand for these flat ASCII bodies, Ed25519 and SHA-256 from ``cryptography``
and ``hashlib``), so the docs and the code cannot drift apart."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import SigningKey, sign_approval
from protocol.approval import reason_digest
from protocol.review_set import SetMember, set_root, sign_set_approval, sign_set_rejection

MEMBERS = [SetMember(batch_id=f"{i:032x}", manifest_sha256=f"{i:02x}" * 32) for i in range(1, 6)]
SET_ID = "ab" * 16
REASON = "Counts far outside the previous day's"


def _jcs(body: dict[str, object]) -> bytes:  # RFC 8785 for flat bodies of ASCII strings and small integers
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_a_set_rejection_is_the_documented_signature_over_the_documented_bytes() -> None:
    steward = SigningKey.generate()
    rejection = sign_set_rejection(steward, SET_ID, MEMBERS, f"  {REASON} ", created=1_700_000_000)
    assert rejection.reason == REASON, "the reason is signed as trimmed"
    body = {"v": 1, "set_id": SET_ID, "root": set_root(MEMBERS), "size": 5, "decision": "reject", "reason": REASON}
    message = b"consentry-review-set-reject-v1\0" + _jcs(body)
    Ed25519PublicKey.from_public_bytes(steward.public_bytes).verify(base64.b64decode(rejection.signature), message)
    assert rejection.is_valid()
    # Not an approval's signature over the same root, nor valid for another reason.
    approval = sign_set_approval(steward, SET_ID, MEMBERS, created=1_700_000_000)
    assert approval.signature != rejection.signature
    assert not rejection.model_copy(update={"reason": REASON + "."}).is_valid()


def test_the_reason_digest_is_salted_with_the_decision_s_signature() -> None:
    steward = SigningKey.generate()
    single = sign_approval(steward, "cd" * 16, "ef" * 32, "reject", created=1_700_000_000, reason=REASON)
    expected = hashlib.sha256(
        b"consentry-rejection-reason-v1\0" + base64.b64decode(single.signature) + REASON.encode("utf-8")
    ).hexdigest()
    assert reason_digest(REASON, single.signature) == expected
    # The same reason in two decisions: two digests, so a guessed reason cannot be confirmed from the log.
    other = sign_approval(steward, "cd" * 16, "12" * 32, "reject", created=1_700_000_000, reason=REASON)
    assert reason_digest(REASON, other.signature) != expected
    assert expected != hashlib.sha256(REASON.encode("utf-8")).hexdigest()
