"""One window record on the employee's page: the sentence a person reads, the raw values one click away."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.words import record_in_words
from kit.web.html import esc


def record_cell(record: Mapping[str, Any]) -> str:
    """HTML for a record: its words, and its exact stored values in a fold (trusted markup, escaped here)."""
    values = {k: v for k, v in record.items() if k not in ("start", "end", "category")}
    return (
        f'<span class="record-words">{esc(record_in_words(record))}</span>'
        '<details class="raw"><summary>Exact values (JSON)</summary>'
        f'<pre class="mono">{esc(json.dumps(values, sort_keys=True, indent=1))}</pre></details>'
    )


def receipt_link_rows(
    links: Mapping[str, str | None], granted: Mapping[str, tuple[str, str]]
) -> list[tuple[str, str, str, str]]:
    """Rows tying each alias a batch cites to the grant My data lists: (alias, own id, category, granted)."""
    rows = []
    for alias, own in sorted(links.items()):
        category, when = granted.get(own or "", ("-", "-"))
        rows.append((alias, own or "no grant on this computer has this alias", category, when))
    return rows
