"""Dataset export for ML engineers: Parquet per category, a dataset card, a datasheet and a manifest.

Layout of ``OUT`` (which must be empty or absent)::

    data/<category>.parquet   zstd; one row per window record; no device id, subject as a digest
    README.md                 dataset card (YAML front matter lists the files, one split per category)
    DATASHEET.md              Gebru et al. "Datasheets for Datasets" sections
    manifest.json             SHA-256 and row count per file, every batch with the approvals it rests on
    export_receipt.json       the audit-log receipt of this export (names manifest.json's SHA-256)

``datasets.load_dataset("parquet", data_files={"keyboard": "OUT/data/keyboard.parquet", ...})`` reads it.
Only stored, non-erased batches are exported; an erasure afterwards marks the export in the store.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vault.canonical import canonical_json
from vault.categories import Category, FileEventKind, KeyClass, MouseButton, RootClass
from vault.release.approval import Approval
from vault.release.auditlog import LogEntry, LogReceipt
from vault.release.manifest import BatchManifest
from vault.signing import Signer
from vault.store.audit import append_entry
from vault.store.backend import StoreBackend, StoredRecord
from vault.windows import IKI_BIN_EDGES_MS

MIN_GROUP_SIZE = 5  # fleet figures shown outside the steward domain need k >= 5 subjects
_CHUNK = 200
_TS = pa.timestamp("s", tz="UTC")
_COMMON = [("subject", pa.string()), ("start", _TS), ("end", _TS)]
SCHEMAS: dict[Category, pa.Schema] = {
    Category.KEYBOARD: pa.schema(
        _COMMON
        + [(f"keys_{k.value}", pa.int64()) for k in KeyClass]
        + [
            ("iki_histogram", pa.list_(pa.int64())),
            ("bursts", pa.int64()),
            ("longest_burst", pa.int64()),
            ("pauses", pa.int64()),
            ("correction_ratio", pa.float64()),
        ]
    ),
    Category.MOUSE: pa.schema(
        _COMMON
        + [(f"clicks_{b.value}", pa.int64()) for b in MouseButton]
        + [
            ("scroll_steps", pa.int64()),
            ("moves", pa.int64()),
            ("distance_px", pa.float64()),
            ("idle_seconds", pa.float64()),
        ]
    ),
    Category.APPS: pa.schema(
        _COMMON
        + [
            ("focus", pa.list_(pa.struct([("app", pa.string()), ("seconds", pa.float64())]))),
            ("switches", pa.int64()),
        ]
    ),
    Category.FILES: pa.schema(
        _COMMON
        + [
            (
                "events",
                pa.list_(
                    pa.struct(
                        [
                            ("root_class", pa.string()),
                            ("depth", pa.int64()),
                            ("ext", pa.string()),
                            ("kind", pa.string()),
                            ("count", pa.int64()),
                        ]
                    )
                ),
            )
        ]
    ),
}


def _row(record: StoredRecord) -> dict[str, Any]:
    body = record.body
    row: dict[str, Any] = {"subject": record.subject, "start": body["start"], "end": body["end"]}
    if record.category == Category.KEYBOARD:
        for k in KeyClass:
            row[f"keys_{k.value}"] = body["key_counts"].get(k.value, 0)
        for name in ("iki_histogram", "bursts", "longest_burst", "pauses", "correction_ratio"):
            row[name] = body[name]
    elif record.category == Category.MOUSE:
        for b in MouseButton:
            row[f"clicks_{b.value}"] = body["clicks"].get(b.value, 0)
        for name in ("scroll_steps", "moves", "distance_px", "idle_seconds"):
            row[name] = body[name]
    elif record.category == Category.APPS:
        row["focus"] = body["focus"]
        row["switches"] = body["switches"]
    else:
        row["events"] = body["events"]
    return row


@dataclass(frozen=True)
class ExportResult:
    export_id: str
    out: Path
    files: dict[str, int]  # relative path -> rows
    batches: int
    subjects: int
    receipt: LogReceipt


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_parquet(
    backend: StoreBackend,
    log_key: Signer,
    out: Path,
    *,
    now: int,
    progress: Callable[[int], None] | None = None,
    export_id: str | None = None,
) -> ExportResult:
    """Write the export described in the module docstring; ``progress(n)`` is called per n batches done."""
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; export into a new folder")
    export_id = export_id or uuid.uuid4().hex
    with backend.transaction() as tx:
        batches = tx.stored_batches()
        approvals = {
            b.batch_id: [Approval.model_validate_json(a) for a in tx.approvals_json(b.batch_id)] for b in batches
        }
    manifests = {b.batch_id: BatchManifest.model_validate_json(b.manifest_json) for b in batches if b.manifest_json}
    ids = [b.batch_id for b in batches if b.batch_id in manifests]
    (out / "data").mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}
    subjects: set[str] = set()
    for category, schema in SCHEMAS.items():
        rows = _write_category(
            backend, category, schema, ids, out / "data" / f"{category.value}.parquet", subjects, progress
        )
        if rows:
            files[f"data/{category.value}.parquet"] = rows
        else:
            (out / "data" / f"{category.value}.parquet").unlink(missing_ok=True)
    manifest = _export_manifest(export_id, now, out, files, ids, manifests, approvals)
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    (out / "manifest.json").write_bytes(manifest_bytes)
    (out / "README.md").write_text(_card(export_id, files, len(subjects)), encoding="utf-8")
    (out / "DATASHEET.md").write_text(
        _datasheet(export_id, now, files, ids, manifests, len(subjects)), encoding="utf-8"
    )
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    with backend.transaction() as tx:
        tx.insert_export(export_id, now, manifest_sha, sorted(subjects))
        # An erasure that ran while we were reading: mark this export at once.
        erased = [b for b in ids if (row := tx.get_batch(b)) is not None and row.state == "erased"]
        if erased:
            for digest in {tx.get_batch(b).subject_digest for b in erased}:  # type: ignore[union-attr]
                tx.mark_exports_with_subject(digest)
        body = {
            "export_id": export_id,
            "manifest_sha256": manifest_sha,
            "batches": len(ids),
            "files": len(files),
            "rows": sum(files.values()),
        }
        receipt = append_entry(tx, log_key, LogEntry(v=1, kind="export", time=now, body=body))
    (out / "export_receipt.json").write_text(receipt.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return ExportResult(export_id, out, files, len(ids), len(subjects), receipt)


def _write_category(
    backend: StoreBackend,
    category: Category,
    schema: pa.Schema,
    ids: Sequence[str],
    path: Path,
    subjects: set[str],
    progress: Callable[[int], None] | None,
) -> int:
    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            with backend.transaction() as tx:  # short transactions: an export never blocks uploads for long
                records = list(tx.iter_records(category.value, chunk))
            if records:
                subjects.update(r.subject for r in records)
                writer.write_table(pa.Table.from_pylist([_row(r) for r in records], schema=schema))
                rows += len(records)
            if progress is not None:
                progress(len(chunk))
    return rows


def _export_manifest(
    export_id: str,
    now: int,
    out: Path,
    files: dict[str, int],
    ids: Sequence[str],
    manifests: dict[str, BatchManifest],
    approvals: dict[str, list[Approval]],
) -> dict[str, Any]:
    return {
        "v": 1,
        "export_id": export_id,
        "created": now,
        "format": "parquet",
        "compression": "zstd",
        "files": [
            {
                "path": rel,
                "rows": rows,
                "bytes": (out / rel).stat().st_size,
                "sha256": _sha256_file(out / rel),
            }
            for rel, rows in sorted(files.items())
        ],
        "batches": [
            {
                "batch_id": b,
                "manifest_sha256": hashlib.sha256(canonical_json(manifests[b].canonical_dict())).hexdigest(),
                "record_counts": {str(k): v for k, v in manifests[b].record_counts.items()},
                "approvals": [a.model_dump(mode="json") for a in approvals.get(b, []) if a.decision == "approve"],
            }
            for b in ids
        ],
    }


def _subjects_text(count: int) -> str:
    return str(count) if count >= MIN_GROUP_SIZE or count == 0 else f"fewer than {MIN_GROUP_SIZE}"


def _card(export_id: str, files: dict[str, int], subjects: int) -> str:
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

Subjects: {_subjects_text(subjects)}. `subject` is a digest of the workstation's pseudonym; there is no
device id.

Each category is its own configuration, because their columns differ:

```python
import datasets
ds = datasets.load_dataset("parquet", data_files={{"train": "data/{first}.parquet"}})
ds = datasets.load_dataset("path/to/this/folder", "{first}")   # the same, through this card's configs
```

See `DATASHEET.md` before using it: consent covers the stated purposes only, and subjects may withdraw.
"""


