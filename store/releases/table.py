"""The release table: one Apache Iceberg table whose tagged snapshots are the store's dataset releases.

Layout (the choice of format: docs/release-table.md)::

    catalog     pyiceberg's SqlCatalog in the store's own database: the store's SQLite file for ``dir``
                (DATA/data/store.db), the store's PostgreSQL schema for ``postgres``; beside it this
                module's register, ``release_snapshots`` (release -> tag, alias key) and
                ``release_erasures`` (pending physical removals, after an erasure or retention),
                ``release_retention`` (release -> the retention its rows were released under)
    warehouse   DATA/data/releases/ by default (0700 folders, 0600 files), or an S3-compatible bucket
                (s3://bucket/prefix) named in the release policy's [warehouse] (store.releases.warehouse),
                read and written through pyiceberg's PyArrowFileIO
    table       consentry.releases, schema ``store.releases.rows.RELEASE_SCHEMA``, partitioned by
                release_id, category and day(start); column statistics off (a manifest never holds a
                value of a row, so removing data files removes every copy of a value)
    tags        "release/<release_id>" -> the snapshot a release reads

Erasure deletes a subject's rows at once (a new snapshot; copy-on-write: only the files holding them are
rewritten) and moves every affected release's tag to it, so ``read`` never returns an erased row. The
older snapshots stay, unreferenced, for the grace period (policy, default 72 h; 0 allowed), then
``expire`` drops them and physically removes every file no remaining snapshot needs: data files,
manifests, manifest lists and old metadata files. A reader holding such a snapshot id then gets
``SnapshotExpired``.

Retention works the same way: ``expire_retention`` deletes every row whose window ended more than its
release's retention ago (one new snapshot, the tags moved to it), and ``expire`` removes the older
snapshots and files after the same grace period. ``housekeep`` does both; ``store serve`` runs it on a
schedule (``store.releases.housekeeping``).

Errors::

    ReleaseTableError
     +-- EmptyRelease          build() of no rows
     +-- ReleaseExists         build() of a release id already built
     +-- UnknownRelease        read()/data_files() of a release never built
     +-- SnapshotExpired       a snapshot removed after an erasure or retention

``open`` also raises ``store.releases.warehouse.WarehouseError`` (a ``ConsentryError``: the CLI shows it as
it is) for an S3 warehouse it cannot use, or a table opened with another warehouse than its own.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import secrets
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import pyarrow as pa
import pyarrow.compute as pc

from store.records_kek import DatabaseOlderThanKeys, retired_kek_ids
from store.releases.rows import RELEASE_SCHEMA, ReleaseAliases
from store.releases.warehouse import ObjectStore, WarehouseError
from store.settings import StoreSettings

NAMESPACE = "consentry"
TABLE = "releases"
DEFAULT_GRACE = timedelta(hours=72)
_RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TAG_PREFIX = "release/"
# The snapshot property that marks a delete for erasure, retention or an unfinished build (_delete_and_retag).
_DELETE_REASONS = ("consentry.erasure", "consentry.retention", "consentry.unfinished-build")
_PRUNE_PARTITIONS = 32
_PG_LOCK = 0x72656C73  # "rels": one advisory lock id for the release table's writers


class ReleaseTableError(Exception):
    """Root of this module's errors."""


class EmptyRelease(ReleaseTableError):
    pass


class ReleaseExists(ReleaseTableError):
    pass


class UnknownRelease(ReleaseTableError):
    pass


class SnapshotExpired(ReleaseTableError):
    pass


@dataclass(frozen=True)
class ReleaseSnapshot:
    release_id: str
    tag: str
    snapshot_id: int
    rows: int
    data_files: tuple[str, ...]
    built: datetime


@dataclass(frozen=True)
class TableErasure:
    releases: tuple[str, ...]  # releases that held rows of the subject
    rows_deleted: int
    bytes_rewritten: int  # bytes of the new data files written in place of the ones holding the subject
    partitions_touched: tuple[str, ...]  # "release_id/category/day"
    snapshot_id: int | None  # the new current snapshot (None: the subject had no rows)


@dataclass(frozen=True)
class TableRetention:
    releases: tuple[str, ...]  # releases that had rows past their retention
    rows_deleted: int
    snapshot_id: int | None  # the new current snapshot (None: nothing was past retention)
    unfinished_rows_deleted: int = 0  # rows of builds killed after their commit, before their registration


@dataclass(frozen=True)
class TableExpiry:
    snapshots_expired: int
    files_removed: int
    bytes_removed: int


_REGISTER_SQL = [
    """CREATE TABLE IF NOT EXISTS release_snapshots (
        release_id TEXT PRIMARY KEY,
        tag TEXT NOT NULL,
        snapshot_id BIGINT NOT NULL,
        rows_count BIGINT NOT NULL,
        built BIGINT NOT NULL,
        alias_key TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS release_erasures (
        erasure_snapshot_id BIGINT PRIMARY KEY,
        erased BIGINT NOT NULL,
        expired BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS release_retention (
        release_id TEXT PRIMARY KEY,
        retention_days INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS release_expired_snapshots (
        snapshot_id BIGINT PRIMARY KEY,
        expired BIGINT NOT NULL
    )""",
]


