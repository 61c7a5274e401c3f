"""Chart geometry for the HTML report: horizontal bars and stacked monthly columns as inline SVG.

Charts are drawn from the few aggregated numbers a report holds (tens of bars), so plain
geometry in Python is enough: no JavaScript, nothing fetched, and the page prints as it shows.
This module only computes positions and labels; the template writes the SVG elements, with
Jinja2's autoescape, so store text in labels stays text. Positions are floats (pixels); the
amounts shown are formatted from the exact decimals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from .data import CurrencySpend, FindingRow
from .safe import money

WIDTH = 720
PALETTE_SIZE = 8
_LABEL_CHARS = 40


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # full label and amount, read by screen readers and shown on hover
    series: int  # colour class


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"
    css: str = "label"
    rotate: float = 0.0  # degrees around (x, y)


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    css: str = "axis"


@dataclass
class Chart:
    """One SVG chart: `bars` are the data marks (one per value), the rest is decoration."""

    name: str  # what is charted: ai-by-month, network-classes, top-routes, top-findings
    kind: str
    title: str
    description: str
    currency: str
    height: float
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    swatches: list[Bar] = field(default_factory=list)  # legend keys, not data
    width: float = WIDTH

    @property
    def empty(self) -> bool:
        return not self.bars

    @property
    def chart_id(self) -> str:
        """An HTML id: the name and the currency's letters (currency codes come from the bills)."""
        return f"{self.name}-" + "".join(c for c in self.currency if c.isascii() and c.isalnum())[:12]


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _scale(values: list[Decimal], start: float, length: float):
    """Map amounts to pixels over [start, start + length], zero included in the domain."""
    low = float(min([Decimal(0), *values]))
    high = float(max([Decimal(0), *values]))
    span = (high - low) or 1.0

    def at(value: Decimal | float) -> float:
        return start + (float(value) - low) / span * length

    return at


def hbar_chart(name: str, title: str, description: str, currency: str,
               items: list[tuple[str, Decimal]]) -> Chart:
    """One horizontal bar per (label, amount); negative amounts extend left of the zero line."""
    row, bar_height, top, label_width, value_width = 24.0, 16.0, 8.0, 280.0, 130.0
    plot = WIDTH - label_width - value_width - 10
    chart = Chart(name, "hbar", title, description, currency, height=top * 2 + row * max(len(items), 1))
    at = _scale([amount for _, amount in items], label_width, plot)
    zero = at(0)
    for index, (label, amount) in enumerate(items):
        y = top + index * row
        end = at(amount)
        chart.bars.append(Bar(min(zero, end), y + (row - bar_height) / 2, abs(end - zero), bar_height,
                              f"{label}: {money(amount)} {currency}", 0))
        chart.labels.append(Label(label_width - 8, y + row / 2 + 4, _short(label), "end"))
        chart.labels.append(Label(WIDTH - 4, y + row / 2 + 4, f"{money(amount)} {currency}", "end", "value"))
    chart.lines.append(Line(zero, top - 2, zero, chart.height - top + 2))
    return chart


