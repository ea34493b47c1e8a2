"""Server-side SVG charts for the console's Usage page: a line chart and a stacked bar chart of
daily Series, as one ``<svg>`` string each. No browser, script or network is needed to draw them.

Every chart has ``role="img"``, an ``aria-label``, ``<title>`` and ``<desc>``, axes with tick
labels at round numbers, a legend, and a ``<title>`` tooltip per point or bar. Series names come
from platforms and providers that admins control, so every text is escaped and shortened.
Colours are the Okabe–Ito palette, which colour-blind readers tell apart; lines also differ by
dash. The viewBox scales to the width of its box (``width="100%"``), down to a 375 px phone.
Values are non-negative (counts, ms, shares, tokens): negative or non-finite ones are left out.
A unit of ``"%"`` means the values are shares from 0 to 1, shown as percentages.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from bot.console.usage import Series

WIDTH = 440  # 13 px text stays about 10 px tall on a 375 px phone
LEFT, RIGHT, TOP, PLOT_HEIGHT = 52, 428, 48, 170
BOTTOM = TOP + PLOT_HEIGHT
LEGEND_TOP = BOTTOM + 36
LEGEND_ROW = 20
CHAR_WIDTH = 7.5  # an estimate for 13 px text, to wrap the legend
Y_TICKS = 4  # about this many steps up the y axis
X_LABELS = 6  # at most this many dates under the x axis
MAX_SERIES = 12
MAX_DAYS = 366
LEGEND_CHARS = 28
TITLE_CHARS = 60
TITLE_SPACE = 24  # the band at the top that a shown title takes
TEXT_CHARS = 200
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class _Chart:
    """What both kinds of chart draw on: days as slots along x, values up to the last tick
    along y."""

    unit: str
    days: list[datetime.date]
    series: list[tuple[str, dict[datetime.date, float]]]
    ticks: list[float]

    @property
    def is_share(self) -> bool:
        return self.unit == "%"

    def x(self, day: datetime.date) -> float:
        """The middle of the day's slot."""
        slot = (RIGHT - LEFT) / len(self.days)
        return LEFT + ((day - self.days[0]).days + 0.5) * slot

    def y(self, value: float) -> float:
        return BOTTOM - value / self.ticks[-1] * PLOT_HEIGHT

    def value_text(self, value: float) -> str:
        """A value as a tooltip gives it: exact, with its unit."""
        if self.is_share:
            return f"{round(value * 100, 1):g}%"
        shown = f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.2f}"
        return f"{shown} {_plain(self.unit, LEGEND_CHARS)}".rstrip()


def line_chart(
    series: Sequence[Series], *, title: str, unit: str = "", show_title: bool = False
) -> str:
    """One line per series, broken on days without a point; a marker with a tooltip per point.
    ``show_title`` draws the title above the chart too (a page that captions it does not)."""
    chart = _prepare(series, unit, stacked=False)
    if chart is None:
        return _no_data(title, show_title)
    drawn = [part for index, (name, values) in enumerate(chart.series)
             for part in _line(chart, index, name, values)]  # fmt: skip
    return _svg(title, *_frame(chart, drawn, bars=False), show_title=show_title)


def _line(chart: _Chart, index: int, name: str, values: dict[datetime.date, float]) -> list[str]:
    """A series' line, one stroke per run of consecutive days, and its markers."""
    colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
    runs: list[list[str]] = []
    for day in sorted(values):
        if not runs or day - datetime.timedelta(days=1) not in values:
            runs.append([])
        runs[-1].append(f"{chart.x(day):.1f},{chart.y(values[day]):.1f}")
    path = " ".join("M" + " L".join(run) for run in runs)
    stroke = f'stroke="{colour}" stroke-width="2"{_dash(dash)}'
    parts = [f'<path d="{path}" fill="none" {stroke}/>'] if runs else []
    return parts + [
        f'<circle cx="{chart.x(day):.1f}" cy="{chart.y(value):.1f}" r="3" fill="{colour}">'
        f"{_tooltip(chart, name, day, value)}</circle>"
        for day, value in sorted(values.items())
    ]


def bar_chart(
    series: Sequence[Series], *, title: str, unit: str = "", show_title: bool = False
) -> str:
    """A bar per day, stacked by series in order from the bottom; a tooltip per segment."""
    chart = _prepare(series, unit, stacked=True)
    if chart is None:
        return _no_data(title, show_title)
    width = max((RIGHT - LEFT) / len(chart.days) * 0.7, 1.0)
    drawn, base = [], dict.fromkeys(chart.days, 0.0)
    for index, (name, values) in enumerate(chart.series):
        colour = PALETTE[index % len(PALETTE)]
        for day, value in sorted(values.items()):
            if value <= 0:
                continue
            top, bottom = chart.y(base[day] + value), chart.y(base[day])
            base[day] += value
            drawn.append(
                f'<rect x="{chart.x(day) - width / 2:.1f}" y="{top:.1f}" width="{width:.1f}" '
                f'height="{bottom - top:.1f}" fill="{colour}" stroke="#fff" stroke-width="0.5">'
                f"{_tooltip(chart, name, day, value)}</rect>"
            )
    return _svg(title, *_frame(chart, drawn, bars=True), show_title=show_title)