def _check_release_id(release_id: str) -> None:
    if not _RELEASE_ID.match(release_id):
        raise ValueError(
            f"release id {release_id!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def _sqlalchemy_url(dsn: str) -> str:
    """A libpq DSN, URL (postgresql://...) or keywords (host=... dbname=...), as SQLAlchemy's psycopg URL:
    the store's own connections take either form, so its release catalog must too."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except ProgrammingError:
        raise ValueError(
            "the DSN is not a PostgreSQL connection string (postgresql://... or host=... dbname=...)"
        ) from None
    host = params.pop("host", None)
    if host is not None and host.startswith("/"):  # a Unix socket folder goes in the query, as libpq reads it
        params["host"], host = host, None
    port = params.pop("port", None)
    url = URL.create(
        "postgresql+psycopg",
        username=params.pop("user", None),
        password=params.pop("password", None),
        host=host,
        port=int(port) if port else None,
        database=params.pop("dbname", None),
        query=params,
    )
    return url.render_as_string(hide_password=False)


class ReleaseTable:
    """The store's release table; open it with ``ReleaseTable.open``."""

    def __init__(
        self, catalog: Any, table: Any, engine: Any, lock_path: Path, grace: timedelta, warehouse: Path | None
    ) -> None:
        self._warehouse = warehouse  # a local warehouse folder (kept private), None for an object store
        self._catalog = catalog
        self._table = table
        self._engine = engine
        self._lock_path = lock_path
        self.grace = grace

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        settings: StoreSettings,
        *,
        data_dir: Path,
        backend: str = "dir",
        dsn: str | None = None,
        schema: str = "consentry",
        warehouse: ObjectStore | None = None,
        grace: timedelta | None = None,
    ) -> ReleaseTable:
        """Open (creating on first use) the release table of the store whose folder is ``data_dir``.

        ``data_dir`` is the store's ``--data`` folder: the catalog of ``dir`` is its data/store.db, the
        warehouse data/releases/ unless ``warehouse`` names an S3-compatible bucket (checked first: an
        unreachable endpoint, a missing bucket or refused credentials raise ``WarehouseError`` before
        anything is created). ``backend``/``dsn``/``schema`` as the store's own (``postgres``: the
        catalog tables live in ``schema`` of that database). ``grace`` defaults to 72 hours.

        A table keeps the warehouse it was created in: opening it with another raises ``WarehouseError``.
        """
        from pyiceberg.catalog.sql import SqlCatalog
        from sqlalchemy import create_engine, text

        del settings  # the policy's release settings are passed explicitly (grace, warehouse); kept for one signature
        if grace is not None and grace < timedelta(0):
            raise ValueError(f"the erasure grace period cannot be negative ({grace}); 0 removes at once")
        if warehouse is not None:
            warehouse.check()  # before the catalog is touched: a bad setting changes nothing
        store_data = data_dir / "data"
        store_data.mkdir(mode=0o700, parents=True, exist_ok=True)
        if backend == "dir":
            from store.backends.dir import CATALOG

            url = f"sqlite:///{store_data / CATALOG}"
        elif backend == "postgres":
            if not dsn:
                raise ValueError("the postgres backend needs a DSN (postgresql://user:pass@host/db)")
            if not re.match(r"^[a-z_][a-z0-9_]{0,62}$", schema):
                raise ValueError(f"schema {schema!r} is not a plain lowercase SQL name")
            base = _sqlalchemy_url(dsn)
            sep = "&" if "?" in base else "?"
            url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
            with create_engine(base).begin() as conn:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        else:
            raise ValueError(f"unknown backend {backend!r}; choose dir or postgres")
        folder = store_data / "releases"
        location = folder.as_uri() if warehouse is None else warehouse.url
        properties = {"uri": url, "warehouse": location, **(warehouse.fileio_properties() if warehouse else {})}
        lock_dir = store_data
        catalog = SqlCatalog(NAMESPACE, **properties)
        engine = catalog.engine
        try:
            _refuse_a_database_older_than_its_keys(engine, data_dir / "keys")
        except DatabaseOlderThanKeys:
            engine.dispose()
            raise
        existing = _existing_location(catalog)
        # A local table is refused only if it is not local (a store folder reached by another path is the same).
        if existing is not None and (
            urlparse(existing).scheme not in ("file", "")
            if warehouse is None
            else not existing.startswith(location.rstrip("/") + "/")
        ):
            engine.dispose()
            named = f"the local folder {folder}" if warehouse is None else location
            raise WarehouseError(
                f"the release table lives in {_local(existing).split('/metadata/')[0]}, but the release policy "
                f"names {named} as its warehouse. A table is not moved between warehouses: put [warehouse] back "
                "as it was; nothing was changed"
            )
        if warehouse is None:
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        with engine.begin() as conn:
            for statement in _REGISTER_SQL:
                conn.execute(text(statement))
        catalog.create_namespace_if_not_exists(NAMESPACE)
        table = cls._open_or_create(catalog)
        local = Path(_local(location)) if warehouse is None else None
        if local is not None:
            _private_tree(local)
        return cls(
            catalog, table, engine, lock_dir / "releases.lock", grace if grace is not None else DEFAULT_GRACE, local
        )

    @staticmethod
    def _open_or_create(catalog: Any) -> Any:
        from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
        from pyiceberg.transforms import DayTransform

        ident = f"{NAMESPACE}.{TABLE}"
        try:
            return catalog.load_table(ident)
        except NoSuchTableError:
            pass
        try:
            table = catalog.create_table(
                ident,
                schema=RELEASE_SCHEMA,
                properties={
                    # No min/max bounds in manifests: a value of an erased row lives only in data files.
                    "write.metadata.metrics.default": "counts",
                    "write.parquet.compression-codec": "zstd",
                    # Old metadata files are removed by expire(); keep pyiceberg from keeping more.
                    "write.metadata.delete-after-commit.enabled": "true",
                    "write.metadata.previous-versions-max": "1",
                },
            )
        except TableAlreadyExistsError:
            return catalog.load_table(ident)
        with table.update_spec() as spec:
            spec.add_identity("release_id")
            spec.add_identity("category")
            spec.add_field("start", DayTransform(), "day")
        return catalog.load_table(ident)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time on this machine (build, erase, expire each commit several steps).

        On the way out every file and folder the writer made is made 0600/0700: pyiceberg creates them
        under the process umask. The warehouse folder itself is 0700 from its creation, so nobody else
        can reach them in between.
        """
        from sqlalchemy import text

        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        # With PostgreSQL, store processes on other machines share the catalog: a session advisory lock
        # orders their writers too (the file lock above orders this machine's without a round trip).
        shared = self._engine.connect() if self._engine.dialect.name == "postgresql" else None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if shared is not None:
                shared.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
                shared.commit()
            self._table = self._table.refresh()
            self._finish_interrupted_deletes()
            yield
        finally:
            try:
                if self._warehouse is not None:
                    _private_tree(self._warehouse)
            finally:
                if shared is not None:
                    shared.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                    shared.commit()
                    shared.close()
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    # ---- register --------------------------------------------------------------------------------------
    def _register_row(self, release_id: str) -> Any:
        from sqlalchemy import text

        with self._engine.begin() as conn:
            return conn.execute(
                text(
                    "SELECT release_id, tag, snapshot_id, rows_count, built, alias_key FROM release_snapshots WHERE release_id = :r"
                ),
                {"r": release_id},
            ).first()

    def aliases(self, release_id: str) -> ReleaseAliases:
        """The alias key of ``release_id``: made on first call (before ``build``), kept in the catalog."""
        from sqlalchemy import text

        _check_release_id(release_id)
        with self._engine.begin() as conn:
            row = conn.execute(
                text("SELECT alias_key FROM release_snapshots WHERE release_id = :r"), {"r": release_id}
            ).first()
            if row is not None:
                return ReleaseAliases(bytes.fromhex(row[0]))
            conn.execute(
                text(
                    "INSERT INTO release_snapshots (release_id, tag, snapshot_id, rows_count, built, alias_key) "
                    "VALUES (:r, :t, -1, 0, 0, :k) ON CONFLICT (release_id) DO NOTHING"
                ),
                {"r": release_id, "t": _TAG_PREFIX + release_id, "k": secrets.token_hex(32)},
            )
            row = conn.execute(
                text("SELECT alias_key FROM release_snapshots WHERE release_id = :r"), {"r": release_id}
            ).first()
        return ReleaseAliases(bytes.fromhex(row[0]))

    def releases(self) -> list[str]:
        from sqlalchemy import text

        with self._engine.begin() as conn:
            rows = conn.execute(
                text("SELECT release_id FROM release_snapshots WHERE snapshot_id >= 0 ORDER BY release_id")
            ).all()
        return [r[0] for r in rows]

    # ---- build and read ------------------------------------------------------------------------------------
    def build(
        self,
        release_id: str,
        rows: pa.Table,
        *,
        now: datetime | None = None,
        retention_days: int | None = None,
        erased: Callable[[], Collection[str]] | None = None,
    ) -> ReleaseSnapshot:
        """Append ``rows`` (``RELEASE_SCHEMA``, all of ``release_id``) and tag the snapshot ``release/<id>``.

        ``retention_days``: a row leaves the table (``expire_retention``) once its window ended that many
        days ago; None keeps rows until an erasure (a table built outside the store's governed path).
        ``erased``: the subject digests among the rows' subjects whose keys the store destroyed since the
        rows were read; asked after the commit with the lock still held, and their rows erased (``erasing``).
        """
        from sqlalchemy import text

        _check_release_id(release_id)
        if retention_days is not None and not (
            isinstance(retention_days, int) and not isinstance(retention_days, bool) and 1 <= retention_days <= 3650
        ):
            raise ValueError(f"retention_days must be a whole number of days from 1 to 3650, not {retention_days!r}")
        if rows.num_rows == 0:
            raise EmptyRelease(f"release {release_id} has no rows: nothing eligible was found, so nothing is built")
        if rows.schema != RELEASE_SCHEMA:
            rows = rows.cast(RELEASE_SCHEMA)
        others = pc.sum(pc.not_equal(rows["release_id"], release_id).cast(pa.int64())).as_py() or 0
        if others:
            raise ValueError(f"{others} rows name another release than {release_id}")
        built = now or datetime.now(UTC)
        with self._locked():
            existing = self._register_row(release_id)
            if existing is not None and existing[2] >= 0:
                raise ReleaseExists(f"release {release_id} was already built; a release is immutable")
            if existing is None:
                self.aliases(release_id)
            else:
                self._drop_unfinished(release_id, built)
            marker = secrets.token_hex(16)
            self._append(rows, {"consentry.release": release_id, "consentry.commit": marker})
            self._table = self._table.refresh()
            snapshot = next(
                s
                for s in reversed(self._table.snapshots())
                if s.summary and s.summary.additional_properties.get("consentry.commit") == marker
            )
            tag = _TAG_PREFIX + release_id
            self._table.manage_snapshots().create_tag(snapshot.snapshot_id, tag).commit()
            self._table = self._table.refresh()
            with self._engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE release_snapshots SET snapshot_id = :s, rows_count = :n, built = :b, tag = :t WHERE release_id = :r"
                    ),
                    {
                        "s": snapshot.snapshot_id,
                        "n": rows.num_rows,
                        "b": int(built.timestamp()),
                        "t": tag,
                        "r": release_id,
                    },
                )
                if retention_days is not None:
                    conn.execute(
                        text("INSERT INTO release_retention (release_id, retention_days) VALUES (:r, :d)"),
                        {"r": release_id, "d": retention_days},
                    )
            for subject_digest in erased() if erased is not None else ():  # erased while the rows were read
                self._erase_locked(subject_digest, built)
        return ReleaseSnapshot(
            release_id, tag, snapshot.snapshot_id, rows.num_rows, tuple(self.data_files(release_id)), built
        )

    def _drop_unfinished(self, release_id: str, when: datetime) -> int:
        """Delete the rows an earlier build of ``release_id`` committed before it was killed (it never got
        registered); returns how many. Registered like an erasure, so the snapshots that still hold them
        expire after the grace period."""
        if self._table.current_snapshot() is None:
            return 0
        where = _eq("release_id", release_id)
        hits = self._table.scan(row_filter=where, selected_fields=("release_id", "category", "start")).to_arrow()
        if hits.num_rows:
            self._delete_and_retag(where, hits, "consentry.unfinished-build", when)
        return int(hits.num_rows)

    def _append(self, rows: pa.Table, properties: dict[str, str]) -> None:
        """One append snapshot of ``rows``, its data files written one partition at a time.

        pyiceberg's own ``append`` splits a table by filtering all of it once per partition (rows x
        partitions); sorting once and handing it each partition's slice makes the write linear.
        """
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        counter = itertools.count(0)
        with self._table.transaction() as tx:
            metadata = tx.table_metadata  # a deep copy per access: taken once
            with tx.update_snapshot(snapshot_properties=properties).fast_append() as append:

                def write(part: pa.Table) -> list[Any]:
                    return list(_dataframe_to_data_files(metadata, part, self._table.io, append.commit_uuid, counter))

                with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
                    for data_files in pool.map(write, _partition_slices(rows)):
                        for data_file in data_files:
                            append.append_data_file(data_file)

    def _tag_snapshot(self, release_id: str) -> int:
        row = self._register_row(release_id)
        if row is None or row[2] < 0:
            raise UnknownRelease(f"no release {release_id} was built")
        self._table = self._table.refresh()
        ref = self._table.metadata.refs.get(_TAG_PREFIX + release_id)
        if ref is None:
            raise SnapshotExpired(f"release {release_id}: snapshot expired by erasure or retention")
        return int(ref.snapshot_id)

    def _check_snapshot(self, snapshot_id: int) -> None:
        from sqlalchemy import text

        if self._table.snapshot_by_id(snapshot_id) is not None:
            return
        with self._engine.begin() as conn:
            gone = conn.execute(
                text("SELECT 1 FROM release_expired_snapshots WHERE snapshot_id = :s"), {"s": snapshot_id}
            ).first()
        if gone is not None:
            raise SnapshotExpired(
                f"snapshot expired by erasure or retention (snapshot {snapshot_id}): its files were removed; "
                "read the release by its id to get its rows as they are now"
            )
        raise UnknownRelease(f"no snapshot {snapshot_id} in the release table")

    def read(self, release_id: str) -> pa.Table:
        """The rows of ``release_id`` as its tag shows them now (without rows erased since it was built)."""

        snapshot_id = self._tag_snapshot(release_id)
        return self._table.scan(row_filter=_eq("release_id", release_id), snapshot_id=snapshot_id).to_arrow()

    def read_snapshot(self, snapshot_id: int, release_id: str) -> pa.Table:
        """The rows of ``release_id`` in an exact snapshot (a pinned reader); ``SnapshotExpired`` once removed."""

        self._table = self._table.refresh()
        self._check_snapshot(snapshot_id)
        return self._table.scan(row_filter=_eq("release_id", release_id), snapshot_id=snapshot_id).to_arrow()

    def data_files(self, release_id: str) -> list[str]:
        """Local paths (or URIs, for an object store) of the Parquet files of ``release_id``'s snapshot."""

        snapshot_id = self._tag_snapshot(release_id)
        tasks = self._table.scan(row_filter=_eq("release_id", release_id), snapshot_id=snapshot_id).plan_files()
        return sorted(_local(t.file.file_path) for t in tasks)

    def built_snapshot(self, release_id: str) -> ReleaseSnapshot | None:
        """``release_id`` as ``build`` returned it, if a build of it committed; else None."""
        row = self._register_row(release_id)
        if row is None or row[2] < 0:
            return None
        built = datetime.fromtimestamp(int(row[4]), UTC)
        return ReleaseSnapshot(
            release_id, str(row[1]), int(row[2]), int(row[3]), tuple(self.data_files(release_id)), built
        )

    def snapshot_id(self, release_id: str) -> int:
        """The snapshot ``release_id``'s tag names now (a pinned reader keeps it; see ``read_snapshot``)."""
        return self._tag_snapshot(release_id)

    @property
    def is_local(self) -> bool:
        """The warehouse is the local folder (False: an S3-compatible bucket)."""
        return self._warehouse is not None

    @property
    def location(self) -> str:
        """The table's folder (a local path), or its URI in an object store."""
        return _local(str(self._table.location()))

    def close(self) -> None:
        """Release the catalog's database connections."""
        self._engine.dispose()

    # ---- erasure and expiry ------------------------------------------------------------------------------------
    def erase_subject(self, subject_digest: str, *, now: datetime | None = None) -> TableErasure:
        """Delete every row of ``subject_digest`` now (one new snapshot) and move the tags to it."""
        with self._locked():
            return self._erase_locked(subject_digest, now or datetime.now(UTC))

    @contextmanager
    def erasing(self, subject_digest: str, *, now: datetime | None = None) -> Iterator[TableErasure]:
        """``erase_subject``, with the table's lock held until the block ends.

        The store destroys the subject's key inside the block. A build holds the same lock from writing its
        rows until it has checked, after its commit, which of its subjects' keys are gone
        (``build(erased=...)``): either the build comes first and this erasure finds its rows, or this
        erasure comes first and the build sees the key gone. No interleaving leaves the rows in the table.
        """
        with self._locked():
            yield self._erase_locked(subject_digest, now or datetime.now(UTC))

    def _erase_locked(self, subject_digest: str, when: datetime) -> TableErasure:
        from sqlalchemy import text

        # The caller holds the table's lock.
        with self._engine.begin() as conn:
            # Every release with an alias key, built or not: a build killed after its rows committed
            # and before it was registered left them in the table (the next build replaces them).
            registered = conn.execute(text("SELECT release_id, alias_key FROM release_snapshots")).all()
        predicates = {
            r[0]: _and(
                _eq("release_id", r[0]),
                _eq("subject", ReleaseAliases(bytes.fromhex(r[1])).subject(subject_digest)),
            )
            for r in registered
        }
        if not predicates or self._table.current_snapshot() is None:
            return TableErasure((), 0, 0, (), None)
        combined: Any = None
        for p in predicates.values():
            combined = p if combined is None else _or(combined, p)
        hits = self._table.scan(row_filter=combined, selected_fields=("release_id", "category", "start")).to_arrow()
        if hits.num_rows == 0:
            return TableErasure((), 0, 0, (), None)
        releases = tuple(sorted(set(hits["release_id"].to_pylist())))
        written, partitions, after = self._delete_and_retag(combined, hits, "consentry.erasure", when)
        return TableErasure(releases, hits.num_rows, written, partitions, after)

    def _delete_and_retag(
        self, combined: Any, hits: pa.Table, reason: str, when: datetime
    ) -> tuple[int, tuple[str, ...], int]:
        """Delete the rows ``combined`` matches (``hits``: their release, category and start) in one new
        snapshot, move every release's tag to it and register it for expiry after the grace period.

        Every tag moves, not only those of the releases that held the rows: a tag is a whole-table
        snapshot, so an older tag of another release would keep the deleted rows' files reachable and
        expiry could never remove them. Releases are disjoint partitions, so each reads the same rows
        of its own at the new snapshot. Returns (bytes rewritten, partitions touched, new snapshot id).
        """
        from sqlalchemy import text

        current = self._table.current_snapshot()
        assert current is not None
        before = current.snapshot_id
        marker = secrets.token_hex(16)
        # Name the partitions that hold the rows: pyiceberg prunes files by partition values (the
        # manifests keep no column bounds), so only those files are read and rewritten.
        # Past a few dozen partitions the filter costs more per row than the pruning saves.
        keys = _partition_keys(hits)
        where = combined
        if len(keys) <= _PRUNE_PARTITIONS:
            where = _and(combined, _balanced_or([_partition_filter(r, c, d) for r, c, d in keys]))
        self._table.delete(where, snapshot_properties={"consentry.commit": marker, reason: "1"})
        self._table = self._table.refresh()
        after = self._table.current_snapshot()
        assert after is not None and after.snapshot_id != before
        written = _added_bytes(self._table, after)
        partitions = tuple(
            sorted(
                {
                    f"{r}/{c}/{s.date().isoformat()}"
                    for r, c, s in zip(
                        hits["release_id"].to_pylist(),
                        hits["category"].to_pylist(),
                        hits["start"].to_pylist(),
                        strict=True,
                    )
                }
            )
        )
        tags = [name for name in self._table.metadata.refs if name.startswith(_TAG_PREFIX)]
        if tags:
            manage = self._table.manage_snapshots()
            for tag in tags:  # create_tag on an existing tag moves it: one commit, no moment without a tag
                manage = manage.create_tag(after.snapshot_id, tag)
            manage.commit()
            self._table = self._table.refresh()
        with self._engine.begin() as conn:
            conn.execute(
                text("INSERT INTO release_erasures (erasure_snapshot_id, erased, expired) VALUES (:s, :e, NULL)"),
                {"s": after.snapshot_id, "e": int(when.timestamp())},
            )
        return written, partitions, after.snapshot_id

    def _finish_interrupted_deletes(self) -> None:
        """Finish what ``_delete_and_retag`` did not, if its process died after the delete's commit.

        Its delete snapshot then exists (it carries one of ``_DELETE_REASONS``) but is not registered in
        ``release_erasures``, and the release tags may still name older snapshots holding the deleted rows.
        Every writer runs this first, under the lock: the stale tags move to the current snapshot (which
        descends from the delete) and the delete is registered, so its rows' files expire after the grace
        period like any other."""
        from sqlalchemy import text

        deletes = [
            s
            for s in self._table.snapshots()
            if s.summary and any(s.summary.additional_properties.get(r) for r in _DELETE_REASONS)
        ]
        if not deletes:
            return
        with self._engine.begin() as conn:
            known = {int(r[0]) for r in conn.execute(text("SELECT erasure_snapshot_id FROM release_erasures")).all()}
        unregistered = [s for s in deletes if s.snapshot_id not in known]
        current = self._table.current_snapshot()
        if not unregistered or current is None:
            return
        newest = max(s.timestamp_ms for s in unregistered)
        stale = [
            name
            for name, ref in self._table.metadata.refs.items()
            if name.startswith(_TAG_PREFIX)
            and (tagged := self._table.snapshot_by_id(ref.snapshot_id)) is not None
            and tagged.timestamp_ms < newest
        ]
        if stale:
            manage = self._table.manage_snapshots()
            for tag in stale:
                manage = manage.create_tag(current.snapshot_id, tag)
            manage.commit()
            self._table = self._table.refresh()
        with self._engine.begin() as conn:
            for snapshot in unregistered:
                conn.execute(
                    text("INSERT INTO release_erasures (erasure_snapshot_id, erased, expired) VALUES (:s, :e, NULL)"),
                    {"s": snapshot.snapshot_id, "e": snapshot.timestamp_ms // 1000},
                )

    def retention_days(self, release_id: str) -> int | None:
        """The retention ``release_id`` was built under (days after a window's end), or None if not recorded."""
        from sqlalchemy import text

        with self._engine.begin() as conn:
            row = conn.execute(
                text("SELECT retention_days FROM release_retention WHERE release_id = :r"), {"r": release_id}
            ).first()
        return None if row is None else int(row[0])

    def expire_retention(self, now: datetime) -> TableRetention:
        """Delete every row whose window ended more than its release's retention before ``now`` (one new
        snapshot, as an erasure: the tags move to it, and older snapshots expire after the grace period),
        and first the rows of builds killed between their commit and their registration."""
        from pyiceberg.expressions import LessThan, LessThanOrEqual

        with self._locked():
            unfinished = self._drop_unfinished_builds(now)
            registered = self._retention_register()
            if not registered or self._table.current_snapshot() is None:
                return TableRetention((), 0, None, unfinished)
            before: Any = LessThanOrEqual
            starts_before: Any = LessThan
            parts = []
            for release_id, days in registered:
                cutoff = (now - timedelta(days=days)).isoformat()
                # "start < cutoff" lets pyiceberg skip whole day partitions that are younger.
                parts.append(
                    _and(_eq("release_id", release_id), _and(starts_before("start", cutoff), before("end", cutoff)))
                )
            combined = _balanced_or(parts)
            hits = self._table.scan(row_filter=combined, selected_fields=("release_id", "category", "start")).to_arrow()
            if hits.num_rows == 0:
                return TableRetention((), 0, None, unfinished)
            releases = tuple(sorted(set(hits["release_id"].to_pylist())))
            _, _, snapshot_id = self._delete_and_retag(combined, hits, "consentry.retention", now)
        return TableRetention(releases, hits.num_rows, snapshot_id, unfinished)

    def _drop_unfinished_builds(self, now: datetime) -> int:
        """Delete the rows of every build that committed but was never registered; returns how many.

        No retention is recorded for them, so they would stay until the release is built again, which may
        never happen. The store builds an approved release again from its records. A build holds the lock
        from its commit to its registration, and this runs under it, so no live build is touched.
        """
        from sqlalchemy import text

        with self._engine.begin() as conn:
            pending = [
                str(r[0]) for r in conn.execute(text("SELECT release_id FROM release_snapshots WHERE snapshot_id < 0"))
            ]
        return sum(self._drop_unfinished(release_id, now) for release_id in pending)

    def _retention_register(self) -> list[tuple[str, int]]:
        from sqlalchemy import text

        with self._engine.begin() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.release_id, r.retention_days FROM release_retention r "
                    "JOIN release_snapshots s ON s.release_id = r.release_id WHERE s.snapshot_id >= 0 "
                    "ORDER BY r.release_id"
                )
            ).all()
        return [(str(r[0]), int(r[1])) for r in rows]

    def housekeep(self, now: datetime) -> tuple[TableRetention, TableExpiry]:
        """What must happen without a person remembering to: rows past retention leave now, and snapshots
        held only for an erasure's or retention's grace period are removed once it has run out."""
        return self.expire_retention(now), self.expire(now)

    def expire(self, now: datetime) -> TableExpiry:
        """After the grace period of each erasure, drop the snapshots before it and remove their files.

        Every run also removes the data and manifest files no snapshot names: those a build left when it was
        killed between writing its data files and committing them. No erasure can find rows there (they are in no
        snapshot), so they would otherwise stay. Every writer holds the table's lock while its files are
        uncommitted, and this runs under it, so no file of a live writer is taken."""
        from sqlalchemy import text

        deadline = int((now - self.grace).timestamp())
        with self._locked():
            with self._engine.begin() as conn:
                due = conn.execute(
                    text("SELECT erasure_snapshot_id FROM release_erasures WHERE expired IS NULL AND erased <= :d"),
                    {"d": deadline},
                ).all()
            if not due:
                return TableExpiry(0, *_remove_unreachable(self._table, metadata_files=False))
            due_ids = {int(r[0]) for r in due}
            latest = max(
                (self._table.snapshot_by_id(s) for s in due_ids if self._table.snapshot_by_id(s) is not None),
                key=lambda s: s.timestamp_ms,
                default=None,
            )
            referenced = {int(ref.snapshot_id) for ref in self._table.metadata.refs.values()}
            doomed = []
            if latest is not None:
                doomed = [
                    s.snapshot_id
                    for s in self._table.snapshots()
                    if s.timestamp_ms < latest.timestamp_ms and s.snapshot_id not in referenced
                ]
            if doomed:
                self._table.maintenance.expire_snapshots().by_ids(doomed).commit()
                self._table = self._table.refresh()
            removed, removed_bytes = _remove_unreachable(self._table)
            stamp = int(now.timestamp())
            with self._engine.begin() as conn:
                for snapshot_id in doomed:
                    conn.execute(
                        text(
                            "INSERT INTO release_expired_snapshots (snapshot_id, expired) VALUES (:s, :e) ON CONFLICT (snapshot_id) DO NOTHING"
                        ),
                        {"s": snapshot_id, "e": stamp},
                    )
                for snapshot_id in due_ids:
                    conn.execute(
                        text("UPDATE release_erasures SET expired = :e WHERE erasure_snapshot_id = :s"),
                        {"s": snapshot_id, "e": stamp},
                    )
        return TableExpiry(len(doomed), removed, removed_bytes)


