"""The machine policy that IT deploys: it narrows what may be offered and never grants anything.

Loaded from ``/etc/xdg/consentry/policy.toml`` on Linux (see ``vault.paths.default_policy_path``). A
missing file means the embedded defaults below; a file that exists but is invalid is a ``PolicyError``
that names the file, the key and what is wrong, and capture does not run until it is fixed.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from protocol.atomic import write_atomic
from protocol.canonical import canonical_json, sha256_hex
from protocol.categories import ALL_CATEGORIES, AppCategory, Category
from protocol.errors import PolicyError
from protocol.policy_defaults import DEFAULT_SUBJECT_ROTATION_DAYS, DEFAULT_WINDOW_SECONDS
from protocol.stewards import StewardConfig, b64_key

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


_STORE_URL = re.compile(r"^https?://[^\s/]+(/.*)?$")
_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
# Unknown keys are errors when pydantic validates a policy file (the dataclasses are its schema).
_FORBID_EXTRA: Final = {"extra": "forbid"}


def _in_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be greater than or equal to {low:g} and at most {high:g}, got {value:g}")


@dataclass(frozen=True)
class StoreConfig:
    """Where approved batches go, and the store's keys (both 32-byte raw keys, base64).

    ``url``: the on-prem store's base URL. ``public_key``: the store's X25519 HPKE public key.
    ``log_key``: the store's Ed25519 tree-head key. ``tls_ca``: the PEM file the store's TLS certificate
    must chain to (a private CA, or the store's own self-signed certificate): the only trust anchor the
    agent uses for the store.
    """

    __pydantic_config__: ClassVar = _FORBID_EXTRA

    url: str
    public_key: str
    log_key: str | None = None
    tls_ca: str | None = None

    def __post_init__(self) -> None:
        if not _STORE_URL.match(self.url):
            raise ValueError(f"store.url must match the pattern http(s)://host[:port][/path], got {self.url!r}")
        b64_key(self.public_key, "store.public_key")
        if self.log_key is not None:
            b64_key(self.log_key, "store.log_key")
        # A pin on a plain-http URL would protect nothing while looking as if it did.
        if self.tls_ca is not None:
            if not self.url.startswith("https://"):
                raise ValueError("store.tls_ca is set, so store.url must start with https://")
            if not Path(self.tls_ca).is_absolute():
                raise ValueError("store.tls_ca must be an absolute path to a PEM file")


_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def _plain_text(name: str, value: str | None) -> None:
    if value is not None and (not _PRINTABLE.match(value) or not value.strip()):
        raise ValueError(f"{name} must be 1-200 characters of plain text on one line")


@dataclass(frozen=True)
class OrganisationConfig:
    """Who is responsible for the data, as every notice names them (``[organisation]`` in the policy).

    ``name``: the employer. ``controller``: the data controller under GDPR Art. 4(7) (often the same
    company, or its data protection officer's office). ``contact``: whom an employee asks (an address,
    a phone number or an office). ``works_council``: the reference of the works-council agreement that
    covers this collection, if there is one.
    """

    __pydantic_config__: ClassVar = _FORBID_EXTRA

    name: str
    controller: str
    contact: str
    works_council: str | None = None

    def __post_init__(self) -> None:
        for key in ("name", "controller", "contact", "works_council"):
            _plain_text(f"organisation.{key}", getattr(self, key))
            if getattr(self, key) is not None:
                object.__setattr__(self, key, getattr(self, key).strip())


@dataclass(frozen=True)
class MachinePolicy:
    """What IT allows on this machine. Nothing here can switch a category on.

    A plain frozen dataclass, so commands that only read it do not import pydantic; ``parse_policy``
    validates a file against it with pydantic, and ``__post_init__`` holds the rules every way of
    building one must pass (ranges, floors, normalisation).
    """

    __pydantic_config__: ClassVar = _FORBID_EXTRA

    version: int = 1  # the policy format version; only 1 exists
    allowed_categories: tuple[Category, ...] = ALL_CATEGORIES
    retention_days: int = 30
    aggregation_window_seconds: int = DEFAULT_WINDOW_SECONDS
    # A new random subject pseudonym per period of this many days, aligned to the UTC epoch so the whole
    # fleet rotates at the same moment (see vault/subjects.py).
    subject_rotation_days: int = DEFAULT_SUBJECT_ROTATION_DAYS
    # Floors (issue 7): hold_hours may not go below HOLD_HOURS_MINIMUM unless the explicit, logged
    # test/demo override is set; excluded_apps can only add to DEFAULT_EXCLUDED_APPS.
    hold_hours: float = 24.0
    allow_short_hold_for_testing: bool = False  # test/demo only; warned about everywhere
    excluded_apps: tuple[str, ...] = DEFAULT_EXCLUDED_APPS
    app_categories: dict[str, AppCategory] = field(default_factory=dict)
    file_extensions: tuple[str, ...] = DEFAULT_FILE_EXTENSIONS
    store: StoreConfig | None = None
    stewards: StewardConfig = field(default_factory=StewardConfig)
    # Who is responsible and whom to ask: shown in every notice (None: IT has not named them).
    organisation: OrganisationConfig | None = None

    def __post_init__(self) -> None:
        if self.version != 1:
            raise ValueError(f"policy version {self.version} is not supported by this Consentry (only 1)")
        _in_range("retention_days", self.retention_days, 1, 3650)
        _in_range("aggregation_window_seconds", self.aggregation_window_seconds, 10, 3600)
        _in_range("subject_rotation_days", self.subject_rotation_days, 1, 366)
        _in_range("hold_hours", self.hold_hours, 0.0, 24 * 30)
        if self.hold_hours < HOLD_HOURS_MINIMUM and not self.allow_short_hold_for_testing:
            raise ValueError(
                f"hold_hours is {self.hold_hours:g} but the minimum is {HOLD_HOURS_MINIMUM:g} (the employee's "
                "time to preview and veto a batch); a shorter hold is for tests and demos only, with "
                "allow_short_hold_for_testing = true"
            )
        # The defaults stay as written (their order is part of every existing receipt's policy digest);
        # a value the policy sets is normalised.
        if self.excluded_apps is not DEFAULT_EXCLUDED_APPS:
            # The built-in list is a floor: a policy adds to it and can never remove from it.
            apps = {v.strip().lower() for v in (*DEFAULT_EXCLUDED_APPS, *self.excluded_apps) if v.strip()}
            object.__setattr__(self, "excluded_apps", tuple(sorted(apps)))
        if self.file_extensions is not DEFAULT_FILE_EXTENSIONS:
            extensions = tuple(sorted({v.strip().lower().lstrip(".") for v in self.file_extensions}))
            for ext in extensions:
                if not _EXTENSION.match(ext):
                    raise ValueError(f"file extension {ext!r} must be 1-10 letters or digits")
            object.__setattr__(self, "file_extensions", extensions)
        if isinstance(self.stewards, dict):  # built in code from plain values: the same checks apply
            object.__setattr__(self, "stewards", StewardConfig(**self.stewards))
        if isinstance(self.organisation, dict):
            object.__setattr__(self, "organisation", OrganisationConfig(**self.organisation))
        object.__setattr__(self, "allowed_categories", tuple(self.allowed_categories))
        object.__setattr__(self, "app_categories", {k.strip().lower(): v for k, v in self.app_categories.items()})

    def warnings(self) -> list[str]:
        """What IT should know is unfit for production in this policy (shown by status, doctor, the agent)."""
        if not self.allow_short_hold_for_testing:
            return []
        return [
            f"allow_short_hold_for_testing = true: batches are held {self.hold_hours:g} h (the minimum for "
            f"employees is {HOLD_HOURS_MINIMUM:g} h); for tests and demos only, never in production"
        ]

    def allows(self, category: Category) -> bool:
        return category in self.allowed_categories

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON values, in field order (what ``policy show`` prints and ``digest`` hashes)."""
        data = asdict(self)
        data["allowed_categories"] = [c.value for c in self.allowed_categories]
        data["app_categories"] = {k: v.value for k, v in self.app_categories.items()}
        data["excluded_apps"], data["file_extensions"] = list(self.excluded_apps), list(self.file_extensions)
        if self.organisation is None:  # absent, not null: a policy without it keeps its digest
            del data["organisation"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MachinePolicy:
        """The inverse of ``to_json`` for the validated-policy cache; ``__post_init__`` checks it again."""
        store = data.get("store")
        apps, extensions = tuple(data["excluded_apps"]), tuple(data["file_extensions"])
        return cls(
            **{
                **data,
                "allowed_categories": tuple(Category(c) for c in data["allowed_categories"]),
                "app_categories": {k: AppCategory(v) for k, v in data["app_categories"].items()},
                # The defaults as such, so they keep their order and the digest stays the file's.
                "excluded_apps": DEFAULT_EXCLUDED_APPS if apps == DEFAULT_EXCLUDED_APPS else apps,
                "file_extensions": DEFAULT_FILE_EXTENSIONS if extensions == DEFAULT_FILE_EXTENSIONS else extensions,
                "store": StoreConfig(**store) if store is not None else None,
                "stewards": StewardConfig(**data["stewards"]),
                "organisation": OrganisationConfig(**data["organisation"]) if data.get("organisation") else None,
            }
        )

    def digest(self) -> str:
        """SHA-256 of the canonical policy, recorded in every grant receipt."""
        return sha256_hex(canonical_json(self.to_json()))


def parse_policy(text: str, *, source: str = "<policy>") -> MachinePolicy:
    """Parse TOML policy text, raising a ``PolicyError`` that names the source, key and problem."""
    import tomllib  # here, not at the top: a cached policy is read without it

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    # pydantic only here, where untrusted text becomes a policy: read commands use the cache instead.
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(MachinePolicy).validate_python(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
                msg = "unknown key (check its spelling; the policy accepts no other keys)"
            problems.append(f"{source}: {key}: {msg}")
        raise PolicyError("invalid machine policy:\n  " + "\n  ".join(problems)) from None


def load_policy(path: Path, *, cache: Path | None = None) -> MachinePolicy:
    """Load the policy at ``path``; a missing file means the embedded defaults, an empty one is an error.

    ``cache``: a file where the validated policy is kept, keyed by the SHA-256 of the policy file, so a
    command that only shows or withdraws does not pay for validating it again. The cache sits in the
    employee's own (writable) home, so commands that grant or capture never pass one: a tampered cache
    could then only change what is shown, never what is collected.
    """
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return MachinePolicy()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the machine policy: {exc}") from None
    if not raw:
        # A file rewritten in place is empty for a moment; read then as the defaults, it would widen
        # what may be captured and change the terms employees granted under.
        raise PolicyError(
            f"{path}: the machine policy file is empty; write the policy into it, "
            "or delete it to use the built-in defaults"
        )
    if cache is None:
        return parse_policy(text, source=str(path))
    source_sha256 = sha256_hex(raw)
    cached = _read_cache(cache, source_sha256)
    if cached is not None:
        return cached
    policy = parse_policy(text, source=str(path))
    _write_cache(cache, source_sha256, policy)
    return policy


_CACHE_FORMAT = 1


def _read_cache(cache: Path, source_sha256: str) -> MachinePolicy | None:
    """The cached policy for exactly this file content, or None (absent, stale or damaged: revalidate)."""
    try:
        entry = json.loads(cache.read_bytes())
        if entry.get("format") != _CACHE_FORMAT or entry.get("source_sha256") != source_sha256:
            return None
        return MachinePolicy.from_json(entry["policy"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _write_cache(cache: Path, source_sha256: str, policy: MachinePolicy) -> None:
    entry = {"format": _CACHE_FORMAT, "source_sha256": source_sha256, "policy": policy.to_json()}
    try:
        write_atomic(cache, json.dumps(entry, sort_keys=True).encode("utf-8"))
    except OSError:
        pass  # an optimisation only: the next read validates the file again
