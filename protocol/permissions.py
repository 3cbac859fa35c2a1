"""File-permission checks for secrets: a key file or folder others could read, or swap, is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from protocol.errors import InsecurePermissions


def check_private(path: Path, *, is_dir: bool) -> None:
    """Refuse a secret file or folder that other users could read, saying how to fix it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    loose = st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    if loose:
        wanted = "700" if is_dir else "600"
        raise InsecurePermissions(
            f"{path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"fix it with: chmod {wanted} '{path}'"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecurePermissions(f"{path} is owned by another user (uid {st.st_uid}); it must be yours")


def check_not_writable_by_others(folder: Path) -> None:
    """A folder holding a key file may be readable (a home folder), but nobody else may swap its files."""
    st = folder.stat()
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecurePermissions(
            f"{folder} can be written by other users, who could replace a key file in it; "
            f"use a private folder, or fix it with: chmod go-w '{folder}'"
        )
