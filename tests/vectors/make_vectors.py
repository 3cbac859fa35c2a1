"""Write the frozen known-answer vectors for the vault's v1 formats. Run once per new format version.

Existing files are never rewritten (a new version adds files): this script refuses to overwrite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.envelope import context
from protocol.signing import SigningKey
from vault.ledger import LEDGER_START_HASH, chain_hash, checkpoint_bytes

HERE = Path(__file__).parent


def envelope_vectors() -> list[dict[str, object]]:
    """Built from the documented layout with a fixed nonce: ``protocol.envelope`` never takes one."""
    key = bytes(range(32))
    nonce = bytes.fromhex("000102030405060708090a0b")
    cases: list[tuple[str, bytes, dict[str, object]]] = [
        (
            "record",
            b'{"category":"keyboard","start":0}',
            {"table": "records", "record_id": 1, "key_id": "keyboard/2026-01-01/0", "category": "keyboard"},
        ),
        ("wrapped-dek", bytes(range(100, 132)), {"purpose": "dek", "key_id": "mouse/2026-01-02/3"}),
        ("secret", b"\x00" * 32, {"purpose": "secret", "name": "device-key"}),
        ("empty", b"", {"table": "records", "record_id": 7, "key_id": "apps/2026-12-31/0", "category": "apps"}),
    ]
    out: list[dict[str, object]] = []
    for name, plaintext, fields in cases:
        aad = context(fields)
        blob = b"\x01" + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
        out.append(
            {
                "name": name,
                "key": key.hex(),
                "nonce": nonce.hex(),
                "plaintext": plaintext.hex(),
                "context": fields,
                "aad": aad.hex(),
                "blob": blob.hex(),
            }
        )
    return out


def ledger_vectors() -> dict[str, object]:
    bodies = [
        {"v": 1, "seq": 1, "kind": "vault-created", "at": "2026-01-01T00:00:00.000000Z", "vault_id": "v" * 32},
        {
            "v": 1,
            "seq": 2,
            "kind": "grant",
            "at": "2026-01-01T00:00:01.000000Z",
            "category": "mouse",
            "receipt_id": "r" * 32,
        },
        {
            "v": 1,
            "seq": 3,
            "kind": "revoke",
            "at": "2026-01-01T00:00:02.500000Z",
            "categories": ["mouse"],
            "ratio": 0.5,
        },
    ]
    hashes = []
    prev = LEDGER_START_HASH
    for body in bodies:
        prev = chain_hash(prev, body)
        hashes.append(prev)
    key = SigningKey(bytes(range(32, 64)))
    at = "2026-01-01T00:00:03.000000Z"
    signature = key.sign(checkpoint_bytes(3, hashes[-1], key.kid, at))
    return {
        "bodies": bodies,
        "hashes": hashes,
        "checkpoint": {
            "private_key": key.private_bytes().hex(),
            "public_key": key.public_bytes.hex(),
            "kid": key.kid,
            "seq": 3,
            "head_hash": hashes[-1],
            "at": at,
            "signature": signature.hex(),
        },
    }


def ledger_v2_vectors() -> dict[str, object]:
    """Version-2 entries (salted per-entry digests) and a signed ledger head over them."""
    from vault.ledger import entry_digest
    from vault.ledger_head import sign_head

    bodies = [
        {"v": 2, "seq": 1, "kind": "vault-created", "at": "2026-01-01T00:00:00.000000Z", "salt": "01" * 16,
         "vault_id": "v" * 32, "ledger_head": 1},
        {"v": 2, "seq": 2, "kind": "grant", "at": "2026-01-01T00:00:01.000000Z", "salt": "02" * 16,
         "category": "mouse", "receipt_id": "r" * 32},
        {"v": 2, "seq": 3, "kind": "revoke", "at": "2026-01-01T00:00:02.500000Z", "salt": "03" * 16,
         "categories": ["mouse"]},
    ]  # fmt: skip
    digests, hashes = [], []
    prev = LEDGER_START_HASH
    for body in bodies:
        digests.append(entry_digest(body))
        prev = chain_hash(prev, body)
        hashes.append(prev)
    key = SigningKey(bytes(range(64, 96)))
    head = sign_head(key, "v" * 32, (3, hashes[-1]), (2, hashes[1]), "2026-01-01T00:00:03.000000Z")
    return {
        "bodies": bodies,
        "digests": digests,
        "hashes": hashes,
        "head": {"private_key": key.private_bytes().hex(), "file": head.to_json()},
    }


def main() -> None:
    write_frozen(
        (
            ("envelope-v1.json", envelope_vectors()),
            ("ledger-v1.json", ledger_vectors()),
            ("ledger-v2.json", ledger_v2_vectors()),
        )
    )


def write_frozen(files: tuple[tuple[str, object], ...]) -> None:
    """Write each vector file that does not exist yet; an existing one is frozen and left alone."""
    for name, value in files:
        path = HERE / name
        if path.exists():
            print(f"{path} exists; vectors are frozen, not rewritten", file=sys.stderr)
            continue
        path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
