"""The agent's log: stderr and a rotating owner-only file. Messages carry states and counts only."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import threading
from pathlib import Path

LOGGER = "consentry.agent"
LOG_FILE = "agent.log"
MAX_BYTES = 1_000_000
BACKUPS = 3


def setup_logging(log_dir: Path, verbose: bool = False) -> logging.Logger:
    """Configure the agent's logger; returns it. Safe to call once per process."""
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = log_dir / LOG_FILE
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    stream = logging.StreamHandler()
    stream.setFormatter(fmt)
    rotating = _OwnerOnlyRotatingFile(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    rotating.setFormatter(fmt)
    logger.addHandler(stream)
    logger.addHandler(rotating)
    threading.excepthook = _thread_died
    return logger


class _OwnerOnlyRotatingFile(logging.handlers.RotatingFileHandler):
    """Creates every log file 0600: the first, and the new one after each rollover (the standard handler's
    ``open()`` would create it under the process umask, 0644 or even 0666)."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def _thread_died(args: threading.ExceptHookArgs) -> None:
    # The default hook prints a traceback whose locals and messages are not ours to vet: name the
    # thread and the exception type only.
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger(LOGGER).error("thread %s ended: %s", name, args.exc_type.__name__)
