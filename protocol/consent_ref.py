"""A consent grant as a batch manifest cites it: enough for the store and the datasheet, no person."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from protocol.categories import Category
from protocol.fields import FROZEN, EpochSeconds, Sha256Hex

Slug = Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,64}$")]


class ConsentReceiptRef(BaseModel):
    """The consent grant a batch's records rest on (a summary of the ledger's grant receipt)."""

    model_config = FROZEN

    receipt_id: str = Field(min_length=1, max_length=64)
    category: Category
    notice_id: Slug
    notice_version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")]
    notice_sha256: Sha256Hex
    lawful_basis: Slug = "consent"
    purposes: tuple[Slug, ...] = ()
    granted_at: EpochSeconds
