"""UTC time rules, each defined once: the one textual form Consentry writes (ISO 8601 with
microseconds and a ``Z``), the ``YYYY-MM-DD`` day a moment falls in, and where a UTC day starts.

What a person reads and machine output name a moment with ``utc_text`` (``2026-12-05T13:20:09Z``) for
stewards, operators and ``--json``, and ``local_display`` for the employee; ``json_with_utc_times`` turns
a wire model's epoch-second fields into ``utc_text`` for a command's ``--json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

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


class EpochMark:
    """Marks a model field as UTC epoch seconds (``protocol.fields.EpochSeconds`` carries it)."""

    def __repr__(self) -> str:
        return "EPOCH_SECONDS"


EPOCH_SECONDS = EpochMark()


def _is_epoch(annotation: Any, metadata: list[Any]) -> bool:
    if EPOCH_SECONDS in metadata:
        return True
    return any(a is EPOCH_SECONDS or _is_epoch(a, []) for a in get_args(annotation))  # Optional[EpochSeconds]


def json_with_utc_times(value: Any) -> Any:
    """``value`` (a pydantic model, or lists and dicts of them) as JSON data in which every epoch-seconds
    field is ``utc_text``: machine output for people's tools, never bare epoch numbers."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json")
        for name, field in type(value).model_fields.items():
            if name not in dumped:
                continue
            inner = getattr(value, name)
            if isinstance(inner, int) and not isinstance(inner, bool) and _is_epoch(field.annotation, field.metadata):
                dumped[name] = utc_text(inner)
            elif isinstance(inner, BaseModel | list | tuple | dict):
                dumped[name] = json_with_utc_times(inner)
        return dumped
    if isinstance(value, list | tuple):
        return [json_with_utc_times(v) for v in value]
    if isinstance(value, dict):
        return {(k.value if hasattr(k, "value") else k): json_with_utc_times(v) for k, v in value.items()}
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)
