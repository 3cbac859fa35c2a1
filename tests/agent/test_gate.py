"""The consent gate: each category's capture state from real consent (read from a real vault's ledger)
and the circumstances around it, and which of them win when several hold at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.gate import DROP_STATES, OPEN_STATES, Circumstances, category_status, eligible
from agent.status import CaptureState
from devkit.factories import grant
from protocol.categories import ALL_CATEGORIES, Category
from protocol.timeutil import iso
from vault import consent_ops
from vault.consent import FOREVER, CategoryConsent
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
POLICY = MachinePolicy()


@pytest.fixture
def vault(layout: Layout) -> Iterator[Vault]:
    with Vault.open(layout) as vault:
        yield vault


def consent(vault: Vault, category: Category, policy: MachinePolicy = POLICY) -> CategoryConsent:
    return vault.consent(policy).categories[category]


def test_a_granted_category_is_captured_under_its_receipt(vault: Vault) -> None:
    rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
    keyboard = consent(vault, Category.KEYBOARD)
    status = category_status(keyboard, Circumstances(now=NOW), None)
    assert status.state is CaptureState.CAPTURING
    assert status.receipt_id == rid and status.reason is None
    assert eligible(keyboard, Circumstances(now=NOW))


@pytest.mark.parametrize("revoked", [False, True], ids=["never-granted", "revoked"])
def test_a_category_without_consent_is_not_captured_and_its_data_is_dropped(vault: Vault, revoked: bool) -> None:
    if revoked:
        grant(vault, Category.MOUSE, NOW - timedelta(hours=2))
        consent_ops.revoke(vault, POLICY, [Category.MOUSE], method="cli", now=NOW - timedelta(hours=1))
    mouse = consent(vault, Category.MOUSE)
    status = category_status(mouse, Circumstances(now=NOW), None)
    assert status.state is (CaptureState.REVOKED if revoked else CaptureState.NOT_GRANTED)
    assert status.receipt_id is None and status.state in DROP_STATES
    assert not eligible(mouse, Circumstances(now=NOW))


def test_a_grant_under_terms_the_policy_has_since_widened_is_suspended(vault: Vault) -> None:
    grant(vault, Category.APPS, NOW - timedelta(hours=1), MachinePolicy(retention_days=30))
    apps = consent(vault, Category.APPS, MachinePolicy(retention_days=90))
    status = category_status(apps, Circumstances(now=NOW), None)
    assert status.state is CaptureState.SUSPENDED
    assert status.reason is not None and "consentry consent grant apps" in status.reason
    assert status.state in DROP_STATES
    assert not eligible(apps, Circumstances(now=NOW))


def test_a_category_the_policy_no_longer_offers_is_forbidden(vault: Vault) -> None:
    grant(vault, Category.FILES, NOW - timedelta(hours=1))
    narrowed = MachinePolicy(allowed_categories=(Category.KEYBOARD,))
    files = consent(vault, Category.FILES, narrowed)
    status = category_status(files, Circumstances(now=NOW), None)
    assert status.state is CaptureState.FORBIDDEN_BY_POLICY
    assert status.reason == "the machine policy does not offer this category"
    assert not eligible(files, Circumstances(now=NOW))


def test_an_invalid_policy_stops_every_category_even_a_granted_one(vault: Vault) -> None:
    grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
    broken = Circumstances(now=NOW, policy_error="policy.toml: retention_days must be at least 1")
    for category in ALL_CATEGORIES:
        status = category_status(consent(vault, category), broken, None)
        assert status.state is CaptureState.FORBIDDEN_BY_POLICY and status.receipt_id is None
        assert status.reason == "the machine policy is invalid, so nothing is captured until IT fixes it"
        assert not eligible(consent(vault, category), broken)


def test_a_timed_pause_stops_capture_until_it_ends_and_keeps_the_window(vault: Vault) -> None:
    rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
    keyboard = consent(vault, Category.KEYBOARD)
    until = NOW + timedelta(minutes=30)
    paused = Circumstances(now=NOW, paused_until=until)
    status = category_status(keyboard, paused, None)
    assert status.state is CaptureState.PAUSED and status.receipt_id == rid
    assert status.reason == f"paused until {iso(until)}"
    assert status.state not in DROP_STATES and status.state not in OPEN_STATES  # cut, kept, not held open
    assert not eligible(keyboard, paused)
    over = Circumstances(now=until, paused_until=until)
    assert category_status(keyboard, over, None).state is CaptureState.CAPTURING
    assert eligible(keyboard, over)


def test_a_pause_without_an_end_says_until_resumed(vault: Vault) -> None:
    grant(vault, Category.MOUSE, NOW - timedelta(hours=1))
    status = category_status(consent(vault, Category.MOUSE), Circumstances(now=NOW, paused_until=FOREVER), None)
    assert status.state is CaptureState.PAUSED and status.reason == "paused until resumed"


def test_an_unreadable_exclusion_list_stops_every_category(vault: Vault) -> None:
    for category in ALL_CATEGORIES:
        grant(vault, category, NOW - timedelta(hours=1))
    broken = Circumstances(now=NOW, settings_error="excluded_apps.json cannot be read")
    for category in ALL_CATEGORIES:
        status = category_status(consent(vault, category), broken, None)
        assert status.state is CaptureState.SETTINGS_ERROR
        assert status.reason == "excluded_apps.json cannot be read"
        assert not eligible(consent(vault, category), broken)


def test_a_folder_list_outside_the_grant_stops_files_only(vault: Vault) -> None:
    for category in ALL_CATEGORIES:
        grant(vault, category, NOW - timedelta(hours=1))
    mismatch = Circumstances(now=NOW, scope_error="watched_folders.json does not match the folders you granted")
    files = category_status(consent(vault, Category.FILES), mismatch, None)
    assert files.state is CaptureState.SETTINGS_ERROR and files.reason == mismatch.scope_error
    assert not eligible(consent(vault, Category.FILES), mismatch)
    for category in (Category.KEYBOARD, Category.MOUSE, Category.APPS):
        assert category_status(consent(vault, category), mismatch, None).state is CaptureState.CAPTURING
        assert eligible(consent(vault, category), mismatch)


def test_a_vault_that_cannot_be_written_stops_capture(vault: Vault) -> None:
    rid = grant(vault, Category.MOUSE, NOW - timedelta(hours=1))
    full = Circumstances(now=NOW, storage_error="the vault cannot be written (disk full)")
    status = category_status(consent(vault, Category.MOUSE), full, None)
    assert status.state is CaptureState.STORAGE_ERROR and status.receipt_id == rid
    assert status.reason == "the vault cannot be written (disk full)"
    assert not eligible(consent(vault, Category.MOUSE), full)


def test_an_unavailable_source_is_reported_but_still_allowed_to_retry(vault: Vault) -> None:
    rid = grant(vault, Category.MOUSE, NOW - timedelta(hours=1))
    mouse = consent(vault, Category.MOUSE)
    status = category_status(mouse, Circumstances(now=NOW), "cannot connect to the display for input capture")
    assert status.state is CaptureState.UNAVAILABLE and status.receipt_id == rid
    assert status.reason == "cannot connect to the display for input capture"
    assert status.state in OPEN_STATES
    assert eligible(mouse, Circumstances(now=NOW))


def test_an_excluded_application_in_focus_holds_the_window_open(vault: Vault) -> None:
    rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
    keyboard = consent(vault, Category.KEYBOARD)
    focused = Circumstances(now=NOW, excluded_focused=True)
    status = category_status(keyboard, focused, None)
    assert status.state is CaptureState.EXCLUDED_APP_FOCUSED and status.receipt_id == rid
    assert status.reason == "an excluded application has focus: nothing is captured"
    assert status.state in OPEN_STATES
    assert eligible(keyboard, focused)


def test_when_everything_goes_wrong_at_once_the_most_fundamental_reason_is_shown(vault: Vault) -> None:
    grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
    keyboard = consent(vault, Category.KEYBOARD)
    worst: dict[str, Any] = dict(
        policy_error="invalid policy",
        settings_error="excluded_apps.json cannot be read",
        paused_until=FOREVER,
        storage_error="the vault cannot be written (disk full)",
        excluded_focused=True,
    )
    order = [
        ("policy_error", CaptureState.FORBIDDEN_BY_POLICY),
        ("settings_error", CaptureState.SETTINGS_ERROR),
        ("paused_until", CaptureState.PAUSED),
        ("storage_error", CaptureState.STORAGE_ERROR),
        (None, CaptureState.UNAVAILABLE),  # the source's own problem
        ("excluded_focused", CaptureState.EXCLUDED_APP_FOCUSED),
    ]
    problem: str | None = "the input session went away"
    for cleared, expected in order:
        assert category_status(keyboard, Circumstances(now=NOW, **worst), problem).state is expected
        if cleared is None:
            problem = None
        else:
            worst.pop(cleared)
    assert category_status(keyboard, Circumstances(now=NOW, **worst), problem).state is CaptureState.CAPTURING
