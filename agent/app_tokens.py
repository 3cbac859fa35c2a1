"""A focused application's name -> what may be kept: ``cat:<category>`` or a keyed ``anon:`` token.

The name itself (WM_CLASS, macOS application name, Windows executable) never leaves ``resolve``.
Names outside the allow-list become ``anon:`` + 16 hex of an HMAC-SHA256 under a per-vault secret:
stable on this machine so focus time adds up, unlinkable elsewhere (the release step re-keys per
batch), and not a plain hash, which a dictionary of application names would reverse.

Tokens are stored in the vault, so their derivation is versioned rather than changed:

    version 1  HMAC(secret "app-token", name)                                  vaults that have that secret
    version 2  HMAC(secret "app-token-v2", "consentry-local-app-token-v2\0" || name)   every newer vault

A vault keeps the version it started with (``token_key``): moving an existing vault to version 2 would
give every application a second token and split its history in two.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import NamedTuple, Protocol

from protocol import domains
from protocol.categories import AppCategory
from protocol.errors import VaultCorrupted
from vault.policy import MachinePolicy

ALLOW_LIST_RESOURCE = "app_categories.toml"
TOKEN_SECRET_NAME = "app-token"  # version 1
TOKEN_SECRET_NAME_V2 = "app-token-v2"
TOKEN_VERSION = 2  # of tokens in a new vault
_TOKEN_PREFIXES = {1: b"", 2: domains.LOCAL_APP_TOKEN_V2}


class SecretSource(Protocol):
    """What ``token_key`` needs of a vault (``vault.Vault.local_secret``)."""

    def local_secret(self, name: str, *, create: bool = True) -> bytes: ...


class TokenKey(NamedTuple):
    secret: bytes
    version: int

    def __repr__(self) -> str:  # never show the secret
        return f"TokenKey(version={self.version})"


def token_key(vault: SecretSource) -> TokenKey:
    """The vault's app-token key: version 1 where it already made version-1 tokens, else version 2."""
    try:
        return TokenKey(vault.local_secret(TOKEN_SECRET_NAME, create=False), 1)
    except VaultCorrupted:  # no version-1 secret: a vault made after version 2 existed
        return TokenKey(vault.local_secret(TOKEN_SECRET_NAME_V2), TOKEN_VERSION)


class ResolvedApp(NamedTuple):
    token: str | None  # None when the name is empty (no application has focus)
    excluded: bool


def load_allow_list() -> dict[str, AppCategory]:
    """The application categories shipped with the agent (agent/data/app_categories.toml)."""
    text = resources.files("agent").joinpath("data", ALLOW_LIST_RESOURCE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    if data.get("version") != 1:
        raise ValueError(f"{ALLOW_LIST_RESOURCE}: unsupported version {data.get('version')!r}")
    return {str(name).lower(): AppCategory(value) for name, value in data["apps"].items()}


def normalise(name: str) -> str:
    name = name.strip().lower()
    return name.removesuffix(".exe")


class AppResolver:
    """Maps application names to tokens and says whether they are excluded from capture."""

    def __init__(
        self, categories: Mapping[str, AppCategory], excluded: Iterable[str], secret: bytes | TokenKey
    ) -> None:
        key = secret if isinstance(secret, TokenKey) else TokenKey(secret, 1)  # bare bytes: version 1
        if len(key.secret) < 16:
            raise ValueError("the app-token secret must be at least 16 bytes")
        if key.version not in _TOKEN_PREFIXES:
            raise ValueError(f"unknown app-token version {key.version}")
        self._categories = {normalise(k): v for k, v in categories.items()}
        self._excluded = frozenset(normalise(name) for name in excluded if name.strip())
        self._secret = key.secret
        self._prefix = _TOKEN_PREFIXES[key.version]

    @classmethod
    def for_policy(
        cls, policy: MachinePolicy, employee_excluded: Iterable[str], secret: bytes | TokenKey
    ) -> AppResolver:
        categories = {**load_allow_list(), **policy.app_categories}
        return cls(categories, (*policy.excluded_apps, *employee_excluded), secret)

    def resolve(self, *names: str | None) -> ResolvedApp:
        """Resolve an application known by one or more names, most specific first.

        On X11 these are WM_CLASS's class and instance: the class names the application for its
        category and token; either name being excluded is enough to exclude it.
        """
        cleaned = [normalise(n) for n in names if n and n.strip()]
        if not cleaned:
            return ResolvedApp(None, False)
        excluded = any(name in self._excluded for name in cleaned)
        primary = cleaned[0]
        category = self._categories.get(primary)
        if category is not None:
            return ResolvedApp(f"cat:{category.value}", excluded)
        digest = hmac.new(self._secret, self._prefix + primary.encode("utf-8"), hashlib.sha256).hexdigest()
        return ResolvedApp(f"anon:{digest[:16]}", excluded)
