"""What an erasure did to released data, in words for the employee (from the store's erasure receipts)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def released_data_sentence(receipts: Iterable[dict[str, Any]]) -> str:
    """e.g. "2 dataset releases that held your data were rewritten without it, and 1 training run that
    used them was told to retrain or unlearn." Counts are summed over the receipts (one per pseudonym)."""
    rewritten = runs = 0
    for receipt in receipts:
        body = receipt.get("log", {}).get("entry", {}).get("body", {})
        rewritten += int(body.get("releases_rewritten", 0) or 0)
        runs += int(body.get("runs_notified", 0) or 0)
    if not rewritten and not runs:
        return "No dataset release held your data, so no training run had to be told."
    return (
        f"{_plural(rewritten, 'dataset release that held your data was', 'dataset releases that held your data were')} "
        f"rewritten without it, and {_plural(runs, 'training run that used it was', 'training runs that used them were')} "
        "told to retrain or unlearn."
    )
