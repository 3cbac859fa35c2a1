"""The signed ledger head, kept outside the vault database so a truncated or restored ledger shows.

The database can be edited by anyone who can write the file (drop the triggers, delete the last
``revoke``), and an old copy of the whole file can be put back. Neither can move this file forward
or forge its signature. ``<home>/keys/ledger-head`` (0600, in the 0700 key folder beside the KEK),
JSON, version 1::

    {"v": 1, "vault_id", "seq", "head_hash", "prev_seq", "prev_hash", "device_kid", "at", "signature"}
    signature = Ed25519(device key, b"consentry-ledger-head-v1\\x00" || canonical_json(every other field))

It is replaced atomically (temporary file, fsync, rename, fsync of the folder) inside every write
transaction that appends to the ledger, *before* COMMIT, naming the new head with the old one as
``prev``: a crash before COMMIT leaves the database at ``prev``, which is accepted. Right after COMMIT
it is rewritten without ``prev`` under a fresh write lock, so from then on deleting the new entries is
caught. The database matches when it holds the entry the head (or ``prev``) names with that hash, and
every entry after it can only narrow collection (``NARROWING_KINDS``: a withdrawal recorded while the
vault key, and so the device key, was unavailable). Anything else fails closed: see ``HeadState``.

A head that cannot be written (the key folder read-only, the vault key unavailable) never stops a
withdrawal: it is committed, and the head *lags* it (status ``lagging``: shown by ``status``, ``doctor``
and the page, and granting is refused until the head can be written again). So that deleting that
withdrawal later is not taken for a ledger that matches its head, the entry it ends at is noted in
``<home>/ledger-head.pending`` (0600, JSON, version 1: ``{"v": 1, "vault_id", "seq", "hash", "at"}``,
unsigned: it can only narrow) and, by a long-running process, in memory; a ledger that lacks that
entry is ``rolled-back``. The note goes once the signed head covers it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

from protocol import domains
from protocol.atomic import write_atomic
from protocol.canonical import canonical_json
from protocol.signing import SigningKey, is_valid_signature
from vault.ledger import NARROWING_KINDS, Ledger

HEAD_VERSION = 1
HEAD_FILE_NAME = "ledger-head"
PENDING_FILE_NAME = "ledger-head.pending"
PENDING_VERSION = 1

HeadStatus = Literal["ok", "unanchored", "lagging", "missing", "rolled-back", "diverged", "unsigned-tail", "invalid"]

FIX = (
    "Capture is stopped. Run: consentry ledger verify (it explains); to go on, "
    "consentry ledger accept-rollback records the rollback, withdraws every grant and erases what was "
    "collected here, after which you can grant again."
)


FIX_LAG = (
    "Your withdrawals are recorded and count; granting is refused until the head is written again. Make the "
    "key folder writable again (and the vault key available): the agent, or your next consent command, "
    "then signs the head. Run: consentry doctor"
)


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX128 = re.compile(r"^[0-9a-f]{128}$")


@dataclass(frozen=True)
class SignedHead:
    """The head file's content. Its fields are checked here; its signature by ``check_head``.

    A plain dataclass (no pydantic: every CLI command reads the head, and ``status`` must start fast).
    """

    vault_id: str
    seq: int
    head_hash: str
    device_kid: str
    at: str
    signature: str
    prev_seq: int | None = None
    prev_hash: str | None = None
    v: Literal[1] = 1

    def __post_init__(self) -> None:
        problems = [
            self.v != HEAD_VERSION,
            not isinstance(self.vault_id, str) or not 1 <= len(self.vault_id) <= 64,
            not isinstance(self.device_kid, str) or not 1 <= len(self.device_kid) <= 64,
            not isinstance(self.at, str),
            type(self.seq) is not int or self.seq < 0,
            self.prev_seq is not None and (type(self.prev_seq) is not int or self.prev_seq < 0),
            not isinstance(self.head_hash, str) or not _HEX64.match(self.head_hash),
            self.prev_hash is not None and (not isinstance(self.prev_hash, str) or not _HEX64.match(self.prev_hash)),
            not isinstance(self.signature, str) or not _HEX128.match(self.signature),
        ]
        if any(problems):
            raise ValueError("not a valid signed head")

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def signed_bytes(self) -> bytes:
        unsigned = {k: v for k, v in self.to_json().items() if k != "signature"}
        return domains.LEDGER_HEAD_V1 + canonical_json(unsigned)

    def anchors(self) -> list[tuple[int, str]]:
        """The database states this head accepts: its own, and the one before an unfinished commit."""
        extra = [(self.prev_seq, self.prev_hash)] if self.prev_seq is not None and self.prev_hash else []
        return [(self.seq, self.head_hash), *extra]


class UnreadableHead:
    """A head file that exists but cannot be parsed: treated as altered."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


