"""The `costaudit` command. Every user mistake ends as one line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from costaudit import __version__
from costaudit.connectors.base import ReadOptions
from costaudit.errors import CostauditError
from costaudit.loader import LoadReport, load_paths
from costaudit.progress import setup_logging
from costaudit.store import connect, default_db_path
from costaudit.textout import SafeConsole, add_literal_row, printable, terminal_console

CENT = Decimal("0.01")
err_console = SafeConsole(stderr=True)


def _console() -> Console:
    """Rich console for stdout; wide when not on a terminal so cron logs keep whole numbers."""
    return terminal_console(highlight=True)


class CostauditGroup(click.Group):
    """Turns CostauditError into one clear line and its exit code."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CostauditError as exc:
            # Messages quote user data (file names, tag values): never let rich read them as markup.
            err_console.print(f"[bold red]error:[/] {escape(printable(str(exc)))}", markup=True, highlight=False,
                              soft_wrap=True)
            sys.exit(exc.exit_code)


@click.group(cls=CostauditGroup)
@click.version_option(__version__, prog_name="costaudit")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="DuckDB store file (default: $COSTAUDIT_DB or ./costaudit.duckdb).",
)
@click.option("--quiet", "-q", is_flag=True, help="Log only warnings and errors (stderr); no progress display.")
@click.option("--verbose", "-v", is_flag=True, help="Log debug detail on stderr.")
@click.pass_context
def main(ctx: click.Context, db: Path | None, quiet: bool, verbose: bool) -> None:
    """Audit cloud billing exports: load them into a FOCUS 1.2 store, reconcile, explore."""
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    setup_logging(quiet=quiet, verbose=verbose)
    ctx.obj = {"db": db or default_db_path(), "db_given": db is not None or "COSTAUDIT_DB" in os.environ,
               "quiet": quiet, "verbose": verbose}


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--currency", default=None, help="Billing currency for FOCUS files that have no BillingCurrency column.")
@click.option("--export", "source_export", default=None, help="Name of the source export in the load ledger.")
@click.option("--quiet", is_flag=True, help="Print nothing on success.")
@click.pass_context
def load(ctx: click.Context, paths: tuple[str, ...], currency: str | None, source_export: str | None, quiet: bool) -> None:
    """Load billing exports (files, folders or globs; CSV, CSV.gz, Parquet, NDJSON).

    Provider and format are detected from the content. Each (provider, billing account,
    billing period, export) replaces its earlier delivery in one transaction; the load fails,
    storing nothing, unless the stored totals match the source's own totals to 0.01.
    """
    con = connect(ctx.obj["db"])
    try:
        report = load_paths(con, list(paths), opts=ReadOptions(default_currency=currency), source_export=source_export)
        if not quiet:
            print_load_report(report)
            # A rerun with nothing new must stay fast at any size: the summary is a scan of the
            # whole store, and nothing in it changed.
            if report.changed:
                print_spend_summary(con)
    finally:
        con.close()


from costaudit.audit_cmd import audit, import_group  # noqa: E402
from costaudit.focus_export import export_group  # noqa: E402
from costaudit.generate_cmd import generate  # noqa: E402
from costaudit.pull_cmd import pull  # noqa: E402
from costaudit.reports.command import report  # noqa: E402
from costaudit.run_cmd import run  # noqa: E402
from costaudit.sql_cmd import sql  # noqa: E402
from costaudit.summary_cmd import summary  # noqa: E402

main.add_command(export_group)
main.add_command(summary)
main.add_command(audit)
main.add_command(import_group)
main.add_command(generate)
main.add_command(pull)
main.add_command(report)
main.add_command(run)
main.add_command(sql)


def print_load_report(report: LoadReport) -> None:
    console = _console()
    for path, reason in report.skipped_files:
        err_console.print(f"skipped {escape(path)}: {escape(reason)}", highlight=False)
    table = Table(title="Reconciliation: source total vs stored total (per invoice)", title_justify="left")
    for header in ("provider", "billing account", "period", "currency", "basis", "source total", "stored total",
                   "difference", "rows", "export", "action"):
        table.add_column(header, justify="right" if header in {"source total", "stored total", "difference", "rows"} else "left")
    for part in sorted(report.partitions, key=lambda p: (p.provider, p.billing_account_id, p.billing_period_start)):
        add_literal_row(table,
            part.provider, part.billing_account_id, f"{part.billing_period_start:%Y-%m}", part.currency, part.basis,
            _exact(part.source_total), _exact(part.stored_total), _exact(part.difference), str(part.rows),
            part.source_export, part.action,
        )
    console.print(table)
    if not report.changed:
        console.print("Nothing changed: every delivery was already loaded (`costaudit summary` shows the spend).")


def print_spend_summary(con) -> None:
    rows = con.execute(
        """
        SELECT l.ProviderName, a.source_export, strftime(l.BillingPeriodStart, '%Y-%m') AS period,
               l.BillingCurrency, coalesce(l.ServiceCategory, '(none)') AS category,
               sum(l.BilledCost), sum(l.EffectiveCost), count(*)
        FROM current_line_items l JOIN loads a ON a.load_id = l.x_LoadId
        GROUP BY ALL ORDER BY 1, 2, 3, 4, 6 DESC
        """
    ).fetchall()
    table = Table(title="Spend summary (store)", title_justify="left")
    for header in ("provider", "export", "period", "currency", "service category", "billed cost", "effective cost", "rows"):
        table.add_column(header, justify="right" if header in {"billed cost", "effective cost", "rows"} else "left")
    for provider, export, period, currency, category, billed, effective, count in rows:
        add_literal_row(table,
            provider, export, period, currency, category,
            _money(billed), _money(effective), str(count),
        )
    _console().print(table)
    shadowed = con.execute(
        """SELECT count(*) FROM loads WHERE status = 'active'
           AND load_id NOT IN (SELECT load_id FROM current_loads)"""
    ).fetchone()[0]
    if shadowed:
        _console().print(
            f"{shadowed} loaded partition(s) are covered by a later export of the same billing account and "
            "period and are left out of this summary (see the loads table)."
        )


def _money(value) -> str:
    """An amount rounded half-up to the cent for display."""
    if value is None:
        return ""
    return f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def _exact(value) -> str:
    """An amount shown exactly: at least two decimals, more when the source has them."""
    if value is None:
        return ""
    amount = Decimal(value)
    if amount == amount.quantize(CENT):
        return f"{amount.quantize(CENT):,.2f}"
    return f"{amount.normalize():,f}"


if __name__ == "__main__":  # pragma: no cover
    main()
