"""The "my data" view of the employee's page: what is stored, charts per hour and per day, receipts, records.

Only the week shown is decrypted: a month of one-minute windows is too many to open for every view.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, tzinfo

from agent.web import activity
from kit.web.html import bar_chart, esc, stacked_bars, table
from protocol.windows import AnyWindow
from vault.vault import Vault

RECORDS_SHOWN = 200
_HERE = ' class="here"'


def mydata_body(vault: Vault, query_day: str | None, tz: tzinfo, today: date) -> str:
    """The page body for the day asked for (``YYYY-MM-DD``; default the latest day with data)."""
    try:
        chosen = date.fromisoformat(query_day) if query_day else None
    except ValueError:
        chosen = None
    hours_with_data = vault.hours_with_data()
    days = activity.days_with_data(hours_with_data, tz)
    day = chosen or (days[-1] if days else today)
    week = [day - timedelta(days=i) for i in range(6, -1, -1)]
    records = vault.read_windows(
        start=activity.local_midnight(week[0], tz), end=activity.local_midnight(day + timedelta(days=1), tz)
    )
    total = vault.count_windows()
    spans = vault.receipt_spans()
    subject = vault.subject
    hourly = activity.hourly_activity(records, day, tz)
    minutes = activity.app_minutes_per_day(records, week, tz)
    series = sorted({name for per_day in minutes.values() for name in per_day})
    day_links = " ".join(
        f'<a href="/mydata?day={d.isoformat()}"{_HERE if d == day else ""}>{d.isoformat()}</a>' for d in days[-14:]
    )
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
    shown = records[-RECORDS_SHOWN:]
    record_rows = [
        (
            datetime.fromtimestamp(r.start, tz).strftime("%Y-%m-%d %H:%M"),
            r.category,
            _summary(r),
        )
        for r in reversed(shown)
    ]
    hours = [
        (f"{h:02d}:00", hourly.keys[h], hourly.clicks[h], hourly.distance_px[h])
        for h in range(24)
        if hourly.keys[h] or hourly.clicks[h]
    ]
    body = (
        "<section><h2>What is stored about you on this computer</h2>"
        f'<p>Your pseudonym: <span class="mono">{esc(subject)}</span> (only this computer can link it to you). '
        f"{total} window record(s), decrypted here for you only. Times are your local time.</p>"
        f"<p>Days: {day_links or 'no data yet'}</p></section>"
        f"<section><h2>Typing and mouse activity per hour, {esc(day.isoformat())}</h2>"
        + bar_chart(
            "chart-keys", hourly.labels, hourly.keys, unit="key presses", title=f"Key presses per hour on {day}"
        )
        + bar_chart(
            "chart-clicks",
            hourly.labels,
            hourly.clicks,
            unit="mouse clicks",
            title=f"Mouse clicks per hour on {day}",
            colour="#E69F00",
        )
        + (
            table(("Hour", "Key presses", "Mouse clicks", "Mouse travel (px)"), hours, numeric=(1, 2, 3))
            if hours
            else '<p class="muted">No keyboard or mouse data on this day.</p>'
        )
        + "</section>"
        "<section><h2>Time per application category per day (minutes)</h2>"
        + stacked_bars(
            "chart-apps",
            [(d.isoformat(), list(minutes[d].items())) for d in week],
            series,
            unit="min",
            title="Minutes of focus per application category per day",
        )
        + '<p class="muted">Applications outside the allow-listed categories are only ever stored as a pseudonymous token.</p>'
        "</section>"
        "<section><h2>Your consent receipts</h2>"
        + table(("Category", "Granted", "Ended", "Notice", "How", "Receipt"), receipts)
        + "</section>"
        f"<section><h2>Latest records up to {esc(day.isoformat())} ({len(shown)} of this week's {len(records)})</h2>"
        + table(("Window start", "Category", "What was kept"), record_rows)
        + "</section>"
    )
    return body


def _local(when: datetime, tz: tzinfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _summary(record: AnyWindow) -> str:
    data = record.model_dump(mode="json", exclude={"start", "end", "receipt_id", "category"})
    return "; ".join(f"{k}: {json.dumps(v, sort_keys=True)}" for k, v in data.items())
