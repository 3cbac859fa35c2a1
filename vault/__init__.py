"""Consentry's vault: encrypted window records, keys, the consent ledger and the machine policy.

Imports nothing from pynput, watchdog, X11 or click, so the on-prem store can use it.
"""

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

__all__ = [
    "ALL_CATEGORIES", "AnyWindow", "AppCategory", "AppsWindow", "Category", "CategoryConsent", "ConsentError",
    "ConsentSnapshot", "FilesWindow", "GrantReceipt", "InsecurePermissions", "InvalidRecord", "KeyClass",
    "KeyUnavailable", "KeyboardWindow", "Layout", "LedgerBroken", "MachinePolicy", "MouseButton", "MouseWindow",
    "PolicyError", "UnsupportedVersion", "Vault", "VaultCorrupted", "VaultError", "default_layout",
    "default_policy_path", "load_policy", "parse_category", "parse_policy", "parse_window",
]
