"""The documents that travel with an export: the dataset card (README.md) and the datasheet (DATASHEET.md).

Plain text built from what ``store.export`` wrote: file row counts, the batches' manifests and the
window lengths found in the files. Group sizes below ``MIN_GROUP_SIZE`` are never stated exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from protocol.categories import FileEventKind, RootClass
from protocol.manifest import BatchManifest
from protocol.policy_defaults import DEFAULT_SUBJECT_ROTATION_DAYS, DEFAULT_WINDOW_SECONDS
from protocol.timeutil import utc_text
from protocol.windows import IKI_BIN_EDGES_MS

MIN_GROUP_SIZE = 5  # fleet figures shown outside the steward domain need k >= 5 subjects


def _subjects_text(count: int) -> str:
    return str(count) if count >= MIN_GROUP_SIZE or count == 0 else f"fewer than {MIN_GROUP_SIZE}"


def dataset_card(export_id: str, files: dict[str, int], subjects: int) -> str:
    # One configuration per category: their columns differ, so they cannot be splits of one dataset.
    configs = "\n".join(
        f"- config_name: {Path(rel).stem}\n  data_files:\n  - split: train\n    path: {rel}" for rel in sorted(files)
    )
    rows = "\n".join(f"| {Path(rel).stem} | {n} |" for rel, n in sorted(files.items()))
    first = Path(sorted(files)[0]).stem if files else "keyboard"
    return f"""---
pretty_name: Consentry workstation telemetry export {export_id}
license: other
tags:
- consentry
- telemetry
- consented
configs:
{configs}
---

# Consentry workstation telemetry ({export_id})

Aggregated, consented workstation activity windows (one row per window, per category), exported from a
Consentry on-prem store. Every batch in it was previewed by the employee and approved by the data
stewards; `manifest.json` lists each batch with its approvals and the SHA-256 of every file, and
`export_receipt.json` is this export's entry in the store's verifiable audit log.

| configuration (category) | rows |
|---|---|
{rows}

Subjects: {_subjects_text(subjects)}. `subject` stands for the workstation's pseudonym for one policy period
(it rotates, and is not linkable across periods); there is no device id. `subject` and `batch_id` are
aliases made for this export alone: they link rows within it, and match nothing outside it (not the
store's audit log, not another export).

Every row starts with `subject`, `batch_id`, `receipt_id`, `start`, `end`: `batch_id` finds the batch in
`manifest.json` (its period, consent receipts and steward approvals), `receipt_id` the consent grant the
window was captured under (one of that batch's receipts).

Each category is its own configuration, because their columns differ. From this folder:

```python
import os
import datasets
ds = datasets.load_dataset("parquet", data_files={{"train": "data/{first}.parquet"}})
ds = datasets.load_dataset(os.getcwd(), "{first}")  # the same, through this card's configs
```

See `DATASHEET.md` before using it: consent covers the stated purposes only, and subjects may withdraw.
"""


def _windows_text(lengths: Sequence[int]) -> str:
    default = DEFAULT_WINDOW_SECONDS
    found = " and ".join(f"{n} s" for n in lengths) if lengths else "none"
    return f"to windows of {found} in this export; policy `aggregation_window_seconds`, default {default} s"


def _rotation_text() -> str:
    default = DEFAULT_SUBJECT_ROTATION_DAYS
    return (
        "`subject` is an alias (an HMAC under a key made for this export and not kept) of the digest of a random\n"
        "pseudonym that the workstation replaces every policy period\n"
        f"(`subject_rotation_days`, default {default} days, aligned to the UTC epoch so every workstation rotates at\n"
        "once). A new subject is not derived from the old one, so rows of one person in two periods carry\n"
        "unrelated subjects and a batch never spans two; each period also cites its consent grants under its\n"
        "own `receipt_id` alias. Nothing in this export links them; only the employee's vault (and the\n"
        "store, which authenticates the submitting device) can."
    )


def datasheet(
    export_id: str,
    now: int,
    files: dict[str, int],
    ids: Sequence[str],
    manifests: dict[str, BatchManifest],
    subjects: int,
    *,
    windows: Sequence[int] = (),
) -> str:
    notices: set[tuple[str, str, str, str, str, str]] = set()
    for b in ids:
        for r in manifests[b].consent_receipts:
            notices.add(
                (
                    r.category.value,
                    r.notice_id,
                    r.notice_version,
                    r.notice_sha256[:16],
                    r.lawful_basis,
                    ",".join(r.purposes) or "-",
                )
            )
    notice_rows = "\n".join(f"| {' | '.join(n)} |" for n in sorted(notices)) or "| - | - | - | - | - | - |"
    periods = [(manifests[b].period_start, manifests[b].period_end) for b in ids]
    span = (
        f"{utc_text(min(p[0] for p in periods))} to {utc_text(max(p[1] for p in periods))} (UTC)"
        if periods
        else "empty"
    )
    counts = "\n".join(f"- `{rel}`: {n} rows" for rel, n in sorted(files.items())) or "- no records"
    return f"""# Datasheet: Consentry export {export_id}

Following Gebru et al., "Datasheets for Datasets" (2021).

## Motivation
Created to train and evaluate models of workstation work patterns (typing rhythm classes, pointer
activity, application focus, file activity) from employees who opted in, category by category.
Created by the store operator on {utc_text(now)} (UTC) with `consentry store export`.

## Composition
{counts}

{len(ids)} batches; subjects: {_subjects_text(subjects)}; period {span}.
Each row summarises one aggregation window and names its batch (`batch_id`, an alias for this export only;
`manifest.json` gives the batch's period, consent receipts and approving stewards) and the consent grant it was captured under
(`receipt_id`, a receipt of the table below). There is no free text: keys are classes (letter, digit,
...), inter-key intervals are a coarse histogram (bins {list(IKI_BIN_EDGES_MS)} ms), applications are
allow-listed categories or per-batch pseudonyms (`anon:`; unlinkable across batches), files are
`{{root_class, depth, extension}}` with root classes {[r.value for r in RootClass]} and kinds
{[k.value for k in FileEventKind]}. No window titles, characters, paths, names or device ids.
{_rotation_text()}

## Collection process
Captured on employees' workstations by the Consentry agent, only for categories the employee granted
(consent, GDPR Art. 6(1)(a) unless stated below), aggregated on the workstation, held for employee
preview and veto, then approved by the data stewards (M-of-N signatures) before upload.
Consent basis and notice versions of the records in this export:

| category | notice | version | notice sha256 | lawful basis | purposes |
|---|---|---|---|---|---|
{notice_rows}

## Preprocessing
On the workstation: key presses classified in the input callback, windows aggregated ({_windows_text(windows)}),
application tokens re-keyed per batch (HMAC-SHA-256 under a discarded per-batch key). In the store:
records validated against the window schema and privacy checks; flattened to one column per key class
and mouse button for Parquet.

## Uses
Intended: research and models of aggregate work patterns within the purposes listed above.
Not allowed: evaluating, ranking or monitoring individual employees; re-identifying subjects; any use
outside the consented purposes. Fleet statistics shown outside the steward domain need at least
{MIN_GROUP_SIZE} subjects per group.

## Distribution
Internal to the organisation; not for publication. `manifest.json` lists every file's SHA-256 and the
steward approvals each batch rests on; `export_receipt.json` proves this export is in the audit log.

## Maintenance
Subjects may withdraw at any time. An erasure deletes their data from the store and marks this export
as containing erased data; holders must then delete this copy and re-export.
Contact: the data stewards named in the store's configuration.
"""
