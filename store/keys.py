"""The store's own key files: X25519 (batches are sealed to it), Ed25519 (signs tree heads), records KEK.

All three are ``protocol.keyfile`` files (version 1; kinds ``x25519``, ``ed25519``, ``aes256``).

The records KEK (AES-256) wraps the per-subject data keys that records are encrypted under at rest
(``store.record_keys``). Without it, nothing stored can be read: back it up with the other keys,
apart from the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from protocol.envelope import new_key
from protocol.keyfile import read_key_file, write_key_file
from protocol.sealing import StoreSealKey
from protocol.signing import SigningKey
from store.records_kek import RECORDS_KEK_FILE, RecordsKek

SEAL_KEY_FILE = "store-x25519.key"
LOG_KEY_FILE = "store-log-ed25519.key"
__all__ = ["LOG_KEY_FILE", "RECORDS_KEK_FILE", "SEAL_KEY_FILE", "StoreKeys"]


@dataclass(frozen=True)
class StoreKeys:
    seal: StoreSealKey
    log: SigningKey
    records: RecordsKek = field(repr=False)  # the records KEK (replaced after each erasure), never printed

    @classmethod
    def generate(cls) -> StoreKeys:
        """Keys in memory only (tests, ``consentry demo``)."""
        return cls(StoreSealKey.generate(), SigningKey.generate(), RecordsKek(new_key()))

    @classmethod
    def load_or_create(cls, key_dir: Path) -> tuple[StoreKeys, bool]:
        """Load the keys in ``key_dir`` (0700), creating any missing on first use; returns (keys, created).

        ``created`` says whether the seal or log key is new (the public keys to hand out changed). A
        store from before records were encrypted gets its records KEK here, on its next start.
        """
        seal_path, log_path = key_dir / SEAL_KEY_FILE, key_dir / LOG_KEY_FILE
        kek_path = key_dir / RECORDS_KEK_FILE
        created = False
        makers: tuple[tuple[Path, str, Callable[[], bytes]], ...] = (
            (seal_path, "x25519", lambda: StoreSealKey.generate().private_bytes()),
            (log_path, "ed25519", lambda: SigningKey.generate().private_bytes()),
        )
        for path, kind, fresh in makers:
            if not path.exists():
                try:
                    write_key_file(path, kind, fresh())
                    created = True
                except FileExistsError:
                    pass  # another store process created it first; use theirs
        keys = cls(
            StoreSealKey(read_key_file(seal_path, "x25519")),
            SigningKey(read_key_file(log_path, "ed25519")),
            RecordsKek.load_or_create(kek_path),
        )
        return keys, created
