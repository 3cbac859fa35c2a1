"""UTC time rules, each defined once: the one textual form Consentry writes (ISO 8601 with
microseconds and a ``Z``), the ``YYYY-MM-DD`` day a moment falls in, and where a UTC day starts."""

from __future__ import annotations

from datetime import UTC, datetime

DAY_SECONDS = 86_400


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_from_epoch(epoch_seconds: float) -> str:
    return iso(datetime.fromtimestamp(epoch_seconds, UTC))


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def utc_day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def iso_seconds(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: a moment in a command's machine output (``--json``), to the second."""
    return utc_text(moment.timestamp())


def utc_text(epoch_seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: a moment in machine output and for stewards (UTC, no microseconds)."""
    return datetime.fromtimestamp(int(epoch_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_display(epoch_seconds: float, *, seconds: bool = False) -> str:
    """``YYYY-MM-DD HH:MM[:SS]`` in UTC: a moment as lists and pages show it to people."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_display(epoch_seconds: float, *, seconds: bool = False) -> str:
    """``YYYY-MM-DD HH:MM[:SS] ZONE`` in the computer's local time: a moment as the employee reads it."""
    moment = datetime.fromtimestamp(epoch_seconds).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def utc_midnight(moment: datetime) -> int:
    """Epoch seconds at the start of the UTC day ``moment`` falls in."""
    moment = moment.astimezone(UTC)
    return int(datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp())


def day_start(day: str) -> int:
    """Epoch seconds at the start of the UTC day ``day`` (``YYYY-MM-DD``)."""
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
