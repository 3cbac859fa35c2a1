"""Consentry's vault: encrypted window records, keys, the consent ledger and the machine policy.

Imports nothing from pynput, watchdog, X11 or click, so the on-prem store can use it. Names are
resolved lazily (PEP 562): ``import vault.errors`` stays cheap for the CLI, which must start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ALL_CATEGORIES": "vault.categories",
    "AppCategory": "vault.categories",
    "Category": "vault.categories",
    "KeyClass": "vault.categories",
    "MouseButton": "vault.categories",
    "parse_category": "vault.categories",
    "CategoryConsent": "vault.consent",
    "ConsentSnapshot": "vault.consent",
    "GrantReceipt": "vault.consent",
    "ConsentError": "vault.errors",
    "InsecurePermissions": "vault.errors",
    "InvalidRecord": "vault.errors",
    "KeyUnavailable": "vault.errors",
    "LedgerBroken": "vault.errors",
    "PolicyError": "vault.errors",
    "UnsupportedVersion": "vault.errors",
    "VaultCorrupted": "vault.errors",
    "VaultError": "vault.errors",
    "Layout": "vault.paths",
    "default_layout": "vault.paths",
    "default_policy_path": "vault.paths",
    "MachinePolicy": "vault.policy",
    "load_policy": "vault.policy",
    "parse_policy": "vault.policy",
    "Vault": "vault.vault",
    "AnyWindow": "vault.windows",
    "AppsWindow": "vault.windows",
    "FilesWindow": "vault.windows",
    "KeyboardWindow": "vault.windows",
    "MouseWindow": "vault.windows",
    "parse_window": "vault.windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vault' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from vault.categories import ALL_CATEGORIES, AppCategory, Category, KeyClass, MouseButton, parse_category
    from vault.consent import CategoryConsent, ConsentSnapshot, GrantReceipt
    from vault.errors import (
        ConsentError,
        InsecurePermissions,
        InvalidRecord,
        KeyUnavailable,
        LedgerBroken,
        PolicyError,
        UnsupportedVersion,
        VaultCorrupted,
        VaultError,
    )
    from vault.paths import Layout, default_layout, default_policy_path
    from vault.policy import MachinePolicy, load_policy, parse_policy
    from vault.vault import Vault
    from vault.windows import AnyWindow, AppsWindow, FilesWindow, KeyboardWindow, MouseWindow, parse_window
