"""The employee's vault: encrypted window records, keys, the consent ledger and the machine policy.

Imports nothing from pynput, watchdog, X11, click or the store; what it shares with the store is in
``protocol``. Names are resolved lazily (PEP 562): ``import vault.paths`` stays cheap for the CLI,
which must start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CategoryConsent": "vault.consent",
    "ConsentSnapshot": "vault.consent",
    "GrantReceipt": "vault.consent",
    "Layout": "vault.paths",
    "default_layout": "vault.paths",
    "default_policy_path": "vault.paths",
    "MachinePolicy": "vault.policy",
    "load_policy": "vault.policy",
    "parse_policy": "vault.policy",
    "Vault": "vault.vault",
}

__all__, __getattr__, __dir__ = lazy_exports("vault", _EXPORTS)


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from vault.consent import CategoryConsent, ConsentSnapshot, GrantReceipt
    from vault.paths import Layout, default_layout, default_policy_path
    from vault.policy import MachinePolicy, load_policy, parse_policy
    from vault.vault import Vault