# Records read by every CLI command are NamedTuples: immutable like a frozen dataclass, and about a
# fifth of its cost to define when the command starts (docs/architecture.md, "Start-up").
class HeadState(NamedTuple):
    """How the database's ledger stands against the signed head."""

    status: HeadStatus
    message: str | None = None
    db_seq: int = 0
    head_seq: int | None = None
    head_at: str | None = None

    @property
    def ok(self) -> bool:
        """Not rolled back: what the ledger says can be trusted (a lagging head included)."""
        return self.status in ("ok", "unanchored", "lagging")

    @property
    def lagging(self) -> bool:
        return self.status == "lagging"

    def explain(self) -> str:
        if self.lagging:
            return f"signed ledger head behind: {self.message}. {FIX_LAG}"
        if self.ok:
            return "the consent ledger matches its signed head"
        return f"consent ledger rolled back: {self.message}. {FIX}"


def head_path(key_dir: Path) -> Path:
    return key_dir / HEAD_FILE_NAME


def pending_path(home: Path) -> Path:
    """Where a withdrawal the signed head lags is noted: outside the key folder, which may be read-only."""
    return home / PENDING_FILE_NAME


class Pending(NamedTuple):
    """The last entry a lagging head does not cover yet: the ledger must keep holding it."""

    seq: int
    hash: str


def read_pending(path: Path, vault_id: str) -> Pending | UnreadableHead | None:
    """The noted entry (None when there is none, or it is another vault's); damaged: UnreadableHead."""
    try:
        fields = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return UnreadableHead("the note of a withdrawal not yet in the signed head is damaged")
    if not isinstance(fields, dict) or fields.get("vault_id") != vault_id:
        return None if isinstance(fields, dict) and "vault_id" in fields else UnreadableHead("unreadable note")
    seq, digest = fields.get("seq"), fields.get("hash")
    if fields.get("v") != PENDING_VERSION or type(seq) is not int or seq < 1 or not _HEX64.match(str(digest)):
        return UnreadableHead("the note of a withdrawal not yet in the signed head is damaged")
    return Pending(seq, str(digest))


def write_pending(path: Path, vault_id: str, entry: Pending, at: str) -> None:
    body = {"v": PENDING_VERSION, "vault_id": vault_id, "seq": entry.seq, "hash": entry.hash, "at": at}
    write_atomic(path, canonical_json(body) + b"\n", durable=True)


