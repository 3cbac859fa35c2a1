"""Consentry's exception tree: one neutral root, opaque crypto failures, precise misuse errors.

    ConsentryError             root of every error any Consentry package raises on purpose
    ├── InvalidRecord          any authenticated-decryption or signature failure (deliberately opaque)
    ├── UnsupportedVersion     written by a newer Consentry; never guessed at
    ├── KeyUnavailable         a key (the KEK, a key file) is missing, damaged or not this data's key
    ├── InsecurePermissions    a file holding secrets that others can read; says how to fix it
    ├── PolicyError            the machine policy is missing a value, malformed or contradictory
    ├── VaultError             the employee's vault (vault/) refuses or cannot do something
    │   ├── VaultCorrupted     the database file is truncated, corrupted or not a Consentry vault
    │   ├── ConsentError       an operation that consent (or policy) does not cover
    │   ├── RecordInFuture     a window dated after the vault's clock (beyond the clock-skew tolerance)
    │   └── LedgerBroken       the consent ledger's hash chain or a checkpoint does not verify
    │       └── LedgerRolledBack   the ledger does not match its signed head (truncated, restored, rewritten)
    ├── StoreError             the store refused a request (protocol/store_errors.py, its own tree)
    └── ShippingError          the agent cannot use the store: not configured or enrolled (agent/shipping.py)

The agent's own tree (``agent.errors.AgentError``) is separate. Code that handles "any error of ours"
catches ``ConsentryError``; ``VaultError`` means the vault. Misuse by a caller (wrong key length,
unknown category) raises ValueError, as in pyca/cryptography.
"""

from __future__ import annotations


class ConsentryError(Exception):
    """Root of every error a Consentry package raises on purpose."""


class VaultError(ConsentryError):
    """The employee's vault refuses an operation or cannot do it."""


class InvalidRecord(ConsentryError):
    """A ciphertext, wrapped key, signature or proof failed to authenticate.

    Deliberately opaque: it takes no arguments, and ``str``/``repr`` are the same for every failure, so
    which check, byte, key or file failed is never given away (nor logged by whoever prints it).
    """

    MESSAGE = "record failed to authenticate"

    def __init__(self) -> None:
        super().__init__()

    def __str__(self) -> str:
        return self.MESSAGE

    def __repr__(self) -> str:
        return "InvalidRecord()"


class KeyUnavailable(ConsentryError):
    """A key cannot be found or read (a missing or damaged key file), or is not the key the data was made with."""


class InsecurePermissions(ConsentryError):
    """A file or folder holding secrets is readable by other users."""


class VaultCorrupted(VaultError):
    """The vault database cannot be read as a Consentry vault."""


class UnsupportedVersion(ConsentryError):
    """A blob or database was written by a newer format version than this code understands."""


class PolicyError(ConsentryError):
    """The machine policy cannot be used."""


class ConsentError(VaultError):
    """The requested operation is not covered by the employee's consent or the machine policy."""


class LedgerBroken(VaultError):
    """The consent ledger's chain or a signed checkpoint does not verify."""


class LedgerRolledBack(LedgerBroken):
    """The ledger does not match the signed head kept outside the database (vault/ledger_head.py)."""


class RecordInFuture(VaultError):
    """A record ends later than the vault's clock allows (a wrong clock or a forged window); nothing is stored."""
