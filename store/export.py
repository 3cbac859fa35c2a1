"""Dataset export for ML engineers: Parquet per category, a dataset card, a datasheet and a manifest.

Layout of ``OUT`` (which must be empty or absent; made 0700, every file 0600: it holds personal data)::

    data/<category>.parquet   zstd; one row per window record; no device id; each row names its subject,
                              its batch (``batch_id``) and consent grant (``receipt_id``). ``subject`` and
                              ``batch_id`` are aliases for this export only (``ExportAliases``): keyed
                              HMACs under a key made for the export and never kept, so they join rows
                              within the export and to nothing outside it (not the audit log, not another
                              export, not the store's tables)
    README.md                 dataset card (YAML front matter lists the files, one split per category)
    DATASHEET.md              Gebru et al. "Datasheets for Datasets" sections (both: ``store.export_docs``)
    manifest.json             SHA-256 and row count per file; every batch with its period, the consent
                              receipts and the steward approvals it rests on
    export_receipt.json       the audit-log receipt of this export (names manifest.json's SHA-256)

``datasets.load_dataset("parquet", data_files={"train": "OUT/data/keyboard.parquet"})`` reads one category
(their columns differ, so each is its own configuration; docs/release.md runs this as a test).
Only stored, non-erased batches are exported; an erasure afterwards marks the export in the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from protocol.approval import CountedDecision
from protocol.auditlog import LogEntry, LogReceipt
from protocol.categories import Category, KeyClass, MouseButton
from protocol.manifest import BatchManifest, read_manifest
from store import review_set_storage
from store.audit import append_entry
from store.backend import StoreBackend, StoredRecord
from store.export_docs import dataset_card, datasheet
from store.keys import StoreKeys
from store.record_keys import RecordKeyring, seal_legacy_records

_CHUNK = 200
_TS = pa.timestamp("s", tz="UTC")
_COMMON = [
    ("subject", pa.string()),
    ("batch_id", pa.string()),  # -> manifest.json "batches": period, consent receipts, approvals
    ("receipt_id", pa.string()),  # the consent grant the window was captured under
    ("start", _TS),
    ("end", _TS),
]
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


class ExportAliases:
    """The subject and batch ids one export shows: HMAC-SHA-256 under a random key that dies with this object.

    Why: the store's batch ids are in the audit log next to device key ids, and its subject digests
    next to devices in its tables; rows carrying them would let anyone with a view of the log link one
    device's subjects across rotation periods. An alias links the rows of one subject (or batch) within
    the export, which training needs, and nothing else: the key is not stored, so not even the store
    can map an alias back, and two exports alias the same batch differently.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _alias(self, kind: bytes, value: str) -> str:
        return hmac.new(self._key, kind + b"\0" + value.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def subject(self, subject_digest: str) -> str:
        return self._alias(b"subject", subject_digest)

    def batch(self, batch_id: str) -> str:
        return self._alias(b"batch", batch_id)


def _row(record: StoredRecord, body: dict[str, Any], aliases: ExportAliases) -> dict[str, Any]:
    row: dict[str, Any] = {
        "subject": aliases.subject(record.subject),
        "batch_id": aliases.batch(record.batch_id),
        "receipt_id": body["receipt_id"],
        "start": body["start"],
        "end": body["end"],
    }
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


def _private_folder(path: Path) -> None:
    """Create ``path`` 0700 (or make an existing, empty one 0700): the export is personal data."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is cut by the umask, and an existing folder keeps its own


def _private_file(path: Path) -> Any:
    """A new file opened for writing, 0600 from its creation on (never readable by others, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _write_private(path: Path, data: bytes) -> None:
    with _private_file(path) as handle:
        handle.write(data)


def export_parquet(
    backend: StoreBackend,
    keys: StoreKeys,
    out: Path,
    *,
    now: int,
    progress: Callable[[int], None] | None = None,
    export_id: str | None = None,
    break_glass: dict[str, str] | None = None,  # {"operator", "reason"}: logged with the export (admin/store_cmd.py)
) -> ExportResult:
    """Write the export described in the module docstring; ``progress(n)`` is called per n batches done."""
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; export into a new folder")
    export_id = export_id or uuid.uuid4().hex
    keyring = RecordKeyring(keys.records)
    keyring.rotate_if_due(backend)  # an erasure's KEK rotation left unfinished: the export never reads under it
    seal_legacy_records(backend, keyring, now)  # records of an older store are sealed before anything is read
    review_set_storage.ensure_tables(backend)  # a store that never served review sets has none
    with backend.transaction() as tx:
        batches = tx.stored_batches()
        # Single approvals and review-set inclusions (store.review_sets) alike.
        approvals = {b.batch_id: review_set_storage.decisions(tx, b.batch_id) for b in batches}
    manifests = {b.batch_id: read_manifest(b.manifest_json) for b in batches if b.manifest_json}
    ids = [b.batch_id for b in batches if b.batch_id in manifests]
    _private_folder(out)
    _private_folder(out / "data")
    files: dict[str, int] = {}
    subjects: set[str] = set()
    aliases = ExportAliases()
    for category, schema in SCHEMAS.items():
        path = out / "data" / f"{category.value}.parquet"
        rows = _write_category(backend, keyring, category, schema, ids, path, subjects, aliases, progress)
        if rows:
            files[f"data/{category.value}.parquet"] = rows
        else:
            (out / "data" / f"{category.value}.parquet").unlink(missing_ok=True)
    manifest = _export_manifest(export_id, now, out, files, ids, manifests, approvals, aliases)
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    _write_private(out / "manifest.json", manifest_bytes)
    _write_private(out / "README.md", dataset_card(export_id, files, len(subjects)).encode("utf-8"))
    sheet = datasheet(export_id, now, files, ids, manifests, len(subjects), windows=_window_lengths(out, files))
    _write_private(out / "DATASHEET.md", sheet.encode("utf-8"))
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
        if break_glass is not None:
            body["break_glass"] = dict(break_glass)
        receipt = append_entry(tx, keys.log, LogEntry(v=1, kind="export", time=now, body=body))
    _write_private(out / "export_receipt.json", (receipt.model_dump_json(indent=2) + "\n").encode("utf-8"))
    return ExportResult(export_id, out, files, len(ids), len(subjects), receipt)


def _write_category(
    backend: StoreBackend,
    keyring: RecordKeyring,
    category: Category,
    schema: pa.Schema,
    ids: Sequence[str],
    path: Path,
    subjects: set[str],
    aliases: ExportAliases,
    progress: Callable[[int], None] | None,
) -> int:
    rows = 0
    with _private_file(path) as handle, pq.ParquetWriter(handle, schema, compression="zstd") as writer:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            with backend.transaction() as tx:  # short transactions: an export never blocks uploads for long
                # Decrypted under the subject keys read in the same transaction: a subject erased
                # meanwhile has no key left, and its records are skipped.
                records = list(keyring.open_records(tx, tx.iter_records(category.value, chunk)))
            if records:
                subjects.update(r.subject for r, _ in records)
                writer.write_table(pa.Table.from_pylist([_row(r, body, aliases) for r, body in records], schema=schema))
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
    approvals: dict[str, list[CountedDecision]],
    aliases: ExportAliases,
) -> dict[str, Any]:
    """What the export rests on, per batch alias: period, counts, consent receipts, approving stewards.

    Neither the store's batch id nor the manifest digest nor the signed approvals (which name both) are
    written: each would join the export to the audit log. The stewards who approved are named by key;
    the signed approvals stay in the store, where review and ``store verify-log`` check them.
    """
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
                "batch_id": aliases.batch(b),
                "record_counts": {str(k): v for k, v in manifests[b].record_counts.items()},
                "period": {"from": manifests[b].period_start, "to": manifests[b].period_end},
                "receipts": [r.model_dump(mode="json") for r in manifests[b].consent_receipts],
                "approvals": sorted(
                    ({"steward_key": a.steward_key} for a in approvals.get(b, []) if a.decision == "approve"),
                    key=lambda a: a["steward_key"],
                ),
            }
            for b in sorted(ids, key=aliases.batch)  # alias order: the store's order says nothing either
        ],
    }


def _window_lengths(out: Path, files: dict[str, int]) -> list[int]:
    """The distinct window lengths (seconds) in the written files: the datasheet states what is there."""
    lengths: set[int] = set()
    for rel in files:
        table = pq.read_table(out / rel, columns=["start", "end"])
        for start, end in zip(table["start"].to_pylist(), table["end"].to_pylist(), strict=True):
            lengths.add(int((end - start).total_seconds()))
    return sorted(lengths)