def _refuse_a_database_older_than_its_keys(engine: Any, key_dir: Path) -> None:
    """The catalog lives in the store's database. Put back from a backup older than the last erasure
    (the records KEK it names was replaced by an erasure), it and its warehouse may hold rows of people
    who erased since, and nothing here says whose: open nothing."""
    from sqlalchemy import inspect, text

    if not inspect(engine).has_table("records_kek"):
        return  # the store never sealed a record: no erasure can have replaced a KEK
    with engine.begin() as conn:
        row = conn.execute(text("SELECT kek_id FROM records_kek WHERE one = 1")).first()
    if row is not None and str(row[0]) in retired_kek_ids(key_dir):
        raise DatabaseOlderThanKeys()


def _partition_slices(rows: pa.Table) -> Iterator[pa.Table]:
    """``rows`` sorted by (release, category, day) and cut where the partition changes.

    The day is the window start's microseconds divided by a day's (windows are after 1970, so this is
    the same day as Iceberg's day transform); sorting on the three columns is ~4x faster than building
    one string key per row, which was a fifth of a build's time.
    """
    if rows.num_rows == 0:
        return
    keys = pa.table(
        {
            "r": rows["release_id"],
            "c": rows["category"],
            "d": pc.divide(rows["start"].cast(pa.int64()), 86_400_000_000),
        }
    )
    order = pc.sort_indices(keys, sort_keys=[("r", "ascending"), ("c", "ascending"), ("d", "ascending")])
    rows, keys = rows.take(order), keys.take(order)
    changed = [pc.not_equal(keys[name][1:], keys[name][:-1]) for name in ("r", "c", "d")]
    changes = pc.indices_nonzero(pc.or_(pc.or_(changed[0], changed[1]), changed[2])).to_pylist()
    bounds = [0, *(i + 1 for i in changes), rows.num_rows]
    for start, end in itertools.pairwise(bounds):
        yield rows.slice(start, end - start)