def _prepare(series: Sequence[Series], unit: str, *, stacked: bool) -> _Chart | None:
    """The series to draw (at most MAX_SERIES, over the last MAX_DAYS days), or None when there
    is nothing to draw: no point at all, or (stacked) no bar taller than zero."""
    kept = [(s.name, {d: float(v) for d, v in s.points if math.isfinite(v) and v >= 0})
            for s in list(series)[:MAX_SERIES]]  # fmt: skip
    seen = [day for _, values in kept for day in values]
    if not seen:
        return None
    last = max(seen)
    first = max(min(seen), last - datetime.timedelta(days=MAX_DAYS - 1))
    kept = [(name, {d: v for d, v in values.items() if d >= first}) for name, values in kept]
    days = [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]
    if stacked:
        high = max(sum(values.get(day, 0.0) for _, values in kept) for day in days)
        if high <= 0:
            return None
    else:
        high = max(v for _, values in kept for v in values.values())
    whole = unit != "%" and all(v == int(v) for _, values in kept for v in values.values())
    return _Chart(unit, days, kept, _ticks(high, whole))


def _ticks(high: float, whole: bool) -> list[float]:
    """From 0 to the first round number at or above ``high``, in steps of 1, 2 or 5 × 10ⁿ
    (whole steps for whole numbers)."""
    high = high if high > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(high / Y_TICKS))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= high / Y_TICKS)
    step = max(step, 1.0) if whole else step
    return [step * n for n in range(math.ceil(high / step - 1e-9) + 1)]


def _frame(chart: _Chart, drawn: list[str], *, bars: bool) -> tuple[int, list[str]]:
    """The chart around what was drawn (grid, axes, tick labels, legend and a summary), and
    its height."""
    parts = []
    for tick in chart.ticks:
        y = chart.y(tick)
        parts.append(f'<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{"#666" if tick == 0 else "#ddd"}"/>')  # fmt: skip
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_tick_text(tick, chart.is_share)}</text>")  # fmt: skip
    if chart.unit and not chart.is_share:
        parts.append(f'<text x="4" y="{TOP - 14}" fill="#555">'
                     f"{_text(chart.unit, LEGEND_CHARS)}</text>")  # fmt: skip
    stride = math.ceil(len(chart.days) / X_LABELS)
    for day in chart.days[::-1][::stride]:  # today always labelled
        parts.append(f'<text x="{chart.x(day):.1f}" y="{BOTTOM + 18}" text-anchor="middle">'
                     f"{_short_date(day)}</text>")  # fmt: skip
    legend, height = _legend(chart, bars)
    first, last = _long_date(chart.days[0]), _long_date(chart.days[-1])
    names = ", ".join(name for name, _ in chart.series)
    summary = f"{names}: {len(chart.days)} days from {first} to {last}."
    return height, [f"<desc>{_text(summary, TEXT_CHARS)}</desc>", *parts, *drawn, *legend]


def _legend(chart: _Chart, bars: bool) -> tuple[list[str], int]:
    """A swatch and a name per series, wrapped into rows; returns them and the chart's height."""
    parts, x, y = [], LEFT, LEGEND_TOP
    for index, (name, _) in enumerate(chart.series):
        label = _text(name, LEGEND_CHARS)
        width = 22 + CHAR_WIDTH * len(_plain(name, LEGEND_CHARS)) + 16
        if x > LEFT and x + width > RIGHT:
            x, y = LEFT, y + LEGEND_ROW
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        swatch = (f'<rect x="{x}" y="{y - 10}" width="14" height="12" fill="{colour}"/>' if bars
                  else f'<line x1="{x}" x2="{x + 16}" y1="{y - 4}" y2="{y - 4}" '
                       f'stroke="{colour}" stroke-width="2"{_dash(dash)}/>')  # fmt: skip
        parts.append(f'<g>{swatch}<text x="{x + 22}" y="{y}">{label}</text>'
                     f"<title>{_text(name, TEXT_CHARS)}</title></g>")  # fmt: skip
        x += width
    return parts, y + 12


def _svg(title: str, height: int, body: list[str], *, show_title: bool) -> str:
    """The whole ``<svg>``; without a shown title, the viewBox starts below where it would be."""
    label = _text(title, TEXT_CHARS)
    top = 0 if show_title else TITLE_SPACE
    shown = (f'<text x="4" y="18" font-size="15" font-weight="bold">{_text(title, TITLE_CHARS)}'
             "</text>" if show_title else "")  # fmt: skip
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 {top} {WIDTH} {height - top}" '
        f'width="100%" role="img" aria-label="{label}" font-family="system-ui, sans-serif" '
        f'font-size="13" fill="#222"><title>{label}</title>{shown}{"".join(body)}</svg>'
    )


def _no_data(title: str, show_title: bool) -> str:
    message = (f'<text x="{WIDTH // 2}" y="60" text-anchor="middle" fill="#555">'
               "No data yet</text>")  # fmt: skip
    return _svg(title, 90, [message], show_title=show_title)


def _tooltip(chart: _Chart, name: str, day: datetime.date, value: float) -> str:
    value_text = _text(chart.value_text(value), TEXT_CHARS)
    return f"<title>{_text(name, TEXT_CHARS)}, {_long_date(day)}: {value_text}</title>"


def _tick_text(value: float, is_share: bool) -> str:
    """A round number, short: 0.25, 40, 1.5k, 2M, 3G; shares as percentages."""
    if is_share:
        return f"{round(value * 100, 1):g}%"
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _short_date(day: datetime.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}"


def _long_date(day: datetime.date) -> str:
    return f"{_short_date(day)}, {day.year}"


def _dash(pattern: str) -> str:
    return f' stroke-dasharray="{pattern}"' if pattern else ""


def _plain(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, with nothing XML cannot hold."""
    flat = " ".join(NOT_XML.sub("", str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _text(text: str, limit: int) -> str:
    """``text`` made safe for SVG text and attributes (and for HTML around an inline SVG)."""
    return escape(_plain(text, limit), quote=True)
