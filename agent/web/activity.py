"""The employee's own data summarised for the "my data" charts: activity per hour, app time per day.

Pure functions over decrypted window records; hours and days are the employee's local time (``tz``).
A window counts in the hour (or day) it starts in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from protocol.windows import AnyWindow, AppsWindow, KeyboardWindow, MouseWindow

PSEUDONYMOUS = "other (pseudonymous)"


@dataclass(frozen=True)
class HourlyActivity:
    day: date
    keys: tuple[int, ...]  # 24 values: key presses starting in each local hour
    clicks: tuple[int, ...]  # 24 values: mouse clicks
    distance_px: tuple[float, ...]  # 24 values: mouse travel

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f"{h:02d}" for h in range(24))


def local_day(ts: int, tz: tzinfo) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def days_with_data(hours: Iterable[int], tz: tzinfo) -> list[date]:
    """Local days touched by records starting in these UTC hours (hour numbers since the epoch)."""
    return sorted({local_day(h * 3600 + edge, tz) for h in hours for edge in (0, 3599)})


def local_midnight(day: date, tz: tzinfo) -> int:
    return int(datetime.combine(day, time.min, tzinfo=tz).timestamp())


def hourly_activity(records: Sequence[AnyWindow], day: date, tz: tzinfo) -> HourlyActivity:
    keys, clicks, distance = [0] * 24, [0] * 24, [0.0] * 24
    for record in records:
        when = datetime.fromtimestamp(record.start, tz)
        if when.date() != day:
            continue
        if isinstance(record, KeyboardWindow):
            keys[when.hour] += sum(record.key_counts.values())
        elif isinstance(record, MouseWindow):
            clicks[when.hour] += sum(record.clicks.values())
            distance[when.hour] += record.distance_px
    return HourlyActivity(day, tuple(keys), tuple(clicks), tuple(round(d, 1) for d in distance))


def app_label(token: str) -> str:
    """``cat:ide`` -> ``ide``; a pseudonymous ``anon:`` token is never shown as if it were a name."""
    return token[4:] if token.startswith("cat:") else PSEUDONYMOUS


def app_minutes_per_day(records: Sequence[AnyWindow], days: Sequence[date], tz: tzinfo) -> dict[date, dict[str, float]]:
    """Minutes of focus per application category, for each of ``days`` (days without data map to {})."""
    wanted = set(days)
    out: dict[date, dict[str, float]] = {d: defaultdict(float) for d in days}
    for record in records:
        if not isinstance(record, AppsWindow):
            continue
        day = local_day(record.start, tz)
        if day not in wanted:
            continue
        for focus in record.focus:
            out[day][app_label(focus.app)] += focus.seconds / 60.0
    return {d: {k: round(v, 1) for k, v in sorted(m.items())} for d, m in out.items()}