def _private_tree(root: Path) -> None:
    """Make every folder under ``root`` 0700 and every file 0600 (a local warehouse; no-op for a URI)."""
    if not root.is_absolute() or not root.exists():
        return
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o700)
        for name in files:
            path = os.path.join(folder, name)
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)


def _eq(column: str, value: str) -> Any:
    from pyiceberg.expressions import EqualTo

    expression: Any = EqualTo  # pyiceberg's pydantic expressions confuse mypy's view of their constructors
    return expression(column, value)


def _and(left: Any, right: Any) -> Any:
    from pyiceberg.expressions import And

    return And(left, right)


def _or(left: Any, right: Any) -> Any:
    from pyiceberg.expressions import Or

    return Or(left, right)


def _partition_keys(hits: pa.Table) -> list[tuple[str, str, datetime]]:
    """The distinct (release, category, day start) of ``hits``' rows."""
    days = pc.floor_temporal(hits["start"], unit="day")
    keys = zip(hits["release_id"].to_pylist(), hits["category"].to_pylist(), days.to_pylist(), strict=True)
    return sorted(set(keys))


def _partition_filter(release_id: str, category: str, day: datetime) -> Any:
    from pyiceberg.expressions import GreaterThanOrEqual, LessThan

    start: Any = GreaterThanOrEqual
    end: Any = LessThan
    return _and(
        _and(_eq("release_id", release_id), _eq("category", category)),
        _and(start("start", day.isoformat()), end("start", (day + timedelta(days=1)).isoformat())),
    )


