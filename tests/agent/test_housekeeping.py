"""The agent's chores: retention, one sealed batch per UTC day, and nothing without a valid policy."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from agent.housekeeping import Housekeeper, run_chores
from devkit.factories import grant, mouse_window
from protocol.categories import Category
from protocol.timeutil import utc_midnight
from vault import outbox
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)


def test_chores_shred_old_data_and_seal_only_finished_days(layout: Layout) -> None:
    policy = MachinePolicy(retention_days=5)
    today = utc_midnight(NOW)
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.MOUSE, NOW - timedelta(days=10), policy)
        vault.write_windows(
            [mouse_window(today - 86400 * 8, rid), mouse_window(today - 3600, rid), mouse_window(today, rid)]
        )
    done = run_chores(layout, policy, NOW)
    assert done["retention_shredded_keys"] == 1 and done["sealed_batch"]
    with Vault.open(layout) as vault:
        (info,) = outbox.list_batches(vault)
        assert info.record_counts == {"mouse": 1} and info.period_end <= today  # today's window waits
    again = run_chores(layout, policy, NOW)
    assert again == {"retention_shredded_keys": 0, "sealed_batch": None}


def test_housekeeper_does_nothing_without_a_valid_policy(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.MOUSE, NOW - timedelta(days=3))
        vault.write_windows([mouse_window(utc_midnight(NOW) - 7200, rid)])
    keeper = Housekeeper(layout, lambda: None, tick=0.05)
    keeper.start()
    time.sleep(0.4)
    keeper.stop()
    assert keeper.last_result is None
    with Vault.open(layout) as vault:
        assert outbox.list_batches(vault) == []
    keeper = Housekeeper(layout, MachinePolicy, tick=0.05)
    keeper.start()
    deadline = time.monotonic() + 10
    while keeper.last_result is None and time.monotonic() < deadline:
        time.sleep(0.05)
    keeper.stop()
    assert keeper.last_error is None and keeper.last_result and keeper.last_result["sealed_batch"]


def test_chores_ship_only_for_a_whole_enrollment(layout: Layout) -> None:
    """A stray ``store_url`` in the vault's meta (no store or log key) is not an enrollment: nothing is tried."""
    from protocol.fields import b64encode
    from vault.policy import StoreConfig

    key = b64encode(b"\x01" * 32)
    policy = MachinePolicy(store=StoreConfig(url="https://127.0.0.1:9", public_key=key, log_key=key))
    with Vault.open(layout) as vault:
        with vault.transaction():
            vault.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (outbox.META_URL, "https://127.0.0.1:9"))
        assert outbox.enrollment(vault) is None
    done = run_chores(layout, policy, NOW)
    assert "shipped" not in done and "sync_errors" not in done
