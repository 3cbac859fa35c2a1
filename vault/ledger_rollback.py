"""The employee's way out of a rolled-back ledger: record it, withdraw everything, start clean.

A ledger that no longer matches its signed head may have lost a revocation or an erasure, so nothing
it says can be trusted to widen collection again. Accepting the rollback therefore (1) erases every
category here and ends every grant (one ``erase`` entry, as ``consentry erase --all`` would), and (2)
appends a ``ledger-rollback-accepted`` entry naming the head that was lost (seq, hash, when it was
signed) and the head found, then signs a new head over the ledger as it is. Nothing is deleted from
the ledger; the auditor sees the gap and its acceptance. Consent is then given again, explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from protocol.categories import ALL_CATEGORIES
from protocol.errors import ConsentError, LedgerBroken
from vault.ledger_head import HeadState, SignedHead, read_head
from vault.vault import Vault

# The ``problem`` recorded when it was the store that had witnessed a later ledger (agent/ledger_witness.py):
# this vault and its signed head agree, but both are older than what the store saw (a restored backup).
STORE_WITNESSED_LATER = "store-witnessed-later"


@dataclass(frozen=True)
class AcceptedRollback:
    state: HeadState
    erased_keys: int
    seq: int


def accept_rollback(vault: Vault, now: datetime, *, witnessed_later: bool = False) -> AcceptedRollback:
    """Record a detected rollback and re-anchor the signed head; refuses when there is none.

    ``witnessed_later``: the store refused this ledger as older than one it witnessed (the caller asked
    it), which is a rollback even though the ledger matches its own signed head.
    """
    from vault.shredding import erase_categories  # shredding imports the batch machinery

    vault.ledger.require_valid(vault.device_key.public_bytes)  # an edited entry is not a rollback
    state = vault.ledger_head_state()
    if state.ok and not witnessed_later:
        raise ConsentError("the consent ledger matches its signed head; there is no rollback to accept")
    lost = read_head(vault.head_file) if not state.ok else None  # from the store: the head here is not lost
    keys = erase_categories(vault, list(ALL_CATEGORIES), now=now, revoked_too=True)
    with vault.reanchoring(), vault.transaction():
        found_seq, found_hash = vault.ledger.head()
        entry = vault.ledger.append(
            "ledger-rollback-accepted",
            {
                "problem": state.status if not state.ok else STORE_WITNESSED_LATER,
                "lost_head_seq": lost.seq if isinstance(lost, SignedHead) else None,
                "lost_head_hash": lost.head_hash if isinstance(lost, SignedHead) else None,
                "lost_head_at": lost.at if isinstance(lost, SignedHead) else None,
                "found_seq": found_seq,
                "found_hash": found_hash,
                "erased_key_count": len(keys),
            },
            now,
        )
    if not vault.ledger_head_state().ok:  # the new head must now hold; anything else is a bug to surface
        raise LedgerBroken("the signed ledger head could not be re-anchored; run: consentry doctor")
    return AcceptedRollback(state=state, erased_keys=len(keys), seq=entry.seq)
