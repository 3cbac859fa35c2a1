"""Finished windows -> the vault, one transaction per flush; storage trouble backs off, never crashes.

A full disk or a read-only vault (``sqlite3.OperationalError`` / ``OSError`` from ``write_windows``)
puts the recorder in an error state: the agent pauses capture and the recorder retries the records
it holds with exponential backoff. Records it holds are dropped only when their consent ends.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from protocol.errors import ConsentError, ConsentryError, InvalidRecord, KeyUnavailable
from protocol.windows import AnyWindow

log = logging.getLogger("consentry.agent")

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
MAX_PENDING = 20_000  # about two weeks of 60 s windows of all four categories


def storage_message(exc: BaseException) -> str:
    """What went wrong, for status and logs: never a path (OSError's str() would include one)."""
    if isinstance(exc, sqlite3.Error):
        return f"the vault cannot be written ({exc.args[0] if exc.args else type(exc).__name__})"
    if isinstance(exc, OSError):
        return f"the vault cannot be written ({exc.strerror or type(exc).__name__})"
    if isinstance(exc, KeyUnavailable):
        return "the vault key is unavailable"
    if isinstance(exc, InvalidRecord):
        return "stored data failed its integrity check; run: consentry doctor (then: consentry doctor --repair)"
    return f"the vault refused the write ({type(exc).__name__})"


class Recorder:
    def __init__(
        self,
        write: Callable[[Sequence[AnyWindow]], int],
        monotonic: Callable[[], float],
        wall: Callable[[], datetime],
    ) -> None:
        self._write = write
        self._monotonic = monotonic
        self._wall = wall
        self.pending: list[AnyWindow] = []
        self.error: str | None = None
        self.last_flush: datetime | None = None
        self.written = 0
        self.refused = 0  # records the vault refused as not covered by consent
        self._retry_at = 0.0
        self._backoff = FIRST_RETRY_SECONDS

    def add(self, records: Sequence[AnyWindow]) -> None:
        self.pending.extend(records)
        if len(self.pending) > MAX_PENDING:
            lost = len(self.pending) - MAX_PENDING
            del self.pending[:lost]
            log.warning("vault unwritable for long: dropped %d oldest unwritten windows", lost)

    def discard(self, category: str) -> int:
        """Forget unwritten records of a category whose consent ended."""
        before = len(self.pending)
        self.pending = [r for r in self.pending if r.category != category]
        return before - len(self.pending)

    def due(self) -> bool:
        return bool(self.pending) and (self.error is None or self._monotonic() >= self._retry_at)

    def flush(self) -> bool:
        """Write everything pending in one transaction; False while the vault cannot be written."""
        if not self.pending:
            return self.error is None
        if self.error is not None and self._monotonic() < self._retry_at:
            return False
        batch = list(self.pending)
        try:
            try:
                written = self._write(batch)
                del self.pending[: len(batch)]
            except ConsentError:
                written = self._write_covered()
        except (sqlite3.Error, OSError, ConsentryError) as exc:
            message = storage_message(exc)
            if self.error is None:
                log.error("%s; capture paused, retrying", message)
            self.error = message
            self._retry_at = self._monotonic() + self._backoff
            self._backoff = min(MAX_RETRY_SECONDS, self._backoff * 2)
            return False
        self.written += written
        self.last_flush = self._wall()
        if self.error is not None:
            log.info("the vault is writable again; capture resumes")
        self.error = None
        self._backoff = FIRST_RETRY_SECONDS
        return True

    def retry_now(self) -> None:
        """The vault changed (a repair, an erasure): the next flush need not wait out its backoff."""
        if self.error is not None:
            self._retry_at = 0.0
            self._backoff = FIRST_RETRY_SECONDS

    def _write_covered(self) -> int:
        """A consent change raced a flush: store each record the vault accepts, drop the others."""
        written = refused = 0
        while self.pending:
            try:
                written += self._write(self.pending[:1])
            except ConsentError:
                refused += 1
            del self.pending[0]
        self.refused += refused
        log.warning("dropped %d window(s) no longer covered by consent", refused)
        return written
