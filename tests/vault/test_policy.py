"""The machine policy: precise errors, narrowing only, embedded defaults."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.categories import Category
from protocol.errors import PolicyError
from vault.policy import MachinePolicy, load_policy, parse_policy

KEY = base64.b64encode(bytes(32)).decode()


def test_missing_file_means_embedded_defaults(tmp_path: Path) -> None:
    policy = load_policy(tmp_path / "absent.toml")
    assert policy == MachinePolicy() and set(policy.allowed_categories) == set(Category)


def test_full_policy_parses(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"""
allowed_categories = ["keyboard", "mouse"]
retention_days = 14
aggregation_window_seconds = 30
hold_hours = 48
excluded_apps = ["MyBank", "keepassxc"]
file_extensions = [".PY", "md"]
[app_categories]
"MyIDE" = "ide"
[store]
url = "https://consentry.corp.example:8443"
public_key = "{KEY}"
[stewards]
approvals_required = 2
[stewards.keys]
alice = "{KEY}"
bob = "{base64.b64encode(bytes([1]) * 32).decode()}"
""")
    policy = load_policy(path)
    assert policy.allowed_categories == (Category.KEYBOARD, Category.MOUSE)
    assert "mybank" in policy.excluded_apps and policy.app_categories == {"myide": "ide"}
    assert policy.file_extensions == ("md", "py") and policy.stewards.approvals_required == 2
    assert len(policy.digest()) == 64


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("retention_dayz = 3", "retention_dayz", "unknown key"),
        ("retention_days = 0", "retention_days", "greater than or equal to 1"),
        ('allowed_categories = ["keyboard", "screen"]', "allowed_categories.1", "keyboard"),
        ("aggregation_window_seconds = 5", "aggregation_window_seconds", "10"),
        ('[store]\nurl = "ftp://x"\npublic_key = "AAAA"', "store.url", "pattern"),
        (f'[store]\nurl = "https://x"\npublic_key = "{KEY[:-4]}"', "store.public_key", "32 bytes"),
        (f'[stewards]\napprovals_required = 2\n[stewards.keys]\na = "{KEY}"', "stewards", "only 1 steward"),
        ("version = 2", "version", "not supported"),
        ("retention_days = [", "", "not valid TOML"),
    ],
)
def test_invalid_policy_names_file_key_and_problem(text: str, key: str, words: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="/etc/xdg/consentry/policy.toml")
    message = str(info.value)
    assert "/etc/xdg/consentry/policy.toml" in message and key in message and words in message


def test_unreadable_policy_is_an_error_not_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(path)


def test_an_empty_policy_file_is_an_error_not_defaults(tmp_path: Path) -> None:
    """A file rewritten in place is empty for a moment: read then, it must not mean the defaults."""
    path = tmp_path / "policy.toml"
    path.write_bytes(b"")
    with pytest.raises(PolicyError, match="is empty") as info:
        load_policy(path)
    assert "delete it" in str(info.value)  # what to do, if the defaults were meant
    path.write_text("# the defaults, on purpose\n")
    assert load_policy(path) == MachinePolicy()


def test_policy_has_no_field_that_grants_consent() -> None:
    fields = {f.name for f in dataclasses.fields(MachinePolicy)}
    assert not {f for f in fields if "grant" in f or "consent" in f or "enable" in f}
    with pytest.raises(PolicyError, match="unknown key"):
        parse_policy('granted_categories = ["keyboard"]')


def test_shipped_example_policy_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "packaging" / "policy.example.toml"
    policy = load_policy(example)
    assert policy.retention_days == 30 and "hr-portal" in policy.excluded_apps


def test_it_guide_documents_every_policy_key() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "it.md").read_text()
    from vault.policy import OrganisationConfig, StewardConfig, StoreConfig

    names = [f.name for f in dataclasses.fields(MachinePolicy)]
    names += [f"store.{f.name}" for f in dataclasses.fields(StoreConfig)]
    names += [f"stewards.{f.name}" for f in dataclasses.fields(StewardConfig)]
    names += [f"organisation.{f.name}" for f in dataclasses.fields(OrganisationConfig)]
    missing = [n for n in names if f"`{n}`" not in guide and n not in ("store", "stewards", "organisation")]
    assert not missing, f"docs/it.md does not document {missing}"


FULL_POLICY = f"""
allowed_categories = ["keyboard", "mouse"]
retention_days = 14
excluded_apps = ["MyBank"]
[store]
url = "https://consentry.corp.example:8443"
public_key = "{KEY}"
[stewards]
[stewards.keys]
alice = "{KEY}"
"""


def test_cached_policy_is_the_validated_one_and_follows_the_file(tmp_path: Path) -> None:
    path, cache = tmp_path / "policy.toml", tmp_path / "cache" / "policy.json"
    path.write_text(FULL_POLICY)
    first = load_policy(path, cache=cache)
    assert json.loads(cache.read_text())["policy"]["retention_days"] == 14
    again = load_policy(path, cache=cache)
    assert again == first and again.digest() == first.digest() == load_policy(path).digest()
    path.write_text(FULL_POLICY.replace("retention_days = 14", "retention_days = 9"))
    assert load_policy(path, cache=cache).retention_days == 9  # keyed by the file's hash: never stale
    path.write_text("retention_days = 0")
    with pytest.raises(PolicyError, match="retention_days"):
        load_policy(path, cache=cache)  # an invalid file is an error, whatever the cache holds


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: "not json",
        lambda entry: json.dumps({**entry, "format": 99}),
        lambda entry: json.dumps({**entry, "policy": {**entry["policy"], "retention_days": 0}}),
        lambda entry: json.dumps({**entry, "policy": {**entry["policy"], "hold_hours": 1.0}}),
        lambda entry: json.dumps({**entry, "policy": {**entry["policy"], "allowed_categories": ["screen"]}}),
    ],
)
def test_a_damaged_or_tampered_cache_is_ignored_and_the_file_validated_again(tmp_path: Path, damage) -> None:
    path, cache = tmp_path / "policy.toml", tmp_path / "policy-cache.json"
    path.write_text(FULL_POLICY)
    expected = load_policy(path, cache=cache)
    cache.write_text(damage(json.loads(cache.read_text())))
    assert load_policy(path, cache=cache) == expected
    assert json.loads(cache.read_text())["policy"] == expected.to_json()  # rewritten from the file


def test_a_cached_policy_is_read_without_importing_pydantic(tmp_path: Path) -> None:
    path, cache = tmp_path / "policy.toml", tmp_path / "policy-cache.json"
    path.write_text(FULL_POLICY)
    digest = load_policy(path, cache=cache).digest()
    code = (
        "import sys; from pathlib import Path; from vault.policy import load_policy; "
        f"p = load_policy(Path({str(path)!r}), cache=Path({str(cache)!r})); "
        "print(p.digest(), 'pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [digest, "False"]
