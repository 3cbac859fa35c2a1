"""The documents of a release: its dataset card (README.md, Hugging Face front matter) and its datasheet.

Both are generated from what the store already holds and the stewards approved -- the release manifest
(purpose, period, exclusions by reason and category, k-check, licence and contact), the stewards'
decisions, the build -- plus the column dictionary (``store.releases.rows.column_dictionary``, whose
meanings come from the record schemas). Times are written as UTC dates and times, never epoch seconds.

``consentry dataset build`` writes them to ``DATA/data/release-cards/<release_id>/`` (0700/0600);
``consentry dataset card RELEASE_ID --out DIR`` gives the consumer a folder with both documents and the
snapshot's Parquet files linked under ``data/`` (links, not copies: an erasure's expiry removes their
targets), which ``datasets.load_dataset(DIR)`` reads through the card's ``configs``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.releases.requests import utc
from store.releases.rows import column_dictionary

CARD_NAME = "README.md"
DATASHEET_NAME = "DATASHEET.md"
CARDS_FOLDER = "release-cards"  # under the store's DATA/data, beside the release table's warehouse


class EmptyReleaseCard(ValueError):
    """A release with no rows gets no card: ``datasets`` cannot load an empty release."""


@dataclass(frozen=True)
class Approval:
    steward: str
    steward_key: str
    decision: str
    at: int  # epoch seconds, written as a UTC time


@dataclass(frozen=True)
class ReleaseFacts:
    """What the documents are made of (``release_facts`` collects it from the store)."""

    release_id: str
    manifest: dict[str, Any]
    manifest_sha256: str
    approvals: tuple[Approval, ...]
    built_at: int
    rows: int  # rows in the release now
    rows_by_category: dict[str, int]
    subjects: int


def _subjects(count: int, k: int) -> str:
    """A group size as the card may state it: below k, never exactly."""
    return str(count) if count >= k or count == 0 else f"fewer than {k}"


def _columns_table() -> str:
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    for doc in column_dictionary():
        meaning = doc.meaning.replace("|", "/").replace("\n", " ")
        lines.append(f"| `{doc.name}` | {doc.type} | {doc.unit or '-'} | {meaning} |")
    return "\n".join(lines)


def _approvals_table(facts: ReleaseFacts) -> str:
    lines = ["| steward | key (Ed25519, base64) | decision | signed at |", "|---|---|---|---|"]
    for a in facts.approvals:
        lines.append(f"| {a.steward} | `{a.steward_key}` | {a.decision} | {utc(a.at)} |")
    return "\n".join(lines)


def _exclusions_table(manifest: dict[str, Any], k: int) -> str:
    words = {
        "purpose": "a consent receipt does not list the purpose",
        "retention": "past the retention",
        "erasure": "the subject erased (counted over all categories)",
    }
    lines = ["| reason | category | records | subjects |", "|---|---|---|---|"]
    for reason, by_category in manifest["excluded"].items():
        for category, counts in sorted(by_category.items()):
            lines.append(
                f"| {words.get(reason, reason)} | {category} | {counts['records']} | "
                f"{_subjects(counts['subjects'], k)} |"
            )
    if len(lines) == 2:
        lines.append("| none | - | 0 | 0 |")
    return "\n".join(lines)


def _k_table(manifest: dict[str, Any]) -> str:
    k = manifest["privacy_checks"]["k_distinct_subjects"]
    lines = [f"At least {k['k']} distinct subjects in every category released:", ""]
    lines += ["| category | distinct subjects at request | passed |", "|---|---|---|"]
    for category, check in sorted(k["by_category"].items()):
        lines.append(f"| {category} | {check['subjects']} | {'yes' if check['passed'] else 'no'} |")
    return "\n".join(lines)


def _yaml_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dataset_card(facts: ReleaseFacts) -> str:
    """README.md: Hugging Face front matter (``configs`` read ``data/*.parquet``), then the card in words."""
    if facts.rows == 0:
        raise EmptyReleaseCard(
            f"release {facts.release_id} holds no rows now (every row was erased or passed its retention): "
            "no card is written, because there is nothing a reader could load. Request a new release."
        )
    m = facts.manifest
    k = int(m["privacy_checks"]["k_distinct_subjects"]["k"])
    per_category = "\n".join(f"| {c} | {n} |" for c, n in sorted(facts.rows_by_category.items()))
    return f"""---
pretty_name: {_yaml_text(f"Consentry release {facts.release_id}")}
license: other
license_name: {_yaml_text(m["licence"])}
tags:
- consentry
- telemetry
- consented
configs:
- config_name: default
  data_files:
  - split: train
    path: data/*.parquet
---

# Consentry release {facts.release_id}

Aggregated, consented workstation activity windows, one row per window, released from a Consentry
on-prem store for **one purpose: `{m["purpose"]}`** ({m["description"]}). Every record in it was captured
under a consent receipt that lists that purpose, within the retention, of an employee who had not erased.

- Requested by: {m["consumer"]} on {m["requested_at"]}
- Period: {m["period"]["from"]} to {m["period"]["to"]}
- Categories: {", ".join(m["categories"])}
- Built: {utc(facts.built_at)}, as the snapshot tagged `release/{facts.release_id}` of the store's release table
- Rows now: {facts.rows} of {_subjects(facts.subjects, k)} subjects (rows erased or past retention since the build are gone)
- Retention: a row leaves the release {m["retention_days"]} days after its window ended
- Licence: {m["licence"]}
- Contact: {m["contact"]}
- Release manifest SHA-256 (what the stewards signed): `{facts.manifest_sha256}`

| category | rows |
|---|---|
{per_category}

## Approvals

{_approvals_table(facts)}

## Privacy checks

{_k_table(m)}

No free text: {m["privacy_checks"]["no_free_text"]}.
Time granularity: {m["privacy_checks"]["time_granularity"]}.

## Excluded from this release

{_exclusions_table(m, k)}

## Columns

Every row names its `category`; the columns of the other categories are null in it.

{_columns_table()}

## Your duties

Record every training or evaluation run that reads this release before it reads it
(`consentry dataset use {facts.release_id} --run NAME`). When an employee erases, the runs recorded on
a release that held their rows are marked "trained on erased data: retrain or unlearn". Use the data
for the purpose above only. See `DATASHEET.md`.

From this folder:

```python
import os
import datasets
train = datasets.load_dataset(os.getcwd())["train"]
```
"""


def datasheet(facts: ReleaseFacts) -> str:
    """DATASHEET.md (Gebru et al.'s questions), from the same facts as the card."""
    if facts.rows == 0:
        dataset_card(facts)  # raises, with the same words
    m = facts.manifest
    k = int(m["privacy_checks"]["k_distinct_subjects"]["k"])
    eligible = "\n".join(
        f"- {c}: {v['records']} records of {_subjects(v['subjects'], k)} subjects"
        for c, v in sorted(m["eligible"].items())
    )
    linkable = "\n".join(f"- `{c}`: {why}" for c, why in m["privacy_checks"]["linkable_columns"].items())
    return f"""# Datasheet: Consentry release {facts.release_id}

Following Gebru et al., "Datasheets for Datasets" (2021).

## Motivation
Requested by {m["consumer"]} on {m["requested_at"]} for the purpose `{m["purpose"]}`: {m["description"]}.
Approved by {sum(1 for a in facts.approvals if a.decision == "approve")} of the store's stewards
({m["approvals_required"]} required), signed over the release manifest's SHA-256 `{facts.manifest_sha256}`:

{_approvals_table(facts)}

## Composition
Eligible when requested ({m["computed_at"]}):
{eligible}

Built on {utc(facts.built_at)}; it holds {facts.rows} rows now. Each row is one aggregation window of one
category for one subject. `subject` and `batch_ref` are pseudonyms made for this release only: they link
rows within it and match nothing outside it. `receipt_id` names the consent grant the window was captured
under. Columns that can link rows:
{linkable}

## Collection process
Captured on employees' workstations by the Consentry agent, only for categories the employee granted,
aggregated on the workstation, held for the employee's preview and veto, approved by the data stewards
before upload, and released only after a second steward approval of this release's manifest.

## Preprocessing and exclusions
At build every record was re-checked: its own consent receipt lists the purpose, its window ended within
the retention ({m["retention_days"]} days), its subject still has a key. Excluded, by reason and category:

{_exclusions_table(m, k)}

{_k_table(m)}

## Uses
For `{m["purpose"]}` only. Not for decisions about an individual employee, not for monitoring
performance, not to re-identify anyone.

## Distribution
{m["licence"]}. Read it from the store's release table (tag `release/{facts.release_id}`); copies outside
it are not reached by erasure, so do not keep any.

## Maintenance
Rows leave the release when their subject erases and when they pass the retention; older snapshots and
their files are removed after the store's grace period. Questions: {m["contact"]}.
"""


def write_documents(folder: Path, facts: ReleaseFacts) -> tuple[Path, Path]:
    """Write README.md and DATASHEET.md into ``folder`` (made 0700; files 0600). Refuses an empty release."""
    card, sheet = dataset_card(facts), datasheet(facts)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    paths = (folder / CARD_NAME, folder / DATASHEET_NAME)
    for path, text in zip(paths, (card, sheet), strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o600)
    return paths


def link_data_files(folder: Path, data_files: list[str]) -> list[Path]:
    """``folder/data/part-NNNNN.parquet`` links to the snapshot's files (replacing any older links)."""
    data = folder / "data"
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in data.glob("*.parquet"):
        old.unlink()
    links = []
    for i, target in enumerate(data_files):
        link = data / f"part-{i:05d}.parquet"
        link.symlink_to(target)
        links.append(link)
    return links


def release_facts(backend: Any, stewards: Any, table: Any, release_id: str) -> ReleaseFacts:
    """The facts of a built release: its manifest and decisions from the store, its rows now from the table."""
    import json

    from store.releases import governance_db as db
    from store.releases.governance import ReleaseDecision, ReleaseError

    with backend.transaction() as tx:
        db.ensure_tables(tx)
        row = db.get_release(tx, release_id)
        decisions = [ReleaseDecision.model_validate_json(raw) for raw in db.decisions_json(tx, release_id)]
    if row is None or row.state != "built" or row.built_at is None:
        state = "unknown" if row is None else row.state
        raise ReleaseError(f"release {release_id} is {state}, not built: its card is written when it is built")
    names = {key: name for name, key in stewards.keys.items()}
    approvals = tuple(
        Approval(names.get(d.steward_key, "(no longer a steward)"), d.steward_key, d.decision, d.created)
        for d in decisions
        if d.manifest_sha256 == row.manifest_sha256
    )
    read = table.read(release_id).select(["category", "subject"])
    by_category: dict[str, int] = {}
    for category in read["category"].to_pylist():
        by_category[category] = by_category.get(category, 0) + 1
    return ReleaseFacts(
        release_id,
        json.loads(row.manifest_json),
        row.manifest_sha256,
        approvals,
        int(row.built_at),
        read.num_rows,
        dict(sorted(by_category.items())),
        len(set(read["subject"].to_pylist())),
    )
