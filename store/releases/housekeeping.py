"""The release table's housekeeping, run by ``consentry store serve`` on a schedule.

Two things must happen without a person remembering to: rows past their release's retention leave the
table, and the snapshots and files that still hold erased or retention-expired rows are removed once the
grace period (``erasure_grace_hours``) has run out. ``ReleaseTable.housekeep`` does both; this module
runs it once when the store starts and then every ``every`` minutes in a background thread.

Safe with several store processes on one database: every writer of the table holds its lock (a file
lock on this machine and, with PostgreSQL, an advisory lock in the catalog's database), and a run is
idempotent -- rows already deleted are not found again, and snapshots already expired are not due.
A failed run is logged in words (never a value of a row) and retried at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("consentry.store.releases")
DEFAULT_EVERY = timedelta(minutes=15)


def _counted(count: int, noun: str, plural: str = "") -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def housekeeping_words(retention: Any, expiry: Any) -> str:
    """One line a person reads about what a run did."""
    left = (
        f"{_counted(retention.rows_deleted, 'row')} past retention left {_counted(len(retention.releases), 'release')}"
        if retention.rows_deleted
        else "no row was past its retention"
    )
    if retention.unfinished_rows_deleted:
        left += f"; {_counted(retention.unfinished_rows_deleted, 'row')} of an interrupted build left"
    gone = (
        f"{_counted(expiry.snapshots_expired, 'old snapshot')} expired and "
        f"{_counted(expiry.files_removed, 'file')} ({_counted(expiry.bytes_removed, 'byte')}) removed"
        if expiry.snapshots_expired or expiry.files_removed
        else "no snapshot was due for removal"
    )
    return f"release housekeeping: {left}; {gone}"


class ReleaseHousekeeper:
    """Calls ``table.housekeep(now)`` at start and then every ``every``, until ``stop``."""

    def __init__(
        self,
        table: Any,
        *,
        every: timedelta = DEFAULT_EVERY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if every <= timedelta(0):
            raise ValueError("the housekeeping interval must be positive")
        self._table = table
        self._every = every
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="release-housekeeping", daemon=True)
        self.runs = 0  # completed runs (a test waits on it; nothing else reads it)

    def run_once(self) -> str:
        retention, expiry = self._table.housekeep(self._clock())
        self.runs += 1
        return housekeeping_words(retention, expiry)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                log.info(self.run_once())
            except Exception as exc:  # logged and retried next tick: the store keeps serving
                minutes = round(self._every.total_seconds() / 60)
                log.error(
                    "release housekeeping failed (%s); trying again in %s",
                    type(exc).__name__,
                    _counted(minutes, "minute"),
                )
            self._stop.wait(self._every.total_seconds())

    def start(self) -> ReleaseHousekeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