def _nice_step(high: float, ticks: int = 4) -> float:
    if high <= 0:
        return 1.0
    raw = high / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def stacked_columns(name: str, title: str, description: str, currency: str, months: list[str],
                    series: list[str], cells: list[tuple[str, str, Decimal]]) -> Chart:
    """One column per month, one stacked segment per (month, series) amount that is not zero.

    Positive amounts stack up from the zero line and negative ones (credits) down from it."""
    left, right, top, axis_height, legend_row = 90.0, 10.0, 12.0, 220.0, 20.0
    legend_rows = math.ceil(len(series) / 3) if series else 0
    bottom = top + axis_height
    slot = (WIDTH - left - right) / max(len(months), 1)
    # Month labels need ~62 px side by side; closer columns get slanted labels, and every
    # n-th label only when even those would touch.
    slanted = slot < 62
    label_every = max(1, math.ceil(16 / slot)) if slanted else 1
    label_room = 52.0 if slanted else 22.0
    chart = Chart(name, "stack", title, description, currency,
                  height=bottom + label_room + 6 + legend_rows * legend_row + 6)
    up: dict[str, Decimal] = {m: Decimal(0) for m in months}
    down: dict[str, Decimal] = {m: Decimal(0) for m in months}
    for month, _, amount in cells:
        if month in up:
            if amount >= 0:
                up[month] += amount
            else:
                down[month] += amount
    high, low = float(max(up.values(), default=0)), float(min(down.values(), default=0))
    step = _nice_step(max(high, -low))
    top_value = math.ceil(high / step) * step if high > 0 else 0.0
    # Credits below zero get room in proportion to their size, not a whole tick step.
    bottom_value = low if low < 0 else 0.0
    span = (top_value - bottom_value) or step

    def y_at(value: float) -> float:
        return bottom - (value - bottom_value) / span * axis_height

    ticks = [index * step for index in range(int(round(top_value / step)) + 1)]
    ticks += [-index * step for index in range(1, int(-bottom_value // step) + 1)]
    for tick in ticks:
        chart.lines.append(Line(left, y_at(tick), WIDTH - right, y_at(tick), "grid"))
        chart.labels.append(Label(left - 6, y_at(tick) + 4, f"{tick:,.0f}", "end", "tick"))
    width = min(slot * 0.7, 60.0)
    for index, month in enumerate(months):
        x = left + index * slot + (slot - width) / 2
        if not slanted:
            chart.labels.append(Label(x + width / 2, bottom + 16, month, "middle", "tick"))
        elif index % label_every == 0:
            chart.labels.append(Label(x + width / 2 + 4, bottom + 12, month, "end", "tick", -45.0))
        above, below = 0.0, 0.0
        for cell_month, name, amount in cells:
            if cell_month != month or amount == 0:
                continue
            value = float(amount)
            if value > 0:
                y0, y1 = y_at(above + value), y_at(above)
                above += value
            else:
                y0, y1 = y_at(below), y_at(below + value)
                below += value
            chart.bars.append(Bar(x, y0, width, max(y1 - y0, 0.5),
                                  f"{month} {name}: {money(amount)} {currency}", series.index(name) % PALETTE_SIZE))
    chart.lines.append(Line(left, y_at(0), WIDTH - right, y_at(0)))
    for index, name in enumerate(series):
        x = left + (index % 3) * 200
        y = bottom + label_room + 8 + (index // 3) * legend_row
        chart.swatches.append(Bar(x, y, 12, 12, name, index % PALETTE_SIZE))
        chart.labels.append(Label(x + 18, y + 10, _short(name, 28), "start", "legend"))
    return chart


def currency_charts(spend: CurrencySpend, months: list[str], top: list[FindingRow]) -> list[Chart]:
    """The charts of one currency: AI spend by category per month, network cost by class, top
    routes, and the open findings with the largest estimated saving."""
    cur, basis = spend.currency, spend.cost_basis
    charts = []
    cells = spend.ai_month_category()
    if cells:
        series = sorted({name for _, name, _ in cells})
        charts.append(stacked_columns(
            "ai-by-month", f"AI spend by category and month ({cur}, {basis})",
            f"Stacked columns: AI spend per billing month in {cur}, one segment per AI category.",
            cur, months, series, cells))
    pick = (lambda b, e: b) if basis == "BilledCost" else (lambda b, e: e)
    if spend.network_classes:
        charts.append(hbar_chart(
            "network-classes", f"Network cost by class ({cur}, {basis})",
            f"Horizontal bars: network transfer cost per traffic class in {cur}.", cur,
            [(c.network_class, pick(c.billed, c.effective)) for c in spend.network_classes]))
    if spend.top_routes:
        charts.append(hbar_chart(
            "top-routes", f"Top network routes ({cur}, ranked by billed cost, shown on {basis})",
            f"Horizontal bars: the costliest source-to-destination routes in {cur}, inbound left out.", cur,
            [(f"{r.route} ({r.network_class})", pick(r.billed, r.effective)) for r in spend.top_routes]))
    if top:
        charts.append(hbar_chart(
            "top-findings", f"Top findings by estimated monthly saving ({cur})",
            f"Horizontal bars: open findings in {cur} with the largest estimated monthly saving.", cur,
            [(f"{f.title}: {f.resource_id}", f.estimated_monthly_saving or Decimal(0)) for f in top]))
    return charts
