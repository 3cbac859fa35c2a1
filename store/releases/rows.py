"""The rows of a dataset release: one wide Arrow schema for every category, lineage columns, column dictionary.

One schema for the whole release table (not one per category, as ``store export`` writes): an open table
format keeps one schema per table, and one table is what lets each release be a snapshot of it, an
erasure be one row-level delete, and a reader (DuckDB, Ray, ``datasets``) load a release in one call.
Each row names its ``category``; the columns of the other categories are null in it. No JSON column:
every value keeps its type, and the column dictionary can say what each one means.

Lineage columns, first in every row:

    release_id   the release this row was built for (a partition: a release's files hold only its rows)
    category     keyboard, mouse, apps or files (a partition)
    subject      the subject's pseudonym *for this release*: HMAC-SHA-256 of the store's subject digest
                 under a key made for the release and kept only in the store's catalog. Rows of one
                 subject join within a release, and to nothing outside it (not another release, not the
                 audit log); the store alone can find a subject's rows again, which erasure needs.
    batch_ref    the batch the row came from, aliased the same way (release-scoped, joins nothing outside)
    receipt_id   the consent grant the window was captured under
    start, end   the window, as UTC timestamps (a reader shows a date and time, not epoch seconds)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa
from pydantic import BaseModel

from protocol.categories import Category, KeyClass, MouseButton
from protocol.record_words import FIELDS
from protocol.windows import AppFocus, AppsWindow, FileEventCount, FilesWindow, KeyboardWindow, MouseWindow

_TS = pa.timestamp("us", tz="UTC")  # Iceberg's timestamptz is microseconds


class ReleaseRecord(Protocol):
    """A stored record opened for a release: ``store.backend.StoredRecord``'s fields plus its decrypted body."""

    @property
    def batch_id(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def body(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class OpenedRecord:
    """The simplest ``ReleaseRecord``: what ``RecordKeyring.open_records`` yields, as one object."""

    batch_id: str
    subject: str
    category: str
    body: dict[str, Any]


class ReleaseAliases:
    """The release-scoped pseudonyms of subjects and batches, under the release's own 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a release alias key is 32 bytes")
        self._key = key

    @classmethod
    def new(cls) -> ReleaseAliases:
        return cls(secrets.token_bytes(32))

    @property
    def key(self) -> bytes:
        return self._key

    def _alias(self, kind: bytes, value: str) -> str:
        return hmac.new(self._key, kind + b"\0" + value.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def subject(self, subject_digest: str) -> str:
        return self._alias(b"subject", subject_digest)

    def batch(self, batch_id: str) -> str:
        return self._alias(b"batch", batch_id)


# (name, arrow type, unit, the model and field whose description is the meaning, or a meaning of our own)
_LINEAGE: list[tuple[str, pa.DataType, str, str]] = [
    ("release_id", pa.string(), "", "the release this row was built for"),
    ("category", pa.string(), "", "the data category of the window: keyboard, mouse, apps or files"),
    ("subject", pa.string(), "", "the subject's pseudonym in this release only (joins nothing outside it)"),
    ("batch_ref", pa.string(), "", "the batch the row came from, aliased for this release only"),
]
_FOCUS = pa.struct([("app", pa.string()), ("seconds", pa.float64())])
_EVENT = pa.struct(
    [
        ("root_class", pa.string()),
        ("depth", pa.int64()),
        ("ext", pa.string()),
        ("kind", pa.string()),
        ("count", pa.int64()),
    ]
)
# Columns taken from the window models: (column, arrow type, unit, model, field). The meaning is the
# field's own description in protocol/windows.py, so the dictionary cannot drift from the schema.
_WINDOW_COLUMNS: list[tuple[str, pa.DataType, str, type[BaseModel], str]] = [
    ("receipt_id", pa.string(), "", KeyboardWindow, "receipt_id"),
    ("start", _TS, "UTC time", KeyboardWindow, "start"),
    ("end", _TS, "UTC time", KeyboardWindow, "end"),
    *[(f"keys_{k.value}", pa.int64(), f"{k.value} key presses", KeyboardWindow, "key_counts") for k in KeyClass],
    ("iki_histogram", pa.list_(pa.int64()), "intervals per bin", KeyboardWindow, "iki_histogram"),
    ("bursts", pa.int64(), "bursts", KeyboardWindow, "bursts"),
    ("longest_burst", pa.int64(), "key presses", KeyboardWindow, "longest_burst"),
    ("pauses", pa.int64(), "pauses", KeyboardWindow, "pauses"),
    ("correction_ratio", pa.float64(), "ratio 0..1", KeyboardWindow, "correction_ratio"),
    ("sparse", pa.bool_(), "", KeyboardWindow, "sparse"),
    *[(f"clicks_{b.value}", pa.int64(), f"{b.value} clicks", MouseWindow, "clicks") for b in MouseButton],
    ("scroll_steps", pa.int64(), "scroll steps", MouseWindow, "scroll_steps"),
    ("moves", pa.int64(), "move events", MouseWindow, "moves"),
    ("distance_px", pa.float64(), "pixels", MouseWindow, "distance_px"),
    ("idle_seconds", pa.float64(), "seconds", MouseWindow, "idle_seconds"),
    ("focus", pa.list_(_FOCUS), "seconds per application token", AppsWindow, "focus"),
    ("switches", pa.int64(), "switches", AppsWindow, "switches"),
    ("events", pa.list_(_EVENT), "events per (root class, depth, extension, kind)", FilesWindow, "events"),
]

RELEASE_SCHEMA = pa.schema(
    [(name, dtype) for name, dtype, _, _ in _LINEAGE] + [(name, dtype) for name, dtype, *_ in _WINDOW_COLUMNS]
)
_NESTED: dict[str, type[BaseModel]] = {"focus": AppFocus, "events": FileEventCount}


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    type: str
    unit: str
    meaning: str


def _meaning(model: type[BaseModel], field: str) -> str:
    info = model.model_fields[field]
    text = info.description or ""
    nested = _NESTED.get(field)
    if nested is not None:
        parts = [f"{n}: {f.description}" for n, f in nested.model_fields.items() if f.description]
        if parts:
            text = f"{text} ({'; '.join(parts)})" if text else "; ".join(parts)
    return text


def column_dictionary() -> list[ColumnDoc]:
    """Every column of ``RELEASE_SCHEMA`` with its type, unit and meaning (from the window models' fields)."""
    docs = [ColumnDoc(name, str(dtype), unit, meaning) for name, dtype, unit, meaning in _LINEAGE]
    for name, dtype, unit, model, field in _WINDOW_COLUMNS:
        meaning = _meaning(model, field)
        if pa.types.is_timestamp(dtype):  # the model's epoch seconds, written here as a readable UTC time
            meaning = f"{FIELDS['common'][field].meaning} (a UTC timestamp)"
        docs.append(ColumnDoc(name, str(dtype), unit, meaning))
    return docs


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _row(record: ReleaseRecord, release_id: str, aliases: ReleaseAliases) -> dict[str, Any]:
    body = record.body
    row: dict[str, Any] = {
        "release_id": release_id,
        "category": record.category,
        "subject": aliases.subject(record.subject),
        "batch_ref": aliases.batch(record.batch_id),
        "receipt_id": body["receipt_id"],
        "start": _utc(body["start"]),
        "end": _utc(body["end"]),
    }
    category = Category(record.category)
    if category == Category.KEYBOARD:
        for k in KeyClass:
            row[f"keys_{k.value}"] = body["key_counts"].get(k.value, 0)
        for name in ("iki_histogram", "bursts", "longest_burst", "pauses", "correction_ratio"):
            row[name] = body[name]
        row["sparse"] = body.get("sparse", False)
    elif category == Category.MOUSE:
        for b in MouseButton:
            row[f"clicks_{b.value}"] = body["clicks"].get(b.value, 0)
        for name in ("scroll_steps", "moves", "distance_px", "idle_seconds"):
            row[name] = body[name]
    elif category == Category.APPS:
        row["focus"] = body["focus"]
        row["switches"] = body["switches"]
    else:
        row["events"] = body["events"]
    return row


def release_rows(records: Iterable[ReleaseRecord], release_id: str, aliases: ReleaseAliases) -> pa.Table:
    """The Arrow table of ``records`` for ``release_id`` in ``RELEASE_SCHEMA`` (pseudonyms under ``aliases``)."""
    rows = [_row(r, release_id, aliases) for r in records]
    return pa.Table.from_pylist(rows, schema=RELEASE_SCHEMA)
