"""One neutral root for every error Consentry raises on purpose; the vault's root is the vault's alone."""

from __future__ import annotations

import pytest

from agent.shipping import ShippingError
from protocol.errors import (
    ConsentError,
    ConsentryError,
    InsecurePermissions,
    InvalidRecord,
    KeyUnavailable,
    LedgerBroken,
    LedgerRolledBack,
    PolicyError,
    UnsupportedVersion,
    VaultCorrupted,
    VaultError,
)
from protocol.store_errors import Conflict, StoreError, UntrustedStore


@pytest.mark.parametrize("error", [StoreError, Conflict, UntrustedStore, ShippingError])
def test_store_and_shipping_errors_are_not_vault_errors(error: type[Exception]) -> None:
    assert issubclass(error, ConsentryError) and not issubclass(error, VaultError)


@pytest.mark.parametrize("error", [InvalidRecord, UnsupportedVersion, KeyUnavailable, InsecurePermissions, PolicyError])
def test_errors_of_shared_formats_and_files_hang_from_the_neutral_root(error: type[Exception]) -> None:
    """The store raises these too (a batch that does not open, a newer format, a loose key file)."""
    assert issubclass(error, ConsentryError) and not issubclass(error, VaultError)


@pytest.mark.parametrize("error", [VaultCorrupted, ConsentError, LedgerBroken, LedgerRolledBack])
def test_the_vaults_own_errors_are_vault_errors(error: type[Exception]) -> None:
    assert issubclass(error, VaultError) and issubclass(error, ConsentryError)
