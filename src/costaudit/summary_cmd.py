"""`costaudit summary`: how much of the bill is AI and where it goes; what moving data costs.

Register in cli.py with `main.add_command(summary)`. The analysis runs first when it is missing or
stale (new loads, another costaudit.toml, another taxonomy version), so the figures always cover
every current line item.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import click
import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from costaudit.analysis import ensure_analysis, load_analysis_config
from costaudit.analysis.config import AnalysisConfig
from costaudit.analysis.run import is_fresh
from costaudit.analysis.summary import CurrencySummary, summarise
from costaudit.analysis.taxonomy import load_taxonomy
from costaudit.errors import CostauditError, UsageError
from costaudit.store import connect
from costaudit.textout import add_literal_row, terminal_console

CENT = Decimal("0.01")
GB_PLACES = Decimal("0.001")


def _console() -> Console:
    return terminal_console(highlight=True)


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def _gb(value: Decimal | None) -> str:
    return "" if value is None else f"{Decimal(value).quantize(GB_PLACES, rounding=ROUND_HALF_UP):,.3f}"


def _share(part: Decimal, whole: Decimal) -> str:
    if not whole:
        return "-"
    return f"{(part * 100 / whole).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def _month(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"{option} {value!r}: expected a billing month as YYYY-MM") from None


def _table(title: str, headers: list[str], numeric: set[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for header in headers:
        table.add_column(header, justify="right" if header in numeric else "left")
    return table


def render(summary: CurrencySummary, console: Console) -> None:
    """Print one currency's tables. Store text (providers, categories, regions, routes) is bill
    data: cells go in literally (`add_literal_row`), the currency in markup is escaped."""
    cur = escape(summary.currency or "")
    console.print(
        f"[bold]{cur}[/]: total billed {_money(summary.billed)} {cur}; AI {_money(summary.ai_billed)} {cur} "
        f"({_share(summary.ai_billed, summary.billed)}); network {_money(summary.network_billed)} {cur} "
        f"({_share(summary.network_billed, summary.billed)}), {_gb(summary.network_gb)} GB",
        highlight=False,
    )
    ai = _table(f"AI spend ({cur})", ["month", "provider", "category", "billed cost", "effective cost", "rows"],
                {"billed cost", "effective cost", "rows"})
    for month, provider, category, billed, effective, rows in summary.ai_rows:
        add_literal_row(ai, month, provider, category, _money(billed), _money(effective), str(rows))
    ai.add_section()
    ai.add_row("total", "", "", _money(summary.ai_billed), _money(summary.ai_effective), "")
    console.print(ai)
    network = _table(f"Network cost by class ({cur})", ["class", "billed cost", "effective cost", "GB", "rows"],
                     {"billed cost", "effective cost", "GB", "rows"})
    for cls, billed, effective, gb, rows in summary.network_classes:
        add_literal_row(network, cls, _money(billed), _money(effective), _gb(gb), str(rows))
    network.add_section()
    network.add_row("total", _money(summary.network_billed), _money(summary.network_effective),
                    _gb(summary.network_gb), "")
    console.print(network)
    routes = _table(f"Top routes by billed cost ({cur}, inbound left out)", ["route", "class", "billed cost", "effective cost", "GB"],
                    {"billed cost", "effective cost", "GB"})
    for route, cls, billed, effective, gb in summary.top_routes:
        add_literal_row(routes, route, cls, _money(billed), _money(effective), _gb(gb))
    console.print(routes)


def analysis_is_fresh(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> bool:
    """True when the stored analysis matches the loads, configuration and taxonomy (read-only)."""
    try:
        return is_fresh(con, config, load_taxonomy(config.rules, config.rules_files))
    except duckdb.Error:  # a store made before the analysis existed: let ensure_analysis decide
        return False


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="costaudit.toml with an [analysis] section (default: ./costaudit.toml if present).")
@click.option("--since", default=None, help="First billing month to include, YYYY-MM (inclusive).")
@click.option("--until", default=None, help="Billing month to stop before, YYYY-MM (exclusive).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 1000), help="How many routes to list.")
@click.pass_context
def summary(ctx: click.Context, config_path: Path | None, since: str | None, until: str | None, top: int) -> None:
    """AI spend by category, provider and month; network cost by class and top routes; per currency.

    Runs the analysis first when the store changed since the last run. Amounts in different
    currencies are never added together.
    """
    db = Path(ctx.obj["db"])
    if not db.exists():
        raise CostauditError(f"{db}: no store here yet; run `costaudit load PATH...` first")
    config = load_analysis_config(config_path)
    start, stop = _month(since, "--since"), _month(until, "--until")
    if start is not None and stop is not None and start >= stop:
        raise UsageError(f"--since {start:%Y-%m} must be before --until {stop:%Y-%m} (until is exclusive)")
    # A reader: open the store read-only, so `summary` never blocks a scheduled run; only a
    # stale analysis makes it reopen the store to write one.
    con = connect(db, read_only=True)
    try:
        run = None
        if not analysis_is_fresh(con, config):
            con.close()
            con = connect(db)
            run = ensure_analysis(con, config)
        console = _console()
        if run is not None:
            console.print(
                f"Analysis refreshed: {run.keys} charge keys over {run.line_items} line items "
                f"(taxonomy {run.taxonomy_version}, {run.seconds:.2f} s).",
                highlight=False,
            )
        summaries = summarise(con, since=start, until=stop, top=top)
        if not summaries:
            console.print("No line items in the selected billing months.")
        for item in summaries:
            render(item, console)
    finally:
        con.close()
