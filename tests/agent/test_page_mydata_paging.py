"""My data on the employee's page pages like ``consentry mydata``: the latest day by default, a period
and a category to choose, 100 records a page counted from the newest. Read in a real headless Chromium
against a real vault, as the employee reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kit.page_link import page_link
from kit.web.server import PageServer
from protocol.categories import Category, KeyClass, MouseButton
from protocol.windows import KeyboardWindow, MouseWindow
from tests.agent.test_page_employee import _local, _open, page  # noqa: F401 (fixture)
from tests.browser_kit import chromium, wait_for
from vault import consent_ops
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

KEYS = 250  # on 2026-11-20 (local), one a minute from 08:00: three pages of 100, 100 and 50
MICE = 30  # on 2026-11-19


def _fill(layout: Layout) -> None:
    granted = datetime.fromtimestamp(_local(2026, 11, 18, 8, 0), UTC)
    with Vault.open(layout) as vault:
        rid = {
            c: consent_ops.grant(vault, MachinePolicy(), c, method="cli", confirmation="yes-flag", now=granted)[
                0
            ].receipt_id
            for c in (Category.KEYBOARD, Category.MOUSE)
        }
        windows: list[KeyboardWindow | MouseWindow] = []
        for i in range(KEYS):
            t = _local(2026, 11, 20, 8, 0) + 60 * i
            windows.append(
                KeyboardWindow(
                    start=t, end=t + 60, receipt_id=rid[Category.KEYBOARD], key_counts={KeyClass.LETTER: 40 + i},
                    iki_histogram=(0,) * 9, bursts=1, longest_burst=3, pauses=0, correction_ratio=0.0,
                )
            )  # fmt: skip
        for i in range(MICE):
            t = _local(2026, 11, 19, 9, 0) + 60 * i
            windows.append(
                MouseWindow(
                    start=t, end=t + 60, receipt_id=rid[Category.MOUSE], clicks={MouseButton.LEFT: 1},
                    scroll_steps=0, moves=10, distance_px=300.0, idle_seconds=1.0,
                )
            )  # fmt: skip
        vault.write_windows(windows)


def _rows(driver: object) -> list[str]:
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.ID, "records")  # type: ignore[attr-defined]
    return [row.text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def _records_heading(driver: object) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "records-heading").text)  # type: ignore[attr-defined]


def test_my_data_shows_the_latest_day_a_page_of_100_newest_first(
    page: PageServer,  # noqa: F811
    layout: Layout,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    _fill(layout)
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/mydata"))  # type: ignore[arg-type]
        heading = _records_heading(driver)
        assert "the latest day with data, 2026-11-20" in heading
        assert f"{KEYS} records of {KEYS + MICE} records stored" in heading
        assert "page 1 of 3" in heading and "newest first" in heading
        rows = _rows(driver)
        assert len(rows) == 100
        assert rows[0].startswith("2026-11-20 12:09") and rows[-1].startswith("2026-11-20 10:30")  # records 250..151

        driver.find_element(By.LINK_TEXT, "Older records").click()
        wait_for(lambda: "page 2 of 3" in _records_heading(driver), "page 2")
        rows = _rows(driver)
        assert len(rows) == 100 and rows[0].startswith("2026-11-20 10:29") and rows[-1].startswith("2026-11-20 08:50")
        driver.find_element(By.LINK_TEXT, "Older records").click()
        wait_for(lambda: "page 3 of 3" in _records_heading(driver), "page 3")
        rows = _rows(driver)
        assert len(rows) == 50 and rows[-1].startswith("2026-11-20 08:00")
        assert not driver.find_elements(By.LINK_TEXT, "Older records")  # the last page
        driver.find_element(By.LINK_TEXT, "Newer records").click()
        wait_for(lambda: "page 2 of 3" in _records_heading(driver), "back to page 2")


def test_my_data_filters_by_period_and_category_like_the_cli(
    page: PageServer,  # noqa: F811
    layout: Layout,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _fill(layout)
    with chromium(tmp_path / "profile") as driver:
        _open(driver, page_link(layout.page_link, "/mydata"))  # type: ignore[arg-type]
        form = driver.find_element(By.ID, "records-period")
        driver.execute_script(
            "arguments[0].value = '2026-11-19'; arguments[1].value = '2026-11-20';",
            form.find_element(By.NAME, "from"),
            form.find_element(By.NAME, "to"),
        )
        Select(form.find_element(By.NAME, "category")).select_by_value("mouse")
        form.find_element(By.TAG_NAME, "button").click()
        wait_for(lambda: "mouse" in _records_heading(driver), "the filtered records")
        heading = _records_heading(driver)
        assert "from 2026-11-19 00:00" in heading and f"{MICE} records of {MICE} records stored" in heading
        rows = _rows(driver)
        assert len(rows) == MICE and all("mouse" in row for row in rows)

        # A period the employee mistyped is said in words, and nothing else changes.
        driver.get(page.url + "mydata?from=yesterday")
        assert "is not a day" in driver.find_element(By.TAG_NAME, "main").text


def test_my_data_page_reads_only_what_it_shows_whatever_the_vault_size(layout: Layout) -> None:
    """No statement of the default My data page scans the records table (planned by SQLite, not timed)."""
    from agent.web.mydata_view import mydata_body
    from tests.vault.test_record_queries_scale import _plans

    _fill(layout)
    with Vault.open(layout) as vault:
        vault.db.execute("ANALYZE")
        tz = datetime.now().astimezone().tzinfo or UTC
        plans = _plans(vault, lambda: mydata_body(vault, None, tz, datetime.now().date(), {"page": "2"}))
    assert len(plans) >= 5
    for sql, plan in plans.items():
        assert "SCAN records" not in plan, f"{sql}\n  plans a full scan: {plan}"
