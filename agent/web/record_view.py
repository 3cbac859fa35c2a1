"""One window record on the employee's page: the sentence a person reads, the raw values one click away.

Drawn by the ``record_cell`` macro in agent/web/templates/records.html.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from agent.words import record_in_words


class ShownRecord(NamedTuple):
    words: str  # the record as a sentence
    exact: str  # its exact stored values, as indented JSON


def shown_record(record: Mapping[str, Any]) -> ShownRecord:
    """What the page shows of a record (its JSON form): the words, and the values without the window's frame."""
    values = {k: v for k, v in record.items() if k not in ("start", "end", "category")}
    return ShownRecord(record_in_words(record), json.dumps(values, sort_keys=True, indent=1))


def receipt_link_rows(
    links: Mapping[str, str | None], granted: Mapping[str, tuple[str, str]]
) -> list[tuple[str, str, str, str]]:
    """Rows tying each alias a batch cites to the grant My data lists: (alias, own id, category, granted)."""
    rows = []
    for alias, own in sorted(links.items()):
        category, when = granted.get(own or "", ("-", "-"))
        rows.append((alias, own or "no grant on this computer has this alias", category, when))
    return rows
