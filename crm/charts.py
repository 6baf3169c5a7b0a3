"""Charts drawn on the server as inline SVG: no JavaScript and no CDN, so the admin works offline.

Text and grid lines take their colours from the admin's CSS variables (see the dashboard
template), so light and dark mode both work; series colours are the Okabe-Ito palette, which
stays distinguishable with colour-blindness and on either background.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from core.money import format_money, minor_to_major

from .selectors.dashboard import WeeklyRevenue

PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#999999"]

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 8, 12, 28
TICKS = 4


@dataclass(frozen=True)
class LegendItem:
    label: str
    color: str
    total: str


@dataclass(frozen=True)
class TableRow:
    week: date
    amounts: list[str]
    total: str


@dataclass(frozen=True)
class RevenueChart:
    """One currency's chart, ready for the template: the SVG, its legend and its numbers."""

    currency: str
    svg: SafeString
    legend: list[LegendItem]
    columns: list[str]
    rows: list[TableRow]
    total: str


def series_colors(revenue: list[WeeklyRevenue]) -> dict[str, str]:
    """One colour per service across every currency's chart, biggest service first."""
    colors: dict[str, str] = {}
    for chart in revenue:
        for series in chart.series:
            colors.setdefault(series.key, PALETTE[len(colors) % len(PALETTE)])
    return colors


def revenue_charts(revenue: list[WeeklyRevenue]) -> list[RevenueChart]:
    colors = series_colors(revenue)
    return [revenue_chart(chart, colors=colors, index=n) for n, chart in enumerate(revenue)]


def money_texts(currency: str) -> Callable[[int], str]:
    """format_money for one currency, each amount formatted once: a chart shows every amount in its
    bar's tooltip and again in its table, and babel's formatting is most of a chart's time."""
    texts: dict[int, str] = {}

    def text(amount: int) -> str:
        if amount not in texts:
            texts[amount] = format_money(amount, currency)
        return texts[amount]

    return text


def revenue_chart(revenue: WeeklyRevenue, *, colors: dict[str, str], index: int = 0) -> RevenueChart:
    money = money_texts(revenue.currency)
    rows = []
    for n, week in enumerate(revenue.weeks):
        amounts = [s.amounts[n] for s in revenue.series]
        rows.append(
            TableRow(
                week=week,
                amounts=[money(a) if a else "—" for a in amounts],
                total=money(sum(amounts)),
            )
        )
    return RevenueChart(
        currency=revenue.currency.upper(),
        svg=stacked_bars_svg(revenue, colors=colors, element_id=f"revenue-chart-{index}", money=money),
        legend=[LegendItem(label=s.label, color=colors[s.key], total=money(s.total)) for s in revenue.series],
        columns=[s.label for s in revenue.series],
        rows=rows,
        total=money(revenue.total),
    )


def stacked_bars_svg(
    revenue: WeeklyRevenue,
    *,
    colors: dict[str, str],
    element_id: str,
    money: Callable[[int], str] | None = None,
) -> SafeString:
    """Stacked bars, one per week, one <rect class="bar"> per (week, service) with revenue."""
    currency = revenue.currency
    money = money or money_texts(currency)
    per_unit = float(minor_to_major(1, currency))  # major units per minor unit
    totals = [sum(s.amounts[n] for s in revenue.series) for n in range(len(revenue.weeks))]
    step = nice_step(max(totals, default=0) * per_unit / TICKS)
    top = step * max(1, math.ceil(max(totals, default=0) * per_unit / step - 1e-9))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(revenue.weeks))
    bar_w = slot * 0.62

    def y_of(major: float) -> float:
        return TOP + plot_h - major / top * plot_h

    parts = []
    for tick in range(round(top / step) + 1):
        value = tick * step
        y = y_of(value)
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="y-label" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 6,
                f"{y:.1f}",
                format_money(round(value / per_unit), currency, whole_without_decimals=True),
            )
        )
    for n, week in enumerate(revenue.weeks):
        x = LEFT + n * slot + (slot - bar_w) / 2
        parts.append(
            format_html(
                '<text class="x-label" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{x + bar_w / 2:.1f}",
                HEIGHT - 8,
                f"{week.day} {week:%b}",
            )
        )
        stacked = 0.0
        for series in revenue.series:
            amount = series.amounts[n]
            if not amount:
                continue
            bottom, stacked = y_of(stacked), stacked + amount * per_unit
            y = y_of(stacked)
            parts.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{}, week of {}: {}</title></rect>",
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{bar_w:.1f}",
                    f"{max(bottom - y, 0.5):.1f}",
                    colors[series.key],
                    series.label,
                    week.isoformat(),
                    money(amount),
                )
            )
    parts.append(
        format_html(
            '<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"></line>',
            LEFT,
            WIDTH - RIGHT,
            TOP + plot_h,
            TOP + plot_h,
        )
    )
    services = ", ".join(s.label for s in revenue.series)
    description = (
        f"Stacked bars of revenue per week from {revenue.weeks[0].isoformat()} to "
        f"{revenue.weeks[-1].isoformat()}, one colour per service ({services}); "
        f"total {money(revenue.total)}."
    )
    return format_html(
        '<svg class="revenue-svg" id="{}" role="img" aria-labelledby="{}-title {}-desc" '
        'viewBox="0 0 {} {}" preserveAspectRatio="xMidYMid meet">'
        '<title id="{}-title">Revenue per service by week, {}</title>'
        '<desc id="{}-desc">{}</desc>{}</svg>',
        element_id,
        element_id,
        element_id,
        WIDTH,
        HEIGHT,
        element_id,
        currency.upper(),
        element_id,
        description,
        mark_safe("".join(parts)),  # noqa: S308 - each part was built with format_html
    )


def nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at least `raw`: tick spacing people read at a glance."""
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * magnitude * (1 + 1e-9):
            return multiple * magnitude
    return 10 * magnitude