def read_head(path: Path) -> SignedHead | UnreadableHead | None:
    """The head file (None when there is none); a damaged one is returned as UnreadableHead."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return UnreadableHead(f"it cannot be read ({type(exc).__name__})")
    try:
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise ValueError("not an object")
        return SignedHead(**fields)
    except (ValueError, TypeError):  # not JSON, unknown or missing fields, or a field out of shape
        return UnreadableHead("it is not a valid signed head")


def sign_head(
    key: SigningKey, vault_id: str, head: tuple[int, str], prev: tuple[int, str] | None, at: str
) -> SignedHead:
    unsigned = SignedHead(
        vault_id=vault_id,
        seq=head[0],
        head_hash=head[1],
        prev_seq=None if prev is None else prev[0],
        prev_hash=None if prev is None else prev[1],
        device_kid=key.kid,
        at=at,
        signature="0" * 128,
    )
    return replace(unsigned, signature=key.sign(unsigned.signed_bytes()).hex())


def write_head(path: Path, head: SignedHead) -> None:
    """Replace the head file atomically and durably: a reader sees the old head or the new one."""
    write_atomic(path, canonical_json(head.to_json()) + b"\n", durable=True)


def check_head(
    ledger: Ledger,
    head: SignedHead | UnreadableHead | None,
    *,
    vault_id: str,
    required: bool,
    public_key: bytes | None,
    db_head: tuple[int, str] | None = None,
    pending: Pending | UnreadableHead | None = None,
) -> HeadState:
    """Compare the ledger (up to ``db_head``, default its last entry) with the signed head.

    ``required``: this vault has written a head before, so a missing one means it was removed.
    ``public_key``: the device key; without it (vault key unavailable) the signature is not checked,
    but then nothing can be captured anyway.
    ``pending``: the last withdrawal recorded while the head could not be written (it must still be here).
    """
    db_seq, _ = ledger.head() if db_head is None else db_head
    if isinstance(head, UnreadableHead):
        return HeadState("invalid", f"the signed ledger head file was altered: {head.reason}", db_seq)
    if isinstance(pending, UnreadableHead):
        return HeadState("invalid", pending.reason, db_seq)
    if head is None:
        if db_seq == 0 or not required:
            return HeadState("unanchored", None, db_seq)
        return HeadState(
            "missing",
            f"the signed ledger head file is missing although the ledger has {db_seq} entries "
            "(it was deleted, or this vault file was copied here without it)",
            db_seq,
        )

    def seen(status: HeadStatus, message: str | None) -> HeadState:
        return HeadState(status, message, db_seq=db_seq, head_seq=head.seq, head_at=head.at)

    if head.vault_id != vault_id:
        return seen("invalid", "the signed ledger head belongs to another vault (was the vault file replaced?)")
    if public_key is not None and not is_valid_signature(
        public_key, head.signed_bytes(), bytes.fromhex(head.signature)
    ):
        return seen("invalid", "the signature of the signed ledger head does not verify")
    for seq, digest in head.anchors():
        if seq > db_seq or ledger.hash_at(seq) != digest:
            continue
        unsigned = [k for k in ledger.kinds_after(seq, upto=db_seq) if k not in NARROWING_KINDS]
        if unsigned:
            return seen(
                "unsigned-tail",
                f"the consent ledger has entries after entry {seq} that this device never signed "
                f"({', '.join(sorted(set(unsigned)))}); they were added outside Consentry",
            )
        if (
            pending is not None
            and pending.seq > seq
            and (pending.seq > db_seq or ledger.hash_at(pending.seq) != pending.hash)
        ):
            return seen(
                "rolled-back",
                f"a withdrawal recorded as entry {pending.seq} while the signed head could not be written "
                "is gone; entries were deleted or an old copy of the vault was restored",
            )
        if db_seq > seq:
            tail = sorted(set(ledger.kinds_after(seq, upto=db_seq)))
            return seen(
                "lagging",
                f"it covers entry {seq} but not the {db_seq - seq} withdrawal entr{'y' if db_seq - seq == 1 else 'ies'} "
                f"after it ({', '.join(tail)}), because it could not be written",
            )
        return seen("ok", None)
    if db_seq < head.seq:
        return seen(
            "rolled-back",
            f"it ends at entry {db_seq}, but its signed head "
            f"(written {head.at}) names entry {head.seq}; entries were deleted or an old copy of the vault "
            "was restored",
        )
    return seen(
        "diverged",
        f"the consent ledger was rewritten: entry {head.seq} is not the one its signed head (written {head.at}) names",
    )
