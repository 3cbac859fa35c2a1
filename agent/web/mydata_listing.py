"""The records listing of the page's My data, paged like ``consentry mydata``.

The latest local day with data by default, or a period (``from``/``to``, local days, ``to`` counted
whole) and a category; 100 records a page counted from the newest, newest first. Only the page shown
is decrypted (``Vault.iter_records_as_stored`` with ``newest``/``skip_newest``), so a vault of a million
records answers as fast as one of ten. How one record reads is the caller's (``summary``, trusted HTML).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import NamedTuple
from urllib.parse import urlencode

from agent.web.activity import local_midnight
from kit.web.html import esc, flash, table
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


def records_section(vault: Vault, query: Mapping[str, str], tz: tzinfo, summary: Callable[[AnyWindow], str]) -> str:
    """The section: the period form, a heading saying what is shown, a page of records, newer/older links."""
    try:
        listing = parse_listing(query)
    except BadListing as exc:
        return _section(Listing(None, None, None, 1), tz, flash(str(exc), bad=True))
    start, end, described = _period(vault, listing, tz)
    total = vault.count_windows(listing.category, start, end)
    stored = vault.count_windows(listing.category)
    pages = max(1, -(-total // PER_PAGE))
    page = min(listing.page, pages)
    what = f" ({listing.category})" if listing.category else ""
    heading = f"Records of {described}{what}: {_n(total)} of {_n(stored)} stored" + (
        f", page {page} of {pages}, newest first" if total else ""
    )
    if not total:
        body = (
            '<p class="muted">Nothing in this period. Choose another, or leave the days empty for the latest day.</p>'
        )
    else:
        shown = [
            parse_window(record)
            for record in vault.iter_records_as_stored(
                listing.category, start=start, end=end, newest=PER_PAGE, skip_newest=(page - 1) * PER_PAGE
            )
        ]
        rows = [  # ``summary`` gives trusted HTML (agent.web.record_view); the other cells are escaped here
            (esc(datetime.fromtimestamp(r.start, tz).strftime("%Y-%m-%d %H:%M")), esc(r.category), summary(r))
            for r in reversed(shown)
        ]
        body = table(("Window start", "Category", "What was kept"), rows, raw=True).replace(
            "<table>", '<table id="records">', 1
        )
        body += _pager(query, page, pages)
    return _section(listing, tz, f'<h3 id="records-heading">{esc(heading)}</h3>' + body)


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


def _pager(query: Mapping[str, str], page: int, pages: int) -> str:
    kept = {k: v for k, v in query.items() if k in ("from", "to", "category", "day") and v}
    links = []
    if page > 1:
        links.append(f'<a href="/mydata?{esc(urlencode({**kept, "page": page - 1}))}">Newer records</a>')
    if page < pages:
        links.append(f'<a href="/mydata?{esc(urlencode({**kept, "page": page + 1}))}">Older records</a>')
    return f'<p class="pager">{" · ".join(links)}</p>' if links else ""


def _section(listing: Listing, tz: tzinfo, body: str) -> str:
    options = "".join(
        f'<option value="{esc(value)}"{" selected" if value == (listing.category or "") else ""}>{esc(label)}</option>'
        for value, label in (("", "every category"), *((c, c) for c in _CATEGORIES))
    )
    first = listing.first.isoformat() if listing.first else ""
    last = listing.last.isoformat() if listing.last else ""
    form = (
        '<form id="records-period" method="get" action="/mydata">'
        f'<label>From <input type="date" name="from" value="{esc(first)}"></label> '
        f'<label>to <input type="date" name="to" value="{esc(last)}"></label> '
        f'<label>Category <select name="category">{options}</select></label> '
        '<button type="submit">Show</button>'
        '<span class="muted"> Leave the days empty for the latest day with data. Times are your local time.</span>'
        "</form>"
    )
    return f"<section><h2>Your records</h2>{form}{body}</section>"
