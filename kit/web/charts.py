"""The geometry of the pages' SVG charts, computed here and drawn by the macros in ``kit/ui.html``.

Only numbers and the labels they belong to: the template escapes every label. No style attributes (the
Content-Security-Policy allows only this response's nonce), so colours are SVG presentation attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kit.web.templates import PALETTE


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    label: str
    value: str
    label_x: str | None  # where the axis label goes; None where labels are thinned out


@dataclass(frozen=True)
class BarChart:
    """Vertical bars, one per label; each bar carries ``data-label``/``data-value`` for tests and tools."""

    chart_id: str
    title: str
    unit: str
    colour: str
    width: int
    height: int
    left: int
    top: int
    axis_y: int
    peak_short: str
    peak: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Segment:
    series: str
    x: str
    width: str
    colour: str
    value: str


@dataclass(frozen=True)
class StackedRow:
    label: str
    y: int
    segments: tuple[Segment, ...]
    total_x: str
    total: str


@dataclass(frozen=True)
class StackedBars:
    """Horizontal stacked bars, one row per label; segments carry ``data-row``/``data-series``/``data-value``."""

    chart_id: str
    title: str
    unit: str
    width: int
    height: int
    left: int
    row_height: int
    rows: tuple[StackedRow, ...]
    series: tuple[str, ...]  # the legend, in colour order (swatch i % len(PALETTE))


def bar_chart(
    chart_id: str, labels: Sequence[str], values: Sequence[float], *, unit: str, title: str, colour: str = PALETTE[0]
) -> BarChart:
    width, height, left, bottom, top = 720, 214, 44, 24, 28
    peak = max(values, default=0) or 1
    slot = (width - left) / max(len(values), 1)
    every = max(1, len(labels) // 12)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar = (height - bottom - top) * (value / peak)
        x = left + i * slot + slot * 0.15
        bars.append(
            Bar(
                x=f"{x:.1f}",
                y=f"{height - bottom - bar:.1f}",
                width=f"{slot * 0.7:.1f}",
                height=f"{bar:.1f}",
                label=label,
                value=plain(value),
                label_x=f"{x + slot * 0.35:.1f}" if i % every == 0 else None,
            )
        )
    return BarChart(
        chart_id, title, unit, colour, width, height, left, top, height - bottom, _short(peak), plain(peak), tuple(bars)
    )


def stacked_bars(
    chart_id: str,
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    series: Sequence[str],
    *,
    unit: str,
    title: str,
) -> StackedBars:
    width, row_height, left = 720, 26, 96
    totals = [sum(v for _, v in segments) for _, segments in rows]
    peak = max(totals, default=0) or 1
    height = row_height * max(len(rows), 1) + 20
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    drawn = []
    for r, ((label, segments), total) in enumerate(zip(rows, totals, strict=True)):
        x = float(left)
        parts = []
        for name, value in segments:
            w = (width - left - 70) * (value / peak)
            parts.append(Segment(name, f"{x:.1f}", f"{w:.1f}", colour[name], plain(value)))
            x += w
        drawn.append(StackedRow(label, r * row_height + 4, tuple(parts), f"{x + 6:.1f}", plain(total)))
    return StackedBars(chart_id, title, unit, width, height, left, row_height, tuple(drawn), tuple(series))


def plain(value: float) -> str:
    """A number as a person reads it: ``3``, ``2.5``."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _short(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else plain(value)
