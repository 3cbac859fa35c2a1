"""Unexpected errors at the CLI boundary: one line for the user, a data-free record in the log folder.

No traceback ever reaches the user, and nothing an exception *says* is written anywhere: messages,
arguments and local values can hold a token, a key or a path (pydantic puts the rejected input in its
message). The record keeps only exception class names and code locations (module, function, line),
which are enough to find the bug and contain nothing of the user's.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

LOG_NAME = "cli-errors.log"
_MAX_LOG_BYTES = 256_000


def _store_unreachable(exc: BaseException) -> bool:
    httpx = sys.modules.get("httpx")  # only loaded by commands that talk to a store
    return httpx is not None and isinstance(exc, httpx.TransportError)


def _invalid_data(exc: BaseException) -> str | None:
    """For a pydantic ValidationError: which fields were wrong, never their values."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(exc, pydantic.ValidationError):
        return None
    fields = sorted({".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()})[:5]
    return f"{exc.title} is not valid (fields: {', '.join(fields)})"


def _frames(exc: BaseException) -> list[str]:
    lines = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lines.append(f"  {type(current).__module__}.{type(current).__qualname__}")
        for frame in traceback.extract_tb(current.__traceback__):
            lines.append(f"    {_module_of(frame.filename)}:{frame.lineno} in {frame.name}")
        current = current.__cause__ or current.__context__
    return lines


def _module_of(filename: str) -> str:
    """``agent/cli/main.py`` rather than the install path (which names the user's home)."""
    parts = Path(filename).parts
    for root in ("agent", "vault", "site-packages"):
        if root in parts:
            return "/".join(parts[parts.index(root) + (root == "site-packages") :])
    return Path(filename).name


def record(exc: BaseException, log_dir: Path) -> Path | None:
    """Append the data-free record of ``exc`` to ``log_dir/cli-errors.log`` (0600); None if that fails."""
    try:
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = log_dir / LOG_NAME
        if path.exists() and path.stat().st_size > _MAX_LOG_BYTES:
            path.unlink()  # a bounded log: the newest errors are the useful ones
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} unexpected error\n")
            fh.write("\n".join(_frames(exc)) + "\n")
        return path
    except OSError:
        return None


def one_line(exc: BaseException, log_dir: Path | None) -> str:
    """What the user reads instead of a traceback: what happened, in general terms, and the next step."""
    if _store_unreachable(exc):
        return (
            f"cannot reach the store ({type(exc).__name__}). Check that it runs and that the URL is right "
            "(the machine policy's store.url or --store-url); nothing was sent, so retrying is safe."
        )
    invalid = _invalid_data(exc)
    if invalid is not None:
        return f"{invalid}; nothing was changed. Check the file or the answer it came from."
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if isinstance(exc.filename, str) else ""
        return f"a file or connection could not be used: {exc.strerror}{where}. Check it and retry."
    logged = record(exc, log_dir) if log_dir is not None else None
    where = f"; details without any of your data are in {logged}" if logged else ""
    return (
        f"consentry stopped on an unexpected error ({type(exc).__name__}){where}. "
        "Run: consentry doctor, and report this to IT if it happens again."
    )
