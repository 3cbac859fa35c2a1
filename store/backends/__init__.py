"""Store backends behind ``store.backend.StoreBackend``; ``open_backend`` chooses one."""

from __future__ import annotations

from pathlib import Path

from store.backend import BackendKind, StoreBackend


def open_backend(
    kind: BackendKind | str,
    *,
    data_dir: Path | None = None,
    dsn: str | None = None,
    schema: str = "consentry",
) -> StoreBackend:
    """``dir`` needs ``data_dir``; ``postgres`` needs ``dsn``. Imported lazily: psycopg only when used."""
    if kind == "dir":
        if data_dir is None:
            raise ValueError("the dir backend needs a data folder")
        from store.backends.dir import DirBackend

        return DirBackend(data_dir)
    if kind == "postgres":
        if not dsn:
            raise ValueError("the postgres backend needs a DSN (postgresql://user:pass@host/db)")
        from store.backends.postgres import PostgresBackend

        return PostgresBackend(dsn, schema=schema)
    raise ValueError(f"unknown backend {kind!r}; choose dir or postgres")
