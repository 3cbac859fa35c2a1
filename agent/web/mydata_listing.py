"""The records listing of the page's My data, paged like ``consentry mydata``.

The latest local day with data by default, or a period (``from``/``to``, local days, ``to`` counted
whole) and a category; 100 records a page counted from the newest, newest first. Only the page shown
is decrypted (``Vault.iter_records_as_stored`` with ``newest``/``skip_newest``), so a vault of a million
records answers as fast as one of ten. How one record reads is the caller's (``summary``); the section is
drawn by agent/web/templates/records_section.html.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, NamedTuple
from urllib.parse import urlencode

from agent.web.activity import local_midnight
from protocol.categories import Category
from protocol.windows import AnyWindow, parse_window
from vault.vault import Vault

PER_PAGE = 100  # as consentry mydata's text view
_CATEGORIES = tuple(c.value for c in Category)


class Listing(NamedTuple):
    """What the employee asked to see: the query's words, checked."""

    category: str | None
    first: date | None  # the ``from`` day, local
    last: date | None  # the ``to`` day, local, counted whole
    page: int


class BadListing(ValueError):
    """A period, category or page the page cannot show; the message is for the employee."""


def parse_listing(query: Mapping[str, str]) -> Listing:
    category = query.get("category") or None
    if category is not None and category not in _CATEGORIES:
        raise BadListing(f"There is no category {category!r}; choose one of: {', '.join(_CATEGORIES)}.")
    first, last = _day(query, "from"), _day(query, "to")
    if first and last and last < first:
        raise BadListing("The period ends before it begins: choose a 'to' day on or after the 'from' day.")
    try:
        page = max(1, int(query.get("page") or 1))
    except ValueError:
        page = 1
    return Listing(category, first, last, page)


def _day(query: Mapping[str, str], name: str) -> date | None:
    text = (query.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadListing(f"{text!r} is not a day; use a day such as 2026-12-05.") from None


def records_section(
    vault: Vault, query: Mapping[str, str], tz: tzinfo, summary: Callable[[AnyWindow], Any]
) -> dict[str, Any]:
    """What the section shows: the period form, a heading saying what is shown, a page of records (each
    ``(start, category, summary(record))``), newer/older links; or ``problem`` if the query cannot be shown."""
    try:
        listing = parse_listing(query)
    except BadListing as exc:
        return _section(Listing(None, None, None, 1), problem=str(exc))
    start, end, described = _period(vault, listing, tz)
    total = vault.count_windows(listing.category, start, end)
    stored = vault.count_windows(listing.category)
    pages = max(1, -(-total // PER_PAGE))
    page = min(listing.page, pages)
    what = f" ({listing.category})" if listing.category else ""
    heading = f"Records of {described}{what}: {_n(total)} of {_n(stored)} stored" + (
        f", page {page} of {pages}, newest first" if total else ""
    )
    rows: list[tuple[str, str, Any]] = []
    if total:
        shown = [
            parse_window(record)
            for record in vault.iter_records_as_stored(
                listing.category, start=start, end=end, newest=PER_PAGE, skip_newest=(page - 1) * PER_PAGE
            )
        ]
        rows = [
            (datetime.fromtimestamp(r.start, tz).strftime("%Y-%m-%d %H:%M"), r.category, summary(r))
            for r in reversed(shown)
        ]
    return _section(listing, heading=heading, rows=rows, pager=_pager(query, page, pages) if total else [])


def _period(vault: Vault, listing: Listing, tz: tzinfo) -> tuple[int | None, int | None, str]:
    """The window starts shown (``start <= s < end``), and the period in words."""
    if listing.first is None and listing.last is None:
        newest = vault.newest_record_start(listing.category)
        if newest is None:
            return None, None, "all your records"
        day = datetime.fromtimestamp(newest, tz).date()
        since, until = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
        return since, until, f"the latest day with data, {day.isoformat()} (your local time)"
    start = local_midnight(listing.first, tz) if listing.first else None
    end = local_midnight(listing.last + timedelta(days=1), tz) if listing.last else None
    first = _moment(start, tz) if start is not None else "the first record"
    last = _moment(end, tz) if end is not None else "now"
    return start, end, f"from {first} until {last}"


def _moment(ts: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M %Z").strip()


def _n(count: int) -> str:
    return f"{count:,} record{'' if count == 1 else 's'}"


def _pager(query: Mapping[str, str], page: int, pages: int) -> list[tuple[str, str]]:
    """The newer/older links: (address, words)."""
    kept = {k: v for k, v in query.items() if k in ("from", "to", "category", "day") and v}
    links = []
    if page > 1:
        links.append((f"/mydata?{urlencode({**kept, 'page': page - 1})}", "Newer records"))
    if page < pages:
        links.append((f"/mydata?{urlencode({**kept, 'page': page + 1})}", "Older records"))
    return links


def _section(
    listing: Listing,
    *,
    problem: str = "",
    heading: str = "",
    rows: Sequence[tuple[str, str, Any]] = (),
    pager: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    return {
        "category": listing.category or "",
        "categories": (("", "every category"), *((c, c) for c in _CATEGORIES)),
        "first": listing.first.isoformat() if listing.first else "",
        "last": listing.last.isoformat() if listing.last else "",
        "problem": problem,
        "heading": heading,
        "rows": rows,
        "pager": pager,
    }
