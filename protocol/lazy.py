"""Lazy package exports (PEP 562): a package lists its API once and imports each module on first use.

This keeps ``import vault.paths`` or ``import protocol.fields`` cheap for the CLI, which must start fast,
while ``from protocol import seal_batch`` still works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map name -> module."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return names

    return names, __getattr__, __dir__
