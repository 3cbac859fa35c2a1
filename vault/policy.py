"""The machine policy that IT deploys: it narrows what may be offered and never grants anything.

Loaded from ``/etc/xdg/consentry/policy.toml`` on Linux (see ``vault.paths.default_policy_path``). A
missing file means the embedded defaults below; a file that exists but is invalid is a ``PolicyError``
that names the file, the key and what is wrong, and capture does not run until it is fixed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from protocol.canonical import canonical_json, sha256_hex
from protocol.categories import ALL_CATEGORIES, AppCategory, Category
from protocol.errors import PolicyError
from protocol.modelconfig import BOUNDARY
from protocol.policy_defaults import DEFAULT_SUBJECT_ROTATION_DAYS, DEFAULT_WINDOW_SECONDS
from protocol.stewards import StewardConfig, b64_key

_frozen = BOUNDARY

HOLD_HOURS_MINIMUM = 24.0
DEFAULT_EXCLUDED_APPS: tuple[str, ...] = (
    # Password managers, banking and HR: nothing is captured while one of these has focus.
    "keepassxc",
    "keepass2",
    "1password",
    "bitwarden",
    "lastpass",
    "enpass",
    "seahorse",
    "gnome-keyring",
    "kwalletmanager5",
    "pinentry",
    "pinentry-gtk-2",
    "pinentry-qt",
)
DEFAULT_FILE_EXTENSIONS: tuple[str, ...] = (
    "py",
    "js",
    "ts",
    "java",
    "c",
    "h",
    "cpp",
    "rs",
    "go",
    "rb",
    "md",
    "txt",
    "json",
    "toml",
    "yaml",
    "yml",
    "csv",
    "html",
    "css",
    "sql",
    "sh",
    "pdf",
    "docx",
    "xlsx",
    "pptx",
    "odt",
    "ods",
    "png",
    "jpg",
    "svg",
)


class StoreConfig(BaseModel):
    """Where approved batches go, and the store's keys (both 32-byte raw keys, base64)."""

    model_config = _frozen

    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/.*)?$", description="the on-prem store's base URL")]
    public_key: str = Field(description="the store's X25519 HPKE public key, base64")
    log_key: str | None = Field(default=None, description="the store's Ed25519 tree-head key, base64")
    tls_ca: str | None = Field(
        default=None,
        description="PEM file the store's TLS certificate must chain to (a private CA, or the store's own "
        "self-signed certificate): the only trust anchor the agent uses for the store",
    )

    @model_validator(mode="after")
    def _tls_ca_needs_https(self) -> StoreConfig:
        # A pin on a plain-http URL would protect nothing while looking as if it did.
        if self.tls_ca is not None:
            if not self.url.startswith("https://"):
                raise ValueError("store.tls_ca is set, so store.url must start with https://")
            if not Path(self.tls_ca).is_absolute():
                raise ValueError("store.tls_ca must be an absolute path to a PEM file")
        return self

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        return b64_key(value, "store.public_key")

    @field_validator("log_key")
    @classmethod
    def _log_key(cls, value: str | None) -> str | None:
        return None if value is None else b64_key(value, "store.log_key")


class MachinePolicy(BaseModel):
    """What IT allows on this machine. Nothing here can switch a category on."""

    model_config = _frozen

    version: int = Field(default=1, description="policy format version; only 1 exists")
    allowed_categories: tuple[Category, ...] = Field(default=ALL_CATEGORIES)
    retention_days: int = Field(default=30, ge=1, le=3650)
    aggregation_window_seconds: int = Field(default=DEFAULT_WINDOW_SECONDS, ge=10, le=3600)
    # A new random subject pseudonym per period of this many days, aligned to the UTC epoch so the whole
    # fleet rotates at the same moment (see vault/subjects.py).
    subject_rotation_days: int = Field(default=DEFAULT_SUBJECT_ROTATION_DAYS, ge=1, le=366)
    # Floors (issue 7): hold_hours may not go below HOLD_HOURS_MINIMUM unless the explicit, logged
    # test/demo override is set; excluded_apps can only add to DEFAULT_EXCLUDED_APPS.
    hold_hours: float = Field(default=24.0, ge=0.0, le=24 * 30)
    allow_short_hold_for_testing: bool = Field(default=False, description="test/demo only; warned about everywhere")
    excluded_apps: tuple[str, ...] = Field(default=DEFAULT_EXCLUDED_APPS)
    app_categories: dict[str, AppCategory] = Field(default_factory=dict)
    file_extensions: tuple[str, ...] = Field(default=DEFAULT_FILE_EXTENSIONS)
    store: StoreConfig | None = None
    stewards: StewardConfig = Field(default_factory=StewardConfig)

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"policy version {value} is not supported by this Consentry (only 1)")
        return value

    @field_validator("excluded_apps")
    @classmethod
    def _lower_apps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # The built-in list is a floor: a policy adds to it and can never remove from it.
        return tuple(sorted({v.strip().lower() for v in (*DEFAULT_EXCLUDED_APPS, *value) if v.strip()}))

    @model_validator(mode="after")
    def _hold_floor(self) -> MachinePolicy:
        if self.hold_hours < HOLD_HOURS_MINIMUM and not self.allow_short_hold_for_testing:
            raise ValueError(
                f"hold_hours is {self.hold_hours:g} but the minimum is {HOLD_HOURS_MINIMUM:g} (the employee's "
                "time to preview and veto a batch); a shorter hold is for tests and demos only, with "
                "allow_short_hold_for_testing = true"
            )
        return self

    def warnings(self) -> list[str]:
        """What IT should know is unfit for production in this policy (shown by status, doctor, the agent)."""
        if not self.allow_short_hold_for_testing:
            return []
        return [
            f"allow_short_hold_for_testing = true: batches are held {self.hold_hours:g} h (the minimum for "
            f"employees is {HOLD_HOURS_MINIMUM:g} h); for tests and demos only, never in production"
        ]

    @field_validator("app_categories")
    @classmethod
    def _lower_app_keys(cls, value: dict[str, AppCategory]) -> dict[str, AppCategory]:
        return {k.strip().lower(): v for k, v in value.items()}

    @field_validator("file_extensions")
    @classmethod
    def _extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(sorted({v.strip().lower().lstrip(".") for v in value}))
        for ext in cleaned:
            if not ext.isalnum() or len(ext) > 10:
                raise ValueError(f"file extension {ext!r} must be 1-10 letters or digits")
        return cleaned

    def allows(self, category: Category) -> bool:
        return category in self.allowed_categories

    def digest(self) -> str:
        """SHA-256 of the canonical policy, recorded in every grant receipt."""
        return sha256_hex(canonical_json(self.model_dump(mode="json")))


def parse_policy(text: str, *, source: str = "<policy>") -> MachinePolicy:
    """Parse TOML policy text, raising a ``PolicyError`` that names the source, key and problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    try:
        return MachinePolicy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check its spelling; the policy accepts no other keys)"
            problems.append(f"{source}: {key}: {msg}")
        raise PolicyError("invalid machine policy:\n  " + "\n  ".join(problems)) from None


def load_policy(path: Path) -> MachinePolicy:
    """Load the policy at ``path``; a missing file means the embedded defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return MachinePolicy()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the machine policy: {exc}") from None
    return parse_policy(text, source=str(path))
