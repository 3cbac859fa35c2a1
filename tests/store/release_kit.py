"""Shared pieces of the release-table tests: real window records, a table on either catalog (file contents: devkit/table_files.py)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from devkit.components import require
from devkit.factories import apps_window, files_window, keyboard_window, mouse_window
from devkit.store_kit import PG_DSN_ENV, pg_dsn, postgres_available
from protocol.windows import window_to_json_dict
from store.releases import ObjectStore, OpenedRecord, ReleaseTable

DAY = 86_400
T0 = 1_760_000_000  # 2025-10-09 08:53:20 UTC


def records(subject: str, receipt_id: str, *, days: int = 2, per_day: int = 3, first: int = T0) -> list[OpenedRecord]:
    """Windows of all four categories for ``subject``, spread over ``days`` days from ``first``, under ``receipt_id``."""
    out: list[OpenedRecord] = []
    makers = {"keyboard": keyboard_window, "mouse": mouse_window, "apps": apps_window, "files": files_window}
    for day in range(days):
        for i in range(per_day):
            start = first + day * DAY + i * 60
            for category, make in makers.items():
                body = window_to_json_dict(make(start, receipt_id))
                out.append(OpenedRecord(f"batch-{subject}-{day}", subject, category, body))
    return out


@contextmanager
def open_release_table(
    kind: str,
    tmp: Path,
    *,
    grace: timedelta = timedelta(hours=72),
    warehouse: ObjectStore | None = None,
    schema: str | None = None,
) -> Iterator[ReleaseTable]:
    """A fresh release table: a new store folder, and for ``postgres`` a new schema (``schema``, default a
    random name) dropped afterwards. ``warehouse``: an S3-compatible bucket for its files (None: the local folder)."""
    data_dir = tmp / "store"
    if kind == "dir":
        from store.backends.dir import DirBackend

        DirBackend(data_dir / "data").close()  # the store's own database, which holds the catalog
        table = ReleaseTable.open(None, data_dir=data_dir, grace=grace, warehouse=warehouse)
        try:
            yield table
        finally:
            table.close()
        return
    require(postgres_available(), "PostgreSQL", f"run: bash scripts/start-postgres.sh and set {PG_DSN_ENV}")
    from store.backends.postgres import PostgresBackend

    schema = schema or "t_" + secrets.token_hex(6)
    pg = PostgresBackend(pg_dsn(), schema=schema)
    table = ReleaseTable.open(
        None, data_dir=data_dir, backend="postgres", dsn=pg_dsn(), schema=schema, grace=grace, warehouse=warehouse
    )
    try:
        yield table
    finally:
        table.close()
        pg.drop_schema()
        pg.close()
