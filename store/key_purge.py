"""After an erasure, the key table is rewritten without the erased key's row (``StoreBackend.purge_old_keys``).

The rewrite is put off while a transaction older than the erasure is open, such as a database backup,
so the serving store retries it every ``key_purge_retry_seconds`` until it is done. It also picks up a rotation
another process made (``consentry store export``) and one a restart cut short.
"""

from __future__ import annotations

import logging
import threading

from protocol.store_errors import Unavailable
from store.backend import StoreBackend

log = logging.getLogger("store.keys")


class KeyTablePurge:
    """A daemon thread that asks the backend to finish its key-table rewrite, on start and then periodically."""

    def __init__(self, backend: StoreBackend, interval_seconds: float) -> None:
        self._backend = backend
        self._interval = interval_seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consentry-key-purge", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        waiting = unreachable = False  # each said once when it begins, and the wait once when it ends
        while True:
            try:
                done = self._backend.purge_old_keys()
            except Unavailable as exc:
                if not unreachable:
                    log.warning("cannot check the key table (%s); retrying every %g s", exc.message, self._interval)
                unreachable = True
            else:
                unreachable = False
                if not done and not waiting:
                    log.info(
                        "the key table keeps the erased key's old row while a transaction that began before the "
                        "erasure, or one reading the table, is open (a database backup?); retrying every %g s",
                        self._interval,
                    )
                elif done and waiting:
                    log.info("the key table is rewritten: the erased key's old row is gone")
                waiting = not done
            if self._stopped.wait(self._interval):
                return
