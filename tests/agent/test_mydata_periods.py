"""``consentry mydata`` at any vault size: one period at a time (default the latest day), pages, streamed JSON."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli
from devkit.factories import grant, mouse_window
from protocol.categories import Category
from vault.paths import Layout
from vault.vault import Vault


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The employee's computer is not on UTC: every day boundary and time shown must be local."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def _local(day: str, hour: int, minute: int = 0) -> int:
    return int(datetime.fromisoformat(f"{day} {hour:02d}:{minute:02d}").astimezone().timestamp())


def _vault_with(layout: Layout, starts: list[int]) -> None:
    with Vault.open(layout, create=True) as vault:
        rid = grant(vault, Category.MOUSE, datetime.fromtimestamp(min(starts) - 3600).astimezone())
        vault.write_windows([mouse_window(s, rid) for s in starts])


def test_default_shows_only_the_latest_local_day_and_says_so(layout: Layout, berlin: None) -> None:
    # 00:30 Berlin time on 2026-11-21 is still 2026-11-20 in UTC: the day is the employee's, not UTC's.
    _vault_with(layout, [_local("2026-11-20", 10), _local("2026-11-20", 23, 50), _local("2026-11-21", 0, 30)])
    text = run("mydata").output
    assert "the latest day with data, 2026-11-21 (your local time): 1 record of 3 records stored" in text
    assert "2026-11-21 00:30:00 CET" in text and "2026-11-20" not in text.split("stored.")[1]
    data = json.loads(run("mydata", "--json").output)
    assert [r["start"] for r in data["records"]] == [_local("2026-11-21", 0, 30)]
    assert data["period"]["records"] == 1


def test_from_and_to_choose_a_period_of_whole_local_days(layout: Layout, berlin: None) -> None:
    starts = [_local("2026-11-18", 9), _local("2026-11-19", 9), _local("2026-11-20", 9), _local("2026-11-21", 9)]
    _vault_with(layout, starts)
    data = json.loads(run("mydata", "--json", "--from", "2026-11-19", "--to", "2026-11-20").output)
    assert [r["start"] for r in data["records"]] == starts[1:3]
    assert len(json.loads(run("mydata", "--json", "--all").output)["records"]) == 4
    assert "2 records of 4 records stored" in run("mydata", "--from", "2026-11-19", "--to", "2026-11-20").output


def test_pages_count_from_the_newest_and_a_page_past_the_end_is_a_usage_error(layout: Layout) -> None:
    base = int(datetime(2026, 11, 20, 0, 0).astimezone().timestamp())
    starts = [base + 60 * i for i in range(250)]
    _vault_with(layout, starts)
    first = run("mydata").output
    assert "Page 1 of 3" in first and first.count(" mouse ") == 100
    assert datetime.fromtimestamp(starts[-1]).strftime("%H:%M:%S") in first  # the newest is on page 1
    third = run("mydata", "--page", "3").output
    assert third.count(" mouse ") == 50
    assert datetime.fromtimestamp(starts[0]).strftime("%H:%M:%S") in third  # the oldest on the last page
    page = json.loads(run("mydata", "--json", "--page", "2").output)
    assert [r["start"] for r in page["records"]] == starts[50:150]
    beyond = CliRunner().invoke(cli, ["mydata", "--page", "4"])
    assert beyond.exit_code == 2 and "only 3 page(s)" in beyond.output


def test_bad_periods_are_usage_errors_that_read_nothing(layout: Layout) -> None:
    _vault_with(layout, [int(datetime(2026, 11, 20, 9).astimezone().timestamp())])
    for args, message in (
        (["--all", "--from", "2026-11-01"], "either --all or a period"),
        (["--from", "yesterday"], "is not a day or a time"),
        (["--from", "2026-11-20 10:00", "--to", "2026-11-20 09:00"], "--to must be after --from"),
    ):
        result = CliRunner().invoke(cli, ["mydata", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)


def test_an_empty_period_says_how_to_choose_another(layout: Layout) -> None:
    _vault_with(layout, [int(datetime(2026, 11, 20, 9).astimezone().timestamp())])
    text = run("mydata", "--from", "2026-10-01", "--to", "2026-10-02").output
    assert "0 records of 1 record stored" in text and "Nothing in this period" in text


def test_streamed_json_of_every_record_is_one_valid_document(layout: Layout, tmp_path: Path) -> None:
    base = int(datetime(2026, 11, 1).astimezone().timestamp())
    starts = [base + 60 * i for i in range(3000)]  # about two days of one-minute windows
    _vault_with(layout, starts)
    data = json.loads(run("mydata", "--json", "--all").output)
    assert [r["start"] for r in data["records"]] == starts
    assert data["period"] == {"from": None, "to": None, "records": 3000, "page": None, "per_page": None}
    assert data["subject"] and data["receipts"]
    latest = json.loads(run("mydata", "--json").output)
    assert len(latest["records"]) == sum(
        1 for s in starts if datetime.fromtimestamp(s).date() == datetime.fromtimestamp(starts[-1]).date()
    )
    assert timedelta(seconds=starts[-1] - starts[0]) > timedelta(days=1)
