"""HTML built in Python, kept only for the review-set block of the steward's page (admin/review_set_page.py).

Every other page is drawn from Jinja2 templates (kit.web.templates), which escape every value by
themselves. When admin/review_set_page.py is converted to templates (its ``render_set`` and forms
into admin/templates/, as admin/templates/batch.html did for a batch), delete this module and
``StewardPage._legacy`` with admin/templates/legacy.html. Add nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

_NUM = ' class="num"'


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def flash(message: str | None, *, bad: bool = False) -> str:
    if not message:
        return ""
    return f'<p class="flash{" bad" if bad else ""}" role="status">{esc(message)}</p>'


def state_badge(state: str) -> str:
    return f'<span class="state state-{esc(state)}">{esc(state.replace("_", " "))}</span>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Sequence[int] = (), raw: bool = False
) -> str:
    """A table; ``raw`` cells are trusted HTML built by the caller (badges, forms), others are escaped."""
    head = "".join(f"<th{_NUM if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(
            f"<td{_NUM if i in numeric else ''}>{cell if raw else esc(cell)}</td>" for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
