"""A release's rows written as one Parquet file per category under ``DATA/releases/<release_id>/``.

The stand-in ``ReleaseSink`` until the release table (``store/releases/table.py``) is merged: the same
rows as ``store export`` writes (release-scoped subject and batch aliases, UTC timestamps), in a 0700
folder of 0600 files. ``erase_subject`` is not possible on it (the aliases' key is not kept), so lineage
flags the runs and the release folder is removed whole on erasure (see ``lineage.on_erasure``).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from protocol.categories import Category
from store.backend import StoredRecord
from store.export import SCHEMAS, ExportAliases, _private_file, _private_folder, _row


class ParquetReleaseSink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, release_id: str) -> Path:
        return self.root / release_id

    def write(
        self,
        release_id: str,
        records: list[tuple[StoredRecord, dict[str, Any]]],
        *,
        retention_days: int,
        erased: Callable[[], Collection[str]],
    ) -> dict[str, Any]:
        del retention_days  # a folder of files has no housekeeping; erasure removes it whole
        gone = set(erased())  # a folder has no lock to hold against an erasure: filtered as late as it can be
        records = [(r, body) for r, body in records if r.subject not in gone]
        out = self.folder(release_id)
        if out.exists():  # left by a build the store never recorded (it records a build once): replaced
            shutil.rmtree(out)
        _private_folder(self.root)
        _private_folder(out)
        aliases = ExportAliases()  # per release: its aliases join to nothing outside it
        by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record, body in records:
            by_category[record.category].append(_row(record, body, aliases))
        files: dict[str, int] = {}
        for category, rows in sorted(by_category.items()):
            path = out / f"{category}.parquet"
            with _private_file(path) as handle:
                pq.write_table(
                    pa.Table.from_pylist(rows, schema=SCHEMAS[Category(category)]), handle, compression="zstd"
                )
            files[path.name] = len(rows)
        return {"folder": str(out), "files": files}

    def committed(self, release_id: str) -> None:
        """Never: a folder is not written all at once, so one a killed build left is not taken as done."""
        del release_id

    def remove(self, release_id: str) -> bool:
        out = self.folder(release_id)
        if not out.exists():
            return False
        shutil.rmtree(out)
        return True


class TableReleaseSink:
    """The release table (``store.releases.table.ReleaseTable``): each release a tagged Iceberg snapshot."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def write(
        self,
        release_id: str,
        records: list[tuple[StoredRecord, dict[str, Any]]],
        *,
        retention_days: int,
        erased: Callable[[], Collection[str]],
    ) -> dict[str, Any]:
        from store.releases.rows import OpenedRecord, release_rows

        opened = (OpenedRecord(r.batch_id, r.subject, r.category, body) for r, body in records)
        rows = release_rows(opened, release_id, self.table.aliases(release_id))
        return _written(self.table.build(release_id, rows, retention_days=retention_days, erased=erased))

    def committed(self, release_id: str) -> dict[str, Any] | None:
        """The release's snapshot if a build committed it (a table commit is all or nothing)."""
        snapshot = self.table.built_snapshot(release_id)
        return None if snapshot is None else _written(snapshot)


def _written(snapshot: Any) -> dict[str, Any]:
    return {"tag": snapshot.tag, "snapshot_id": snapshot.snapshot_id, "data_files": len(snapshot.data_files)}


def release_table_eraser(table: Any) -> Callable[[str], AbstractContextManager[tuple[str, ...]]]:
    """The store's erasure hook: the subject's rows leave the release table now, and the table's lock is
    held while the store destroys the subject's key (``ReleaseTable.erasing``); yields the releases rewritten."""

    @contextmanager
    def erase(subject_digest: str) -> Iterator[tuple[str, ...]]:
        with table.erasing(subject_digest) as erasure:
            yield tuple(erasure.releases)

    return erase


def open_release_table(
    settings: Any,
    data_dir: Path,
    backend: str,
    dsn: str | None,
    schema: str,
    *,
    grace: timedelta | None = None,
    warehouse: Any | None = None,
) -> Any | None:
    """The store's release table, or None when the [release] extra (pyiceberg) is not installed.

    ``warehouse``: the release policy's ``[warehouse]`` (a ``WarehouseConfig``), None for the local folder;
    its credentials are read now (file or environment) and the bucket checked before anything is created.
    """
    import importlib.util

    if importlib.util.find_spec("pyiceberg") is None:
        return None
    from store.releases.table import ReleaseTable
    from store.releases.warehouse import ObjectStore

    store = ObjectStore.from_config(warehouse) if warehouse is not None else None
    return ReleaseTable.open(
        settings, data_dir=data_dir, backend=backend, dsn=dsn, schema=schema, grace=grace, warehouse=store
    )


def release_table_policy(data_dir: Path, policy_path: Path | None = None) -> Any:
    """The release policy if its file exists, else the defaults (72 hours' grace, the local warehouse).

    A policy file that exists but is invalid raises ``ReleasePolicyError`` (a ``ValueError``): the store
    does not start on a guess about how long erased rows may stay, or where the table's files are.
    """
    from store.releases.consumers import POLICY_FILE_NAME, ReleasePolicy, load_release_policy

    path = policy_path or data_dir / POLICY_FILE_NAME
    return load_release_policy(path) if path.exists() else ReleasePolicy()


def release_grace(data_dir: Path, policy_path: Path | None = None) -> timedelta:
    """The release policy's grace period (``erasure_grace_hours``); the default 72 hours without a policy file."""
    return timedelta(hours=release_table_policy(data_dir, policy_path).erasure_grace_hours)