def _datasheet(
    export_id: str,
    now: int,
    files: dict[str, int],
    ids: Sequence[str],
    manifests: dict[str, BatchManifest],
    subjects: int,
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
    span = f"{min(p[0] for p in periods)} to {max(p[1] for p in periods)} (UTC epoch seconds)" if periods else "empty"
    counts = "\n".join(f"- `{rel}`: {n} rows" for rel, n in sorted(files.items())) or "- no records"
    return f"""# Datasheet: Consentry export {export_id}

Following Gebru et al., "Datasheets for Datasets" (2021).

## Motivation
Created to train and evaluate models of workstation work patterns (typing rhythm classes, pointer
activity, application focus, file activity) from employees who opted in, category by category.
Created by the store operator on {now} (UTC epoch seconds) with `consentry store export`.

## Composition
{counts}

{len(ids)} batches; subjects: {_subjects_text(subjects)}; period {span}.
Each row summarises one aggregation window. There is no free text: keys are classes (letter, digit,
...), inter-key intervals are a coarse histogram (bins {list(IKI_BIN_EDGES_MS)} ms), applications are
allow-listed categories or per-batch pseudonyms (`anon:`; unlinkable across batches), files are
`{{root_class, depth, extension}}` with root classes {[r.value for r in RootClass]} and kinds
{[k.value for k in FileEventKind]}. No window titles, characters, paths, names or device ids.
`subject` is a SHA-256 digest of a pseudonym that rotates per policy period.

## Collection process
Captured on employees' workstations by the Consentry agent, only for categories the employee granted
(consent, GDPR Art. 6(1)(a) unless stated below), aggregated on the workstation, held for employee
preview and veto, then approved by the data stewards (M-of-N signatures) before upload.
Consent basis and notice versions of the records in this export:

| category | notice | version | notice sha256 | lawful basis | purposes |
|---|---|---|---|---|---|
{notice_rows}

## Preprocessing
On the workstation: key presses classified in the input callback, windows aggregated (default 60 s),
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
