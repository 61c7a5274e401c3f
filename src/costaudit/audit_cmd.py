"""`costaudit audit` and `costaudit import metrics|inventory`.

`audit` brings the analysis up to date, runs every rule over the billing window, stores the run
and prints its findings sorted by estimated monthly saving, each with the evidence a person
needs to check the estimate by hand: the top 50 per currency by default (``--top N``, ``--all``),
with the totals over every finding; the rest are in the store (``latest_findings``). `import` reads inputs beyond billing (utilisation metrics,
storage inventories) from files until their connectors exist.

Both expect ``ctx.obj["db"]`` (the store path), as `costaudit.cli.main` sets it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from costaudit.errors import CostauditError
from costaudit.store import connect
from costaudit.textout import add_literal_row, terminal_console

CENT = Decimal("0.01")
DEFAULT_TOP = 50


def _console() -> Console:
    return terminal_console()


def _money(value) -> str:
    if value is None:
        return "-"
    return f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def _run_analysis(con, config_path: Path | None) -> str:
    """Bring the analysis tables up to date (the egress rules read them); a note for the output."""
    try:
        from costaudit.analysis.config import load_analysis_config
        from costaudit.analysis.run import ensure_analysis
    except ImportError as exc:  # the analysis room is optional for the storage and compute rules
        return f"analysis: not available ({exc})"
    [(rows,)] = con.execute("SELECT count(*) FROM current_line_items").fetchall()
    if not rows:
        return "analysis: skipped, no billing data loaded"
    run = ensure_analysis(con, load_analysis_config(config_path))
    if run is None:
        return "analysis: up to date"
    return f"analysis: classified {run.keys} charge keys ({run.ai_keys} AI, {run.network_keys} network)"


@click.command("audit")
@click.option("--since", default=None, help="First billing month audited, YYYY-MM (inclusive; default: the earliest loaded).")
@click.option("--until", default=None, help="Billing month after the last one audited, YYYY-MM (exclusive; default: after the latest).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="costaudit.toml with [rules.<id>] thresholds and [[suppress]] entries (default: ./costaudit.toml if present).",
)
@click.option("--rule", "only", multiple=True, help="Run only this rule id (repeatable).")
@click.option("--evidence/--no-evidence", default=True, help="Print each finding's evidence (default: on).")
@click.option(
    "--top", type=click.IntRange(min=0), default=DEFAULT_TOP, show_default=True,
    help="Print the N largest findings of each currency (per table); all are stored.",
)
@click.option("--all", "print_all", is_flag=True, help="Print every finding (overrides --top).")
@click.pass_context
def audit(
    ctx: click.Context, since: str | None, until: str | None, config_path: Path | None, only: tuple[str, ...],
    evidence: bool, top: int, print_all: bool,
) -> None:
    """Run the analysis and every rule; print findings sorted by estimated monthly saving.

    Prints the largest findings of each currency (--top, default 50; --all for every one) and
    the totals over all of them. Each finding has a fingerprint that stays the same across runs
    (rule, provider, billing account, resource): use it in costaudit.toml to suppress a finding
    with a reason. Every finding is stored with the run (tables runs, findings; views
    latest_findings, findings_changes).
    """
    from costaudit.rules.config import load_rules_config
    from costaudit.rules.registry import all_rules
    from costaudit.rules.runner import run_audit

    config = load_rules_config(config_path)
    config.resolve(all_rules())  # the rules' parameters are checked before the analysis runs
    db = Path(ctx.obj["db"])
    if not db.exists():  # a mistyped --db or COSTAUDIT_DB must not pass as a clean, empty audit
        raise CostauditError(f"{db}: no store here yet; run `costaudit load PATH...` first")
    con = connect(db)
    try:
        note = _run_analysis(con, config_path)
        report = run_audit(con, config, since=since, until=until, only=only, keep=None if print_all else top)
    finally:
        con.close()
    print_audit(report, note, evidence, top=None if print_all else top)
    failed = report.rules_with("error")
    if failed:
        raise CostauditError(
            f"{len(failed)} rule(s) failed: " + "; ".join(f"{o.rule.id}: {o.reason}" for o in failed)
        )


def _evidence_line(evidence: dict) -> str:
    parts = []
    for key, value in evidence.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}={value}")
    return "; ".join(parts)


def _of_status(report, status: str) -> list:
    """The findings of one status that the run read back (the largest of each currency, in
    print order: `run_audit` sorted them in SQL)."""
    return [f for f in report.findings if f.status == status]


def _more_line(console: Console, what: str, hidden: dict[str, int]) -> None:
    """'N more in latest_findings' for a table that printed only the top of each currency."""
    if not hidden:
        return
    per_currency = ", ".join(f"{n:,} in {currency}" for currency, n in sorted(hidden.items()))
    console.print(
        f"{sum(hidden.values()):,} more {what} in latest_findings ({per_currency}); --top N or --all prints them",
        markup=False,
    )


def print_audit(report, note: str, evidence: bool = True, top: int | None = DEFAULT_TOP) -> None:
    """The run's findings by saving, then suppressed, not assessed and per-rule status.

    Each table lists the `top` largest of each currency (every finding when None) and says how
    many more are in ``latest_findings``; the saving totals cover every open finding."""
    console = _console()
    window = report.window
    span = f"{report.periods[0]} to {report.periods[-1]}" if report.periods else "no billing periods"
    console.print(
        f"Audit run {report.run_id}: {span} ({report.billing_rows} billing rows)"
        + (f", window {window.since:%Y-%m} to {window.until:%Y-%m} (exclusive)" if window else ""),
        markup=False,
    )
    console.print(note, markup=False)
    # Amounts in different currencies are not compared: one block per currency, by saving within it.
    shown, hidden = _of_status(report, "open"), report.not_read.get("open", {})
    title = "Findings by estimated monthly saving (per currency)"
    if top is not None:
        title += f", the {top} largest of each currency"
    table = Table(title=title, title_justify="left")
    for header in ("saving/month", "currency", "rule", "severity", "provider", "account", "resource", "period",
                   "fingerprint", "summary"):
        table.add_column(header, justify="right" if header == "saving/month" else "left", overflow="fold")
    severity = {o.rule.id: o.rule.rule.severity for o in report.outcomes}
    for applied in shown:
        f = applied.finding
        add_literal_row(table,
            _money(f.estimated_monthly_saving), f.currency or "", f.rule_id, severity.get(f.rule_id, ""), f.provider,
            f.billing_account_id or "", f.resource_id, f"{f.billing_period:%Y-%m}" if f.billing_period else "",
            applied.fingerprint[:12], f.summary,
        )
    console.print(table)
    for currency, (total, count) in sorted(report.open_savings.items()):
        console.print(
            f"Estimated monthly saving, open findings: {_money(total)} {currency}"
            + (f" ({count:,} findings)" if hidden else ""),
            markup=False,
        )
    _more_line(console, "open findings", hidden)
    if evidence and shown:
        console.print("\nEvidence", style="bold")
        for applied in shown:
            f = applied.finding
            console.print(f"[{applied.fingerprint[:12]}] {f.rule_id} {f.resource_id}", markup=False)
            console.print(f"  {f.summary}", markup=False)
            console.print(f"  evidence: {_evidence_line(f.evidence)}", markup=False)
            console.print(
                f"  saving {_money(f.estimated_monthly_saving)} {f.currency or ''} of "
                f"{_money(f.monthly_cost_in_scope)} in scope: {f.estimate_method}",
                markup=False,
            )
            if applied.suppression_note:
                console.print(f"  note: {applied.suppression_note}", markup=False)
    shown_suppressed, hidden_suppressed = _of_status(report, "suppressed"), report.not_read.get("suppressed", {})
    if shown_suppressed:
        table = Table(title="Suppressed (still listed)", title_justify="left")
        for header in ("saving/month", "currency", "rule", "resource", "fingerprint", "reason", "expires"):
            table.add_column(header, overflow="fold")
        for applied in shown_suppressed:
            f = applied.finding
            add_literal_row(table, _money(f.estimated_monthly_saving), f.currency or "", f.rule_id, f.resource_id,
                          applied.fingerprint[:12], applied.suppression_reason or "",
                          str(applied.suppression_expires or ""))
        console.print(table)
        _more_line(console, "suppressed findings", hidden_suppressed)
    shown_not_assessed = _of_status(report, "not_assessed")
    hidden_not_assessed = report.not_read.get("not_assessed", {})
    if shown_not_assessed:
        table = Table(title="Not assessed (no verdict: missing metrics or catalogue data)", title_justify="left")
        for header in ("rule", "provider", "account", "resource", "cost in scope", "currency", "reason"):
            table.add_column(header, overflow="fold")
        for applied in shown_not_assessed:
            f = applied.finding
            add_literal_row(table, f.rule_id, f.provider, f.billing_account_id or "", f.resource_id,
                          _money(f.monthly_cost_in_scope), f.currency or "", f.summary)
        console.print(table)
        _more_line(console, "findings not assessed", hidden_not_assessed)
    table = Table(title="Rules", title_justify="left")
    for header in ("rule", "family", "status", "findings", "reason"):
        table.add_column(header, overflow="fold")
    for outcome in report.outcomes:
        add_literal_row(table, outcome.rule.id, outcome.rule.rule.family, outcome.status, str(outcome.found),
                      outcome.reason or "")
    console.print(table)
    for suppression in report.expired:
        console.print(f"{suppression.describe()} expired on {suppression.expires}; its findings are open again",
                      markup=False)
    for suppression in report.unused:
        console.print(f"{suppression.describe()} matched no finding in this run", markup=False)


@click.group("import")
def import_group() -> None:
    """Import data beyond billing: utilisation metrics and storage inventories (files)."""


@import_group.command("metrics")
@click.argument("paths", nargs=-1, required=True)
@click.pass_context
def import_metrics_cmd(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Import utilisation samples: CSV or Parquet, long format resource_id, metric, timestamp, value.

    Metrics: cpu_utilization, memory_utilization, gpu_utilization, gpu_memory_utilization
    (percent, 0-100), network_in_bytes, network_out_bytes. A sample already stored for the same
    resource, metric and timestamp is replaced.
    """
    from costaudit.connectors.imports_metrics import import_metrics

    con = connect(ctx.obj["db"])
    try:
        report = import_metrics(con, list(paths))
    finally:
        con.close()
    console = _console()
    table = Table(title=f"Imported {report.samples} samples for {report.resources} resources", title_justify="left")
    for header in ("metric", "samples", "first", "last"):
        table.add_column(header)
    for metric, (count, first, last) in report.by_metric.items():
        add_literal_row(table, metric, str(count), f"{first:%Y-%m-%d %H:%M}", f"{last:%Y-%m-%d %H:%M}")
    console.print(table)
    for warning in report.warnings:
        console.print(f"warning: {warning}", markup=False)


