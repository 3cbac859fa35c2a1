"""The "my data" view of the employee's page: what is stored, charts per hour and per day, receipts, records.

Only what is shown is decrypted: the chosen day for the hourly charts, the week's ``apps`` records for
the minutes per day, and one page of the records listing (agent.web.mydata_listing). Drawn by
agent/web/templates/mydata_body.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from agent.web import activity
from agent.web.mydata_listing import records_section
from agent.web.record_view import ShownRecord, shown_record
from agent.words import counted
from kit.web import templates
from kit.web.charts import bar_chart, stacked_bars
from protocol.windows import AnyWindow, window_to_json_dict
from vault.vault import Vault

DAY_LINK_SPAN_SECONDS = 35 * 86400  # the 14 day links come from the 5 weeks before the newest record


def mydata_body(
    vault: Vault, query_day: str | None, tz: tzinfo, today: date, query: Mapping[str, str] | None = None
) -> str:
    """The page body (HTML) for the day asked for (``YYYY-MM-DD``; default the latest day with data);
    ``query`` chooses the records listed (period, category, page: agent.web.mydata_listing)."""
    return templates.render("agent.web", "mydata_body.html", **mydata_context(vault, query_day, tz, today, query))


def mydata_context(
    vault: Vault, query_day: str | None, tz: tzinfo, today: date, query: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What mydata_body.html shows (the employee's page renders it inside its layout: mydata.html)."""
    try:
        chosen = date.fromisoformat(query_day) if query_day else None
    except ValueError:
        chosen = None
    newest = vault.newest_record_start()  # day links for the last weeks with data, not the whole vault
    hours_with_data = vault.hours_with_data(None if newest is None else newest - DAY_LINK_SPAN_SECONDS)
    days = activity.days_with_data(hours_with_data, tz)
    day = chosen or (days[-1] if days else today)
    week = [day - timedelta(days=i) for i in range(6, -1, -1)]
    day_end = activity.local_midnight(day + timedelta(days=1), tz)
    records = vault.read_windows(start=activity.local_midnight(day, tz), end=day_end)
    records += vault.read_windows(
        "apps", start=activity.local_midnight(week[0], tz), end=activity.local_midnight(day, tz)
    )
    total = vault.count_windows()
    spans = vault.receipt_spans()
    subject = vault.subject
    hourly = activity.hourly_activity(records, day, tz)
    minutes = activity.app_minutes_per_day(records, week, tz)
    series = sorted({name for per_day in minutes.values() for name in per_day})
    receipts = [
        (
            span.receipt.category.value,
            _local(span.granted_at, tz),
            _local(span.ended_at, tz) if span.ended_at else "in force",
            f"{span.receipt.notice_id} v{span.receipt.notice_version}",
            span.receipt.collection_method,
            span.receipt.receipt_id,
        )
        for span in spans.values()
    ]
    hours = [
        (f"{h:02d}:00", hourly.keys[h], hourly.clicks[h], hourly.distance_px[h])
        for h in range(24)
        if hourly.keys[h] or hourly.clicks[h]
    ]
    return {
        "subject": subject,
        "stored": counted(total, "window record"),
        "days": [d.isoformat() for d in days[-14:]],
        "day": day.isoformat(),
        "keys_chart": bar_chart(
            "chart-keys", hourly.labels, hourly.keys, unit="key presses", title=f"Key presses per hour on {day}"
        ),
        "clicks_chart": bar_chart(
            "chart-clicks",
            hourly.labels,
            hourly.clicks,
            unit="mouse clicks",
            title=f"Mouse clicks per hour on {day}",
            colour="#E69F00",
        ),
        "hours": hours,
        "apps_chart": stacked_bars(
            "chart-apps",
            [(d.isoformat(), list(minutes[d].items())) for d in week],
            series,
            unit="min",
            title="Minutes of focus per application category per day",
        ),
        "receipts": receipts,
        "listing": records_section(vault, query or {}, tz, _summary),
    }


def _local(when: datetime, tz: tzinfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _summary(record: AnyWindow) -> ShownRecord:
    """The record in words, with its exact values (shown in a fold)."""
    return shown_record(window_to_json_dict(record))
