"""``agent.erasure``: erasing on this computer by category, by period, or everything, and deleting a
vault that cannot be opened (``erase --all --force``), against real vault files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.erasure import Erasure, erase
from devkit.factories import grant, keyboard_window, mouse_window
from protocol.categories import Category
from protocol.errors import ConsentryError
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

T0 = 1_772_442_000  # 2026-03-02 09:00 UTC
NOW = datetime.fromtimestamp(T0, UTC) + timedelta(days=3)


def _seed(layout: Layout) -> None:
    """Keyboard and mouse windows on 2026-03-02 and 2026-03-03."""
    with Vault.open(layout) as vault:
        keys = grant(vault, Category.KEYBOARD, datetime.fromtimestamp(T0 - 3600, UTC))
        mouse = grant(vault, Category.MOUSE, datetime.fromtimestamp(T0 - 3600, UTC))
        vault.write_windows([keyboard_window(T0, keys), mouse_window(T0, mouse), keyboard_window(T0 + 86_400, keys)])


def test_erasing_a_category_destroys_its_keys_and_records_only(layout: Layout) -> None:
    _seed(layout)
    done = erase(layout, now=NOW, categories=[Category.KEYBOARD])
    assert done == Erasure(keys_destroyed=2)  # one data key per category and UTC day
    with Vault.open(layout) as vault:
        assert vault.count_windows("keyboard") == 0 and vault.count_windows("mouse") == 1
        (entry,) = vault.ledger.entries(("erase",))
        assert entry.body["erased_categories"] == ["keyboard"] and entry.body["categories"] == []
        assert vault.consent(MachinePolicy()).categories[Category.KEYBOARD].state == "granted"  # not withdrawn


def test_erasing_a_period_destroys_the_keys_of_those_days_only(layout: Layout) -> None:
    _seed(layout)
    done = erase(layout, now=NOW, period=("2026-03-03", "2026-03-03"))
    assert done.keys_destroyed == 1 and done.files_deleted is False
    with Vault.open(layout) as vault:
        assert [(w.category, w.start) for w in vault.read_windows()] == [("keyboard", T0), ("mouse", T0)]
        (entry,) = vault.ledger.entries(("erase",))
        assert (entry.body["first_day"], entry.body["last_day"]) == ("2026-03-03", "2026-03-03")


def test_erasing_everything_withdraws_every_grant_and_replaces_the_vault_key(layout: Layout) -> None:
    _seed(layout)
    old_kek = layout.kek_file.read_bytes()
    done = erase(layout, now=NOW, everything=True)
    assert done == Erasure(keys_destroyed=3)  # no store in the policy: nothing to ask of it
    assert layout.kek_file.read_bytes() != old_kek
    with Vault.open(layout) as vault:
        assert vault.count_windows() == 0
        states = {c: s.state for c, s in vault.consent(MachinePolicy()).categories.items()}
    assert states[Category.KEYBOARD] == states[Category.MOUSE] == "revoked"
    assert states[Category.APPS] == states[Category.FILES] == "not_granted"


def test_a_vault_that_cannot_be_opened_is_deleted_only_when_forced(layout: Layout) -> None:
    _seed(layout)
    layout.kek_file.unlink()
    with pytest.raises(ConsentryError):
        erase(layout, now=NOW, everything=True)
    assert layout.vault_db.exists()
    assert erase(layout, now=NOW, everything=True, force=True) == Erasure(files_deleted=True)
    assert not layout.vault_db.exists() and not layout.key_dir.exists()


@pytest.mark.parametrize(
    "choice",
    [{}, {"everything": True, "categories": [Category.MOUSE]}, {"categories": [Category.MOUSE], "force": True}],
    ids=["nothing", "two-scopes", "force-without-everything"],
)
def test_misuse_is_a_precise_error_and_erases_nothing(layout: Layout, choice: dict[str, object]) -> None:
    _seed(layout)
    with pytest.raises(ValueError):
        erase(layout, now=NOW, **choice)  # type: ignore[arg-type]
    with Vault.open(layout) as vault:
        assert vault.count_windows() == 3