@import_group.command("inventory")
@click.argument("paths", nargs=-1, required=True)
@click.option("--account", default=None, help="Azure storage account of blob inventory files given without their manifest.")
@click.option("--region", default=None, help="Region of the inventoried buckets when the inventory does not say.")
@click.option("--billing-account", default=None, help="Billing account to report findings under when the bucket is not in the bills.")
@click.pass_context
def import_inventory_cmd(
    ctx: click.Context, paths: tuple[str, ...], account: str | None, region: str | None, billing_account: str | None
) -> None:
    """Import storage inventories: S3 Inventory (manifest.json + CSV or Parquet), GCS inventory
    reports (CSV/Parquet), Azure blob inventory (CSV/Parquet). Each bucket's earlier listing is replaced.
    """
    from costaudit.connectors.imports_inventory import import_inventory

    con = connect(ctx.obj["db"])
    try:
        report = import_inventory(con, list(paths), account=account, region=region, billing_account=billing_account)
    finally:
        con.close()
    console = _console()
    table = Table(title="Imported storage inventory", title_justify="left")
    for header in ("location", "objects", "bytes"):
        table.add_column(header, justify="right" if header != "location" else "left")
    for location, (objects, size) in report.locations.items():
        add_literal_row(table, location, str(objects), f"{size:,}")
    console.print(table)
    for path, reason in report.skipped:
        console.print(f"skipped {path}: {reason}", markup=False)