def _balanced_or(parts: list[Any]) -> Any:
    """``Or`` of ``parts`` as a balanced tree (a chain of hundreds would nest as deep)."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return _or(_balanced_or(parts[:middle]), _balanced_or(parts[middle:]))


def _existing_location(catalog: Any) -> str | None:
    """Where the catalog's release table has its metadata, if it has the table: read from the catalog's own
    SQL table, not through FileIO (which would need the credentials of a warehouse the caller did not name)."""
    from sqlalchemy import text

    with catalog.engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT metadata_location FROM iceberg_tables "
                "WHERE catalog_name = :c AND table_namespace = :n AND table_name = :t"
            ),
            {"c": NAMESPACE, "n": NAMESPACE, "t": TABLE},
        ).first()
    return None if row is None or row[0] is None else str(row[0])


def _local(uri: str) -> str:
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme in ("file", "") else uri


def _added_bytes(table: Any, snapshot: Any) -> int:
    from pyiceberg.manifest import ManifestEntryStatus

    total = 0
    for manifest in snapshot.manifests(table.io):
        if manifest.added_snapshot_id != snapshot.snapshot_id:
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            if entry.status == ManifestEntryStatus.ADDED:
                total += int(entry.data_file.file_size_in_bytes)
    return total


def _reachable(table: Any) -> set[str]:
    """Every file the table's remaining snapshots and current metadata need, as FileIO paths (see ``_fs_path``)."""
    keep = {_fs_path(table.metadata_location)}
    for snapshot in table.snapshots():
        keep.add(_fs_path(snapshot.manifest_list))
        for manifest in snapshot.manifests(table.io):
            keep.add(_fs_path(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                keep.add(_fs_path(entry.data_file.file_path))
    return keep


def _fs_path(location: str) -> str:
    """A file's location as pyarrow's filesystem names it: /abs/path locally, bucket/key in an object store."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    return PyArrowFileIO.parse_location(location)[2]


def _remove_unreachable(table: Any, *, metadata_files: bool = True) -> tuple[int, int]:
    """Delete the table's files no snapshot needs; returns (files, bytes).

    The files are listed and deleted through the table's own FileIO filesystem: the local folder, or
    the objects under the table's prefix in an S3-compatible bucket (the same credentials and endpoint).
    ``metadata_files=False`` leaves the superseded ``*.metadata.json`` files, which hold no row and which
    pyiceberg deletes itself after later commits (it warns when one is already gone).
    """
    from pyarrow import fs
    from pyiceberg.io.pyarrow import PyArrowFileIO

    keep = _reachable(table)
    scheme, netloc, root = PyArrowFileIO.parse_location(table.location())
    filesystem = table.io.fs_by_scheme(scheme, netloc)
    removed = 0
    removed_bytes = 0
    for info in filesystem.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True)):
        if info.type != fs.FileType.File or info.path in keep:
            continue
        if not metadata_files and info.path.endswith(".metadata.json"):
            continue
        removed_bytes += int(info.size or 0)
        filesystem.delete_file(info.path)
        removed += 1
    return removed, removed_bytes
