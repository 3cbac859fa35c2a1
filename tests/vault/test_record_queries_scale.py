"""What ``consentry mydata`` asks the vault by default reads the period shown, never the whole table.

Its cost must not grow with the vault (issue 17 section 3: 1M records). Checked without timing: each
statement the default view runs is planned by SQLite itself (``EXPLAIN QUERY PLAN``), and none may
scan the records table or a whole index of it. The stored count kept for "N of M stored" follows
every write and deletion.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devkit.factories import grant, keyboard_window, mouse_window
from protocol.categories import Category
from vault.paths import Layout
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
MINUTE = int(NOW.timestamp()) // 60 * 60


def _filled(layout: Layout) -> Vault:
    vault = Vault.open(layout)
    kb = grant(vault, Category.KEYBOARD, NOW - timedelta(days=3))
    ms = grant(vault, Category.MOUSE, NOW - timedelta(days=3))
    first = MINUTE - 2 * 86400
    vault.write_windows(
        [
            w
            for i in range(0, 2 * 1440, 7)
            for w in (keyboard_window(first + 60 * i, kb), mouse_window(first + 60 * i, ms))
        ]
    )
    vault.db.execute("ANALYZE")  # as a long-lived vault has statistics; the plan must not depend on their absence
    return vault


def _plans(vault: Vault, run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Each SELECT on records that ``run`` makes, with SQLite's plan for it."""
    seen: list[str] = []
    vault.db.set_trace_callback(seen.append)
    try:
        run()
    finally:
        vault.db.set_trace_callback(None)
    plans = {}
    for sql in seen:
        if sql.lstrip().upper().startswith("SELECT") and "records" in sql:
            rows = vault.db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            plans[sql] = " | ".join(str(row[-1]) for row in rows)
    return plans


def test_the_default_mydata_queries_read_only_the_period_shown(layout: Layout) -> None:
    vault = _filled(layout)
    try:

        def default_view() -> None:
            newest = vault.newest_record_start()
            assert newest is not None
            start, end = newest - 86400, newest + 1
            vault.count_windows(None, start, end)
            vault.count_windows()
            assert len(list(vault.iter_records_as_stored(None, start=start, end=end, newest=100))) == 100

        plans = _plans(vault, default_view)
        assert len(plans) >= 3
        for sql, plan in plans.items():
            assert "SCAN records" not in plan, f"{sql}\n  plans a full scan: {plan}"
    finally:
        vault.close()


def test_the_stored_count_follows_writes_and_erasures(layout: Layout) -> None:
    from vault.shredding import erase_categories

    vault = _filled(layout)
    try:

        def truth(category: str | None = None) -> int:
            sql = "SELECT COUNT(*) FROM records" + (" WHERE category = ?" if category else "")
            return int(vault.db.execute(sql, (category,) if category else ()).fetchone()[0])

        assert vault.count_windows() == truth() > 0
        assert vault.count_windows("mouse") == truth("mouse")
        erase_categories(vault, [Category.MOUSE], now=NOW, revoked_too=False)
        assert vault.count_windows("mouse") == truth("mouse") == 0
        assert vault.count_windows() == truth() == vault.count_windows("keyboard")
    finally:
        vault.close()
