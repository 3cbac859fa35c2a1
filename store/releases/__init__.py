"""Dataset releases: the release table (Apache Iceberg), its rows and column dictionary; governance beside it."""

from store.releases.rows import ColumnDoc, OpenedRecord, ReleaseAliases, column_dictionary, release_rows
from store.releases.table import (
    ReleaseSnapshot,
    ReleaseTable,
    ReleaseTableError,
    SnapshotExpired,
    TableErasure,
    TableExpiry,
    TableRetention,
)
from store.releases.warehouse import ObjectStore, WarehouseConfig, WarehouseError

__all__ = [
    "ColumnDoc",
    "ObjectStore",
    "OpenedRecord",
    "ReleaseAliases",
    "ReleaseSnapshot",
    "ReleaseTable",
    "ReleaseTableError",
    "SnapshotExpired",
    "TableErasure",
    "TableExpiry",
    "TableRetention",
    "WarehouseConfig",
    "WarehouseError",
    "column_dictionary",
    "release_rows",
]
