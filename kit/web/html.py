"""Server-rendered HTML for the local pages: one layout, inline CSS, forms, tables and SVG bar charts.

Everything that comes from data goes through ``esc``. No third-party assets and no style attributes
(the Content-Security-Policy allows only this response's nonce), so colours are classes and SVG
presentation attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from kit.web.security import CSRF_FIELD

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2430;
       background: #f4f6f9; }
header { background: #1f3b57; color: #fff; padding: .7rem 1.5rem; display: flex; gap: 1.5rem;
         align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 1.15rem; margin: 0; }
header a { color: #dbe8f5; text-decoration: none; margin-right: 1.1rem; }
header a.here { color: #fff; font-weight: 600; text-decoration: underline; }
main { max-width: 62rem; margin: 1.2rem auto; padding: 0 1.2rem; }
section { background: #fff; border: 1px solid #d8dee6; border-radius: 8px; padding: .9rem 1.2rem;
          margin-bottom: 1rem; }
h2 { font-size: 1.1rem; margin: .2rem 0 .6rem; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e6eaf0; vertical-align: top; }
th { background: #eef2f6; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: .05rem .5rem; border-radius: 1rem; font-size: .85rem; }
.state-granted, .state-capturing, .state-ok, .state-pass, .state-approved, .state-stored
  { background: #d8f3dc; color: #14532d; }
.state-not_granted, .state-revoked, .state-held, .state-released, .state-review
  { background: #e9edf2; color: #334155; }
.state-paused, .state-suspended, .state-submitted, .state-submitting { background: #fef3c7; color: #78350f; }
.state-forbidden, .state-broken, .state-fail, .state-vetoed, .state-rejected, .state-problem, .state-invalid
  { background: #fde2e1; color: #7f1d1d; }
.flash { background: #e0f2fe; border: 1px solid #7dd3fc; padding: .6rem 1rem; border-radius: 8px; }
.flash.bad { background: #fde2e1; border-color: #f19d99; }
pre.notice { white-space: pre-wrap; background: #fbfcfd; border: 1px solid #d8dee6; padding: .8rem;
             font: .9rem/1.45 ui-monospace, "DejaVu Sans Mono", monospace; max-height: none; }
form.inline { display: inline; margin: 0 .4rem 0 0; }
form.inline + form:not(.inline) { margin-top: 1rem; }
button { font: inherit; padding: .3rem .9rem; border-radius: 6px; border: 1px solid #6b7f95; background: #fff;
         cursor: pointer; }
button.primary { background: #1f6feb; border-color: #1f6feb; color: #fff; }
button.danger { background: #b42318; border-color: #b42318; color: #fff; }
label.confirm { display: block; margin: .6rem 0; font-weight: 600; }
textarea, input[type=text] { font: inherit; width: 100%; box-sizing: border-box; }
.muted { color: #5b6777; font-size: .9rem; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem; word-break: break-all; }
svg.chart { width: 100%; height: auto; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #334155; }
.legend span { margin-right: 1rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem;
          vertical-align: -1px; }
"""

# Eight distinguishable colours (Okabe-Ito); app categories beyond eight reuse them in order.
_HERE = ' class="here"'
_NUM = ' class="num"'
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def layout(title: str, body: str, nonce: str, *, nav: Sequence[tuple[str, str]] = (), here: str = "") -> str:
    links = " ".join(f'<a href="{esc(href)}"{_HERE if href == here else ""}>{esc(label)}</a>' for href, label in nav)
    swatch_css = "".join(f".swatch-{i} {{ background: {c}; }}\n" for i, c in enumerate(PALETTE))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f'<title>{esc(title)}</title><style nonce="{esc(nonce)}">{CSS}{swatch_css}</style></head>'
        f"<body><header><h1>{esc(title)}</h1><nav>{links}</nav></header><main>{body}</main></body></html>"
    )


def error_page(title: str, message: str, nonce: str) -> str:
    return layout(title, f'<section><p class="flash bad">{esc(message)}</p></section>', nonce)


def moving_page(target: str) -> str:
    """Sent once with the session cookie: go on to ``target`` (a path on this server) without the token."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={esc(target)}"><title>Consentry</title></head>'
        f'<body><p><a href="{esc(target)}">Continue</a></p></body></html>'
    )


def flash(message: str | None, *, bad: bool = False) -> str:
    if not message:
        return ""
    return f'<p class="flash{" bad" if bad else ""}" role="status">{esc(message)}</p>'


def state_badge(state: str) -> str:
    return f'<span class="state state-{esc(state)}">{esc(state.replace("_", " "))}</span>'


def post_form(
    action: str, csrf: str, button: str, *, fields: dict[str, str] | None = None, css: str = "", inline: bool = True
) -> str:
    """A one-button POST form carrying the CSRF token (every state change is one of these)."""
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in {CSRF_FIELD: csrf, **(fields or {})}.items()
    )
    klass = ' class="inline"' if inline else ""
    button_class = f' class="{esc(css)}"' if css else ""
    return (
        f'<form method="post" action="{esc(action)}"{klass}>{hidden}'
        f'<button type="submit"{button_class}>{esc(button)}</button></form>'
    )


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


def bar_chart(
    chart_id: str, labels: Sequence[str], values: Sequence[float], *, unit: str, title: str, colour: str = PALETTE[0]
) -> str:
    """Vertical bars, one per label; each bar carries ``data-label``/``data-value`` for tests and tools."""
    width, height, left, bottom, top = 720, 214, 44, 24, 28
    peak = max(values, default=0) or 1
    slot = (width - left) / max(len(values), 1)
    parts = [
        f'<svg class="chart" id="{esc(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(title)}"><title>{esc(title)}</title>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#94a3b8"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{esc(_short(peak))}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
        f'<text x="{left}" y="12">{esc(unit)} (highest: {esc(_plain(peak))})</text>',
    ]
    every = max(1, len(labels) // 12)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar = (height - bottom - top) * (value / peak)
        x = left + i * slot + slot * 0.15
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{height - bottom - bar:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar:.1f}" fill="{colour}" data-label="{esc(label)}" data-value="{esc(_plain(value))}">'
            f"<title>{esc(label)}: {esc(_plain(value))} {esc(unit)}</title></rect>"
        )
        if i % every == 0:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(
    chart_id: str,
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    series: Sequence[str],
    *,
    unit: str,
    title: str,
) -> str:
    """Horizontal stacked bars, one row per label; segments carry ``data-row``/``data-series``/``data-value``."""
    width, row_height, left = 720, 26, 96
    totals = [sum(v for _, v in segments) for _, segments in rows]
    peak = max(totals, default=0) or 1
    height = row_height * max(len(rows), 1) + 20
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    parts = [
        f'<svg class="chart" id="{esc(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(title)}"><title>{esc(title)}</title>'
    ]
    for r, ((label, segments), total) in enumerate(zip(rows, totals, strict=True)):
        y = r * row_height + 4
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{esc(label)}</text>')
        x = float(left)
        for name, value in segments:
            w = (width - left - 70) * (value / peak)
            parts.append(
                f'<rect class="segment" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_height - 8}" '
                f'fill="{colour[name]}" data-row="{esc(label)}" data-series="{esc(name)}" '
                f'data-value="{esc(_plain(value))}"><title>{esc(name)}: {esc(_plain(value))} {esc(unit)}</title></rect>'
            )
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{esc(_plain(total))} {esc(unit)}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="swatch swatch-{i % len(PALETTE)}"></i>{esc(name)}</span>' for i, name in enumerate(series)
    )
    return "".join(parts) + f'<p class="legend muted">{legend}</p>'


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _short(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else _plain(value)
