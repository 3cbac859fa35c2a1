"""The store's own key pair files: X25519 (batches are sealed to it) and Ed25519 (signs tree heads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vault.release.keyfile import read_key_file, write_key_file
from vault.release.sealing import StoreSealKey
from vault.signing import SigningKey

SEAL_KEY_FILE = "store-x25519.key"
LOG_KEY_FILE = "store-log-ed25519.key"


@dataclass(frozen=True)
class StoreKeys:
    seal: StoreSealKey
    log: SigningKey

    @classmethod
    def generate(cls) -> StoreKeys:
        return cls(StoreSealKey.generate(), SigningKey.generate())

    @classmethod
    def load_or_create(cls, key_dir: Path) -> tuple[StoreKeys, bool]:
        """Load the keys in ``key_dir`` (0700), creating both on first use; returns (keys, created)."""
        seal_path, log_path = key_dir / SEAL_KEY_FILE, key_dir / LOG_KEY_FILE
        created = False
        for path, kind, fresh in (
            (seal_path, "x25519", lambda: StoreSealKey.generate().private_bytes()),
            (log_path, "ed25519", lambda: SigningKey.generate().private_bytes()),
        ):
            if not path.exists():
                try:
                    write_key_file(path, kind, fresh())
                    created = True
                except FileExistsError:
                    pass  # another store process created it first; use theirs
        keys = cls(
            StoreSealKey(read_key_file(seal_path, "x25519")),
            SigningKey(read_key_file(log_path, "ed25519")),
        )
        return keys, created
