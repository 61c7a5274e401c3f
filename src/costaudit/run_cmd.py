"""`costaudit run`: the one command a scheduled job calls.

Register in cli.py with ``main.add_command(run)``. Expects ``ctx.obj["db"]`` (the store path);
``ctx.obj["db_given"]`` says whether the user named it (--db or $COSTAUDIT_DB), which then wins
over ``[store] path`` of costaudit.toml; ``ctx.obj["quiet"]`` silences the summary on stdout.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from costaudit.config import FAIL_ON, load_config, report_settings, run_settings, store_settings
from costaudit.errors import CostauditError
from costaudit.progress import Steps, stderr_is_terminal
from costaudit.runjob import Change, RunOutcome, run_job, run_window
from costaudit.textout import add_literal_row, terminal_console

log = logging.getLogger(__name__)
CENT = Decimal("0.01")
EXIT_FINDINGS = 3


def _console() -> Console:
    return terminal_console()


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def _signed(value: Decimal) -> str:
    text = _money(value)
    return text if text.startswith("-") else f"+{text}"


@click.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="costaudit.toml with [[sources]], [reports], [run], [analysis], [rules] (default: ./costaudit.toml if present).")
@click.option("--since", default=None, help="First billing month, YYYY-MM (inclusive; default: the last closed month).")
@click.option("--until", default=None, help="Billing month to stop before, YYYY-MM (exclusive; default: after the open month).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default=None,
              help="Exit 3 when an open finding is at or above this severity (default: [run] fail_on, else high).")
@click.option("--wait", type=click.FloatRange(min=0), default=None,
              help="Seconds to wait for another run (or writer) holding the store (default: [run] wait, else 300).")
@click.pass_context
def run(ctx: click.Context, config_path: Path | None, since: str | None, until: str | None, fail_on: str | None,
        wait: float | None) -> None:
    """Load or pull what is new, analyse, audit, write the reports and compare with the previous run.

    For cron and systemd timers. The window is billing months (--since inclusive, --until
    exclusive), by default the last closed month and the open one, which is provisional.
    Sources come from costaudit.toml [[sources]]. The store is rebuilt in a copy and swapped in
    atomically, so `costaudit sql` and other readers keep working during a run; a second run
    waits for the first (--wait).

    Exit codes: 0 no open finding at or above --fail-on; 3 at least one; 1 an error (nothing is
    swapped in when loading, analysis or the audit fails); 2 a usage or configuration error.
    """
    project = load_config(config_path)
    settings = run_settings(project)
    reports = report_settings(project)
    fail_on = fail_on or settings.fail_on
    wait = settings.wait if wait is None else wait
    store = Path(ctx.obj["db"])
    if not ctx.obj.get("db_given", True) and project.store_path() is not None:
        store = project.store_path()
    memory = store_settings(project).memory_limit
    if memory is not None and "COSTAUDIT_MEMORY_LIMIT" not in os.environ:
        os.environ["COSTAUDIT_MEMORY_LIMIT"] = memory  # read by costaudit.store.connect
    today = datetime.now(UTC).date()
    window = run_window(since, until, today)
    quiet = bool(ctx.obj.get("quiet"))
    log.info("run: store %s, billing months %s", store, window.label())
    with Steps(enabled=stderr_is_terminal() and not quiet) as steps:
        outcome = run_job(store, project, reports, window=window, fail_on=fail_on, wait=wait, steps=steps, today=today)
    if not quiet:
        print_run(outcome)
    failed = outcome.audit.rules_with("error")
    if failed:
        raise CostauditError(
            f"{len(failed)} rule(s) failed (the run is stored as {outcome.audit.run_id}): "
            + "; ".join(f"{o.rule.id}: {o.reason}" for o in failed)
        )
    failing = outcome.failing
    if failing:
        message = f"{failing} open finding(s) at or above {fail_on} severity (exit {EXIT_FINDINGS})"
        if quiet:
            log.warning(message)
        else:
            _console().print(message, markup=False)
        ctx.exit(EXIT_FINDINGS)


def print_run(outcome: RunOutcome) -> None:
    """What the run did, what changed since the previous one, and where the reports are."""
    console = _console()
    audit = outcome.audit
    console.print(f"Run {audit.run_id}: billing months {outcome.window.label()}; store {outcome.store}", markup=False)
    for source in outcome.sources:
        text = (f"  source {source.name} ({source.provider}): {source.loaded} partition(s) loaded, "
                f"{source.replaced} replaced, {source.unchanged} unchanged")
        if source.skipped_files:
            text += f", {source.skipped_files} file(s) skipped"
        console.print(text + (f"; {source.note}" if source.note else ""), markup=False)
    console.print(f"  {outcome.analysis_note}", markup=False)
    by_severity = {s: audit.open_by_severity.get(s, 0) for s in ("high", "medium", "low")}
    console.print(
        f"  audit: {len(audit.rules_with('ok'))} rule(s) ran, {len(audit.rules_with('skipped'))} skipped, "
        f"{len(audit.rules_with('error'))} failed over {audit.billing_rows} billing rows; {audit.count('open')} open "
        f"finding(s) ({', '.join(f'{n} {s}' for s, n in by_severity.items())}), {audit.count('suppressed')} suppressed, "
        f"{audit.count('not_assessed')} not assessed",
        markup=False,
    )
    for skipped in audit.rules_with("skipped"):
        console.print(f"    skipped {skipped.rule.id}: {skipped.reason}", markup=False)
    diff = outcome.diff
    if diff.previous_run_id is None:
        console.print("First run on this store: nothing to compare with.", markup=False)
    else:
        since, until = diff.previous_window
        span = f"{since:%Y-%m} to {until:%Y-%m} exclusive" if since and until else "no billing data"
        console.print(
            f"Since run {diff.previous_run_id} ({span}): {len(diff.new)} new, {len(diff.resolved)} resolved, "
            f"{diff.persisting} persisting" + (f", {diff.no_longer_open} now suppressed or not assessed"
                                               if diff.no_longer_open else ""),
            markup=False,
        )
        if (since, until) != (outcome.window.since, outcome.window.until) and since and until:
            console.print("  (the previous run covered other billing months: part of the difference is the window)",
                          markup=False)
        for currency, before, now in diff.savings:
            console.print(
                f"  estimated monthly saving, open findings: {_money(now)} {currency} "
                f"(previous {_money(before)}, change {_signed(now - before)})",
                markup=False,
            )
    if diff.previous_run_id is None:
        for currency, (total, _count) in sorted(audit.open_savings.items()):
            console.print(f"  estimated monthly saving, open findings: {_money(total)} {currency}", markup=False)
    if diff.previous_run_id is None:
        _changes(console, "Open findings by estimated monthly saving (per currency)", diff.new)
    else:
        _changes(console, "New findings (open now, not open in the previous run)", diff.new)
    _changes(console, "Resolved findings (open in the previous run, gone now)", diff.resolved)
    for path in outcome.reports:
        console.print(f"report: {path}", markup=False)
    if outcome.report_note:
        console.print(outcome.report_note, markup=False)


def _changes(console: Console, title: str, changes: list[Change], limit: int = 25) -> None:
    if not changes:
        return
    table = Table(title=title, title_justify="left")
    for header in ("saving/month", "currency", "rule", "severity", "resource", "fingerprint", "summary"):
        table.add_column(header, justify="right" if header == "saving/month" else "left", overflow="fold")
    for change in changes[:limit]:
        add_literal_row(
            table, _money(change.saving), change.currency or "", change.rule_id, change.severity,
            change.resource_id, change.fingerprint[:12], change.summary,
        )
    console.print(table)
    if len(changes) > limit:
        console.print(f"... and {len(changes) - limit} more (see the findings_changes view)", markup=False)
