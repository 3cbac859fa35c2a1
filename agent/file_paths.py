"""A file path -> ``(root_class, depth, ext)``: what the files category keeps instead of the path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import NamedTuple

from protocol.categories import RootClass
from protocol.windows import EXTENSION_PATTERN, MAX_FILE_DEPTH

# Watched folders are classed by their own name; a folder that is the home directory is HOME.
_ROOT_NAMES: dict[str, RootClass] = {
    "documents": RootClass.DOCUMENTS,
    "dokumente": RootClass.DOCUMENTS,
    "desktop": RootClass.DESKTOP,
    "schreibtisch": RootClass.DESKTOP,
    "downloads": RootClass.DOWNLOADS,
    "projects": RootClass.PROJECTS,
    "project": RootClass.PROJECTS,
    "src": RootClass.PROJECTS,
    "code": RootClass.PROJECTS,
    "repos": RootClass.PROJECTS,
    "workspace": RootClass.PROJECTS,
    "dev": RootClass.PROJECTS,
}


class WatchedRoot(NamedTuple):
    path: str  # absolute, no trailing separator
    root_class: RootClass


class MinimizedPath(NamedTuple):
    root_class: RootClass
    depth: int
    ext: str | None


def root_class_for(folder: PurePath, home: PurePath) -> RootClass:
    if folder == home:
        return RootClass.HOME
    return _ROOT_NAMES.get(folder.name.lower(), RootClass.OTHER)


def watched_roots(folders: Iterable[PurePath], home: PurePath) -> tuple[WatchedRoot, ...]:
    """Roots, longest path first, so a file in a nested watched folder counts for the nearest one."""
    roots = {WatchedRoot(str(f).rstrip("/\\") or str(f), root_class_for(f, home)) for f in folders}
    return tuple(sorted(roots, key=lambda r: len(r.path), reverse=True))


def minimize_path(path: str, roots: Sequence[WatchedRoot], extensions: frozenset[str]) -> MinimizedPath | None:
    """Minimise ``path`` against the watched roots; None when it is under none of them.

    depth = folders between the root and the file (a file directly in the root has depth 0),
    clipped to MAX_FILE_DEPTH; ext = the lowercased last suffix when the policy allow-lists it.
    """
    for root in roots:
        prefix = root.path
        if path.startswith(prefix) and len(path) > len(prefix) and path[len(prefix)] in "/\\":
            parts = PurePath(path[len(prefix) + 1 :]).parts
            if not parts:
                return None
            depth = min(len(parts) - 1, MAX_FILE_DEPTH)
            suffix = PurePath(parts[-1]).suffix.lower().lstrip(".")
            ext = suffix if suffix in extensions and EXTENSION_PATTERN.match(suffix) else None
            return MinimizedPath(root.root_class, depth, ext)
    return None
