"""Which of the employee's grants each receipt alias in a batch stands for.

A batch cites every grant by a per-period alias (vault.subjects.receipt_alias), so the store cannot
link two periods; My data lists each grant by its own id. Only this computer holds the alias key, so
only it can show the employee that an alias is a grant they made.
"""

from __future__ import annotations

from vault.batches import subject_of
from vault.subjects import RECEIPT_ALIAS_SECRET, receipt_alias
from vault.vault import Vault


def receipt_links(vault: Vault, batch_id: str) -> dict[str, str]:
    """Alias (as the batch cites it) -> the grant's own receipt id, for every grant this vault recorded.

    A batch sealed before pseudonyms rotated cites the grant ids themselves: each then maps to itself.
    """
    subject = subject_of(vault, batch_id)
    alias_key = vault.local_secret(RECEIPT_ALIAS_SECRET)
    links = {}
    for rid in vault.receipt_spans():
        links[rid] = rid
        links[receipt_alias(alias_key, subject, rid)] = rid
    return links
