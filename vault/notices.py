"""The notice an employee reads before granting a category: shipped text, versioned, hashed.

The grant receipt records the notice's id, version and the SHA-256 of the exact text shown (the
template plus every term the machine policy sets: purposes, time window, retention, recipients and
the store's key), so it can later be proved what the employee agreed to. A new version, or terms
wider than those shown, suspends the grant until re-consent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

from protocol.categories import Category

NOTICE_DIR = Path(__file__).with_name("notices")


# Records read by every CLI command are NamedTuples: immutable like a frozen dataclass, and about a
# fifth of its cost to define when the command starts (docs/architecture.md, "Start-up").
class Terms(NamedTuple):
    """The terms a grant covers, as the machine policy sets them (see vault.consent.widening)."""

    purposes: tuple[str, ...]
    window_seconds: int
    retention_days: int
    recipients: tuple[str, ...]
    store_key_sha256: str | None
    file_extensions: tuple[str, ...] | None = None  # files only: which extensions are recorded
    # Since receipt v3: the release and exclusion terms (None in an older receipt, which did not record them).
    hold_hours: float | None = None
    subject_rotation_days: int | None = None
    excluded_apps: tuple[str, ...] | None = None  # IT's exclusion list (the built-in ones and IT's own)
    app_categories: tuple[tuple[str, str], ...] | None = None  # apps only: applications named by category
    approvals_required: int | None = None
    stewards_sha256: str | None = None  # SHA-256 of the data stewards' public keys, sorted
    # Who is responsible (policy [organisation]): name, controller, contact, works-council reference
    # ("" when none); None when IT named nobody, so such a notice reads exactly as before.
    organisation: tuple[str, str, str, str] | None = None
    controller: str | None = None  # what a receipt records of it: a new controller suspends a grant


class Notice(NamedTuple):
    category: Category
    notice_id: str
    version: int
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def rendered(self, terms: Terms) -> str:
        """The exact text shown at grant time; the receipt hashes this, not the template."""
        lines = [
            f"{self.text.rstrip()}\n",
            f"Purposes: {', '.join(terms.purposes)} (training internal models of how work is done).",
            f"Time window: {terms.window_seconds} seconds per record.",
            f"Retention on this computer: {terms.retention_days} days.",
            f"Recipients of approved batches: {', '.join(terms.recipients)}.",
        ]
        if terms.store_key_sha256 is not None:
            lines.append(f"Store key (SHA-256): {terms.store_key_sha256}.")
        if terms.file_extensions is not None:
            lines.append(f"File extensions recorded: {', '.join(terms.file_extensions) or 'none'}.")
        if terms.hold_hours is not None:
            lines.append(
                f"Hold before a batch is sent for review: {terms.hold_hours:g} hours (to preview and veto it)."
            )
        if terms.subject_rotation_days is not None:
            lines.append(f"Pseudonym in batches: a new one every {terms.subject_rotation_days} days.")
        if terms.approvals_required is not None:
            stewards = f" (data stewards' keys, SHA-256: {terms.stewards_sha256})" if terms.stewards_sha256 else ""
            lines.append(f"Data steward approvals needed per batch: {terms.approvals_required}{stewards}.")
        if terms.excluded_apps is not None:
            lines.append(f"Applications during which nothing is captured: {', '.join(terms.excluded_apps)}.")
        if terms.app_categories is not None:
            named = (
                ", ".join(f"{app} as {kind}" for app, kind in terms.app_categories) or "none beyond the built-in list"
            )
            lines.append(f"Applications your company names by category: {named}.")
        if terms.organisation is not None:
            name, controller, contact, works_council = terms.organisation
            lines.append(f"Organisation: {name}. Data controller: {controller}. Questions: {contact}.")
            if works_council:
                lines.append(f"Works-council agreement: {works_council}.")
        lines.append(f"Notice {self.notice_id} version {self.version}.")
        return "\n".join(lines) + "\n"


def _parse(category: Category, raw: str) -> Notice:
    if not raw.startswith("---\n"):
        raise ValueError(f"notice for {category} has no front matter")
    head, _, text = raw[4:].partition("\n---\n")
    fields = dict(line.split(": ", 1) for line in head.splitlines() if line.strip())
    return Notice(category=category, notice_id=fields["id"], version=int(fields["version"]), text=text.lstrip("\n"))


def load_notice(category: Category) -> Notice:
    # A plain path, not importlib.resources: the notices ship inside the package directory, and
    # importlib.resources pulls zipfile into every CLI start-up.
    raw = (NOTICE_DIR / f"{category.value}.md").read_text(encoding="utf-8")
    return _parse(category, raw)
