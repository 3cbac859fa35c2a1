"""Every notice in plain words, from one source, naming who is responsible; the exact text a receipt
hashes stays what it was, so every earlier receipt still verifies."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from devkit.factories import grant
from protocol.categories import ALL_CATEGORIES, Category
from protocol.errors import PolicyError
from vault import consent_ops
from vault.notice_words import plain_sections, sections_as_text
from vault.paths import Layout
from vault.policy import MachinePolicy, OrganisationConfig, StoreConfig, parse_policy
from vault.vault import Vault

ORG = """
[organisation]
name = "Example Corp"
controller = "Example Corp, Data Protection Office"
contact = "privacy@corp.example or extension 4711"
works_council = "Works agreement BV-2026-07"
"""
STORE = StoreConfig(url="https://store.corp.example:8443/", public_key="A" * 43 + "=")
# SHA-256 of each notice's exact text under the embedded default policy, as shipped before the
# [organisation] table existed: a policy that does not use it must show (and hash) the same text.
FROZEN_DEFAULT_NOTICE_SHA256 = {
    "keyboard": "6a6a658f36df56c22608fe6f80d1b1aefb4ebbe3c506effded5c5db1f897ce6b",
    "mouse": "c61be86925ea17fbe460e7ab322bccf061990a1b97b30d3631f8bfc053dbccf6",
    "apps": "08f5a02751ab40c20b15fd6fd46f23f9adbaf4742e6c9d6a50737d50820a8c5f",
    "files": "0cf9afa500a536daafeef3b347e0f48bd25a63179d0b7bfd4233a1f71357f839",
}
JARGON = re.compile(r"keycode|input callback|callback|internal-work-pattern-models|https?://|[0-9a-f]{32}|`", re.I)


def _with_org(**changes: str) -> MachinePolicy:
    org = parse_policy(ORG).organisation
    assert org is not None
    values = {"name": org.name, "controller": org.controller, "contact": org.contact}
    values["works_council"] = org.works_council or ""
    values.update(changes)
    return MachinePolicy(store=STORE, organisation=OrganisationConfig(**values))


def test_the_organisation_table_is_validated() -> None:
    policy = parse_policy(ORG)
    assert policy.organisation is not None and policy.organisation.controller.startswith("Example Corp")
    assert policy.to_json()["organisation"]["works_council"] == "Works agreement BV-2026-07"
    assert MachinePolicy.from_json(policy.to_json()) == policy
    for bad, key in (
        ('name = ""', "organisation.name"),
        ('name = "two\\nlines"', "organisation.name"),
        ('nmae = "typo"', "organisation.nmae"),
    ):
        text = ORG.replace('name = "Example Corp"', bad)
        with pytest.raises(PolicyError, match=re.escape(key)):
            parse_policy(text, source="policy.toml")
    with pytest.raises(PolicyError, match="organisation.contact"):
        parse_policy(ORG.replace('contact = "privacy@corp.example or extension 4711"\n', ""))


def test_a_policy_without_organisation_keeps_its_digest_and_every_notice_text() -> None:
    policy = MachinePolicy()
    assert "organisation" not in policy.to_json()
    for category in ALL_CATEGORIES:
        _, text = consent_ops.notice_shown(category, policy)
        assert hashlib.sha256(text.encode()).hexdigest() == FROZEN_DEFAULT_NOTICE_SHA256[category.value]


def test_the_organisation_is_in_the_exact_text_and_so_in_the_receipts_hash(layout: Layout) -> None:
    policy = _with_org()
    _, text = consent_ops.notice_shown(Category.KEYBOARD, policy)
    assert "Data controller: Example Corp, Data Protection Office" in text
    assert "Works-council agreement: Works agreement BV-2026-07" in text
    with Vault.open(layout, create=True) as vault:
        receipt, _ = consent_ops.grant(
            vault, policy, Category.KEYBOARD, method="api", confirmation="yes-flag", now=datetime.now(UTC)
        )
    assert receipt.notice_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert receipt.controller == "Example Corp, Data Protection Office"


def test_another_controller_suspends_a_grant_but_naming_a_first_one_does_not(layout: Layout) -> None:
    now = datetime.now(UTC)
    with Vault.open(layout, create=True) as vault:
        grant(vault, Category.MOUSE, now - timedelta(hours=1), MachinePolicy(store=STORE))  # no controller named
        assert vault.consent(_with_org()).categories[Category.MOUSE].state == "granted"
        grant(vault, Category.KEYBOARD, now, _with_org())
        assert vault.consent(_with_org(contact="hr@corp.example")).categories[Category.KEYBOARD].state == "granted"
        moved = vault.consent(_with_org(controller="Other Holding Ltd")).categories[Category.KEYBOARD]
    assert moved.state == "suspended"
    assert "the data controller changed (Example Corp, Data Protection Office -> Other Holding Ltd)" in moved.reason


@pytest.mark.parametrize("policy", [MachinePolicy(), _with_org()], ids=["defaults", "store-and-organisation"])
def test_plain_sections_say_every_term_without_jargon(policy: MachinePolicy) -> None:
    for category in ALL_CATEGORIES:
        sections = consent_ops.notice_sections(category, policy)
        assert [s.title for s in sections] == [
            "What is kept",
            "What is never kept",
            "Who receives it, and why",
            "For how long",
            "How to stop and erase",
            "Whom to ask",
        ]
        words = " ".join(p for s in sections for p in s.paragraphs)
        assert not JARGON.search(sections_as_text(sections)), (category, JARGON.search(words))
        assert f"{policy.retention_days} days" in words and "minute" in words
        if policy.organisation is None:
            assert "Nobody else" in words and "has not named a contact" in words
        else:
            assert "Example Corp, Data Protection Office" in words and "extension 4711" in words
            assert "Works agreement BV-2026-07" in words and "data store of Example Corp" in words


def test_consent_grant_in_the_cli_shows_the_sections_then_the_exact_text(home: Path) -> None:
    result = CliRunner().invoke(cli, ["consent", "grant", "mouse", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("WHAT IS KEPT") < out.index("WHOM TO ASK") < out.index("THE EXACT TEXT YOU AGREE TO")
    _, exact = consent_ops.notice_shown(Category.MOUSE, MachinePolicy())
    assert exact in out


def test_sections_are_the_same_words_on_every_surface() -> None:
    from docs._ext.consentry_docs import ConsentNotices

    policy = MachinePolicy()
    lines = ConsentNotices.lines(None)  # type: ignore[arg-type]
    docs = "\n".join(lines)
    for category in ALL_CATEGORIES:
        for section in plain_sections(category, consent_ops.policy_terms(category, policy)):
            for paragraph in section.paragraphs:
                assert paragraph in docs


def test_policy_show_and_validate_show_the_organisation(home: Path, policy_path: Path) -> None:
    policy_path.write_text(ORG)
    shown = CliRunner().invoke(cli, ["policy", "show"], catch_exceptions=False).output
    assert "organisation = " in shown and "Example Corp, Data Protection Office" in shown
    policy_path.write_text(ORG.replace('contact = "privacy@corp.example or extension 4711"', 'contact = ""'))
    refused = CliRunner().invoke(cli, ["policy", "validate", str(policy_path)])
    assert refused.exit_code == 1 and "organisation.contact" in refused.output
