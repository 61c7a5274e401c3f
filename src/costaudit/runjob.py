"""The steps of `costaudit run`, for scheduled jobs: sources, analysis, audit, diff, reports.

Everything that writes happens inside `costaudit.swap.building_store`: the store is copied,
the copy is written, and only a run that got through loading, analysis and audit is swapped in.
A failed source or analysis leaves the store as it was. Reports are written afterwards, from
the swapped-in store opened read-only, as `costaudit report` would read it.

The billing window is billing months: ``since`` inclusive, ``until`` exclusive; by default the
last closed month and the open (current) one, which is provisional: its bill can still change.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from costaudit.config import ProjectConfig, ReportSettings, SourceConfig
from costaudit.connectors.base import ReadOptions
from costaudit.errors import CostauditError, UsageError
from costaudit.faults import pause_point
from costaudit.progress import Steps
from costaudit.rules.contract import SEVERITIES
from costaudit.rules.runner import AuditReport, _next_month, month_start, run_audit
from costaudit.swap import building_store

log = logging.getLogger(__name__)

LOCAL_KEYS = {"path", "export", "currency", "kind"}
# What a local source holds: billing exports (the default), utilisation metrics or storage inventories.
LOCAL_KINDS = ("billing", "metrics", "inventory")
REPORT_SUFFIX = {"html": "html", "xlsx": "xlsx", "csv": "csv", "json": "json", "md": "md"}


@dataclass(frozen=True)
class Window:
    """Billing months [since, until) and which of them is still open (provisional)."""

    since: datetime
    until: datetime
    open_month: datetime

    def months(self) -> list[datetime]:
        found, month = [], self.since
        while month < self.until:
            found.append(month)
            month = _next_month(month)
        return found

    @property
    def provisional(self) -> list[str]:
        return [f"{m:%Y-%m}" for m in self.months() if m >= self.open_month]

    def label(self) -> str:
        last = self.months()[-1]
        span = f"{self.since:%Y-%m}" if last == self.since else f"{self.since:%Y-%m} to {last:%Y-%m}"
        if self.provisional:
            span += f" ({', '.join(self.provisional)} open, provisional)"
        return span


def run_window(since: str | None, until: str | None, today: date) -> Window:
    """The run's window: the months given (YYYY-MM), else the last closed month and the open one."""
    open_month = datetime(today.year, today.month, 1, tzinfo=UTC)
    last_closed = datetime(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1, tzinfo=UTC)
    start = month_start(since, "--since") if since else last_closed
    end = month_start(until, "--until") if until else _next_month(open_month)
    if start >= end:
        hint = "" if since else " (the default --since is the last closed month: pass --since)"
        raise UsageError(f"--since {start:%Y-%m} must be before --until {end:%Y-%m} (until is exclusive){hint}")
    return Window(start, end, open_month)


@dataclass
class SourceResult:
    name: str
    provider: str
    loaded: int = 0
    replaced: int = 0
    unchanged: int = 0
    skipped_files: int = 0
    note: str | None = None


@dataclass
class Change:
    """One finding that appeared or went away since the previous run."""

    rule_id: str
    severity: str
    resource_id: str
    saving: Decimal | None
    currency: str | None
    summary: str
    fingerprint: str


@dataclass
class RunDiff:
    """This run against the previous complete run (from the `findings_changes` view)."""

    previous_run_id: str | None = None
    previous_window: tuple[datetime | None, datetime | None] = (None, None)
    new: list[Change] = field(default_factory=list)
    resolved: list[Change] = field(default_factory=list)
    persisting: int = 0
    no_longer_open: int = 0  # open before, now suppressed or not assessed
    savings: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)  # currency, previous, current


@dataclass
class RunOutcome:
    store: Path
    window: Window
    fail_on: str
    sources: list[SourceResult]
    analysis_note: str
    audit: AuditReport
    diff: RunDiff
    reports: list[Path] = field(default_factory=list)
    report_note: str | None = None

    @property
    def failing(self) -> int:
        """How many open findings are at or above the fail-on severity."""
        if self.fail_on == "none":
            return 0
        floor = SEVERITIES.index(self.fail_on)
        return sum(n for severity, n in self.audit.open_by_severity.items() if SEVERITIES.index(severity) >= floor)


def run_job(
    store: Path,
    project: ProjectConfig,
    reports: ReportSettings,
    *,
    window: Window,
    fail_on: str,
    wait: float,
    steps: Steps,
    today: date,
) -> RunOutcome:
    """Load or pull the configured sources, analyse, audit, compare, swap in, write reports."""
    from costaudit.analysis.config import load_analysis_config
    from costaudit.audit_cmd import _run_analysis
    from costaudit.rules.config import load_rules_config
    from costaudit.rules.registry import all_rules

    rules_config = load_rules_config(project.path)
    # Every configuration mistake before any work: the rules' parameters and the analysis
    # settings are checked here, not after the sources are loaded.
    rules_config.resolve(all_rules())
    if project.path is not None:
        load_analysis_config(project.path)
    for source in project.sources:
        _check_source(project, source)
    with building_store(store, wait=wait) as con:
        results = []
        if project.sources:
            with steps.step("sources", total=len(project.sources)) as advance:
                for source in project.sources:
                    advance(f"source {source.name} ({source.provider})", done=0)
                    results.append(_load_source(con, store, project, source, window))
                    advance()
        else:
            log.info("no [[sources]] configured: auditing the store as it is")
        with steps.step("analysis"):
            note = _run_analysis(con, project.path)
        log.info(note)
        with steps.step("audit"):
            audit = run_audit(con, rules_config, since=f"{window.since:%Y-%m}", until=f"{window.until:%Y-%m}",
                              today=today, keep=0)
        diff = compare_with_previous(con, audit.run_id)
        pause_point("run:before-swap")
    outcome = RunOutcome(store, window, fail_on, results, note, audit, diff)
    if reports.formats:
        with steps.step("reports", total=len(reports.formats)) as advance:
            outcome.reports, outcome.report_note = write_reports(store, reports, audit.run_id, today, advance)
    return outcome


def _check_source(project: ProjectConfig, source: SourceConfig) -> None:
    """Settings errors surface before any copying or loading."""
    if source.provider != "local":
        return
    unknown = sorted(set(source.settings) - LOCAL_KEYS)
    if unknown:
        raise UsageError(
            f"{project.path}: source {source.name!r}: unknown key(s) {', '.join(unknown)} for a local source "
            f"(expected {', '.join(sorted(LOCAL_KEYS))})"
        )
    paths = source.settings.get("path")
    if isinstance(paths, str):
        paths = [paths]
    if not paths or not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise UsageError(f"{project.path}: source {source.name!r}: path must be a file, folder or glob, or a list of them")
    kind = source.settings.get("kind", "billing")
    if kind not in LOCAL_KINDS:
        raise UsageError(
            f"{project.path}: source {source.name!r}: kind must be one of {', '.join(LOCAL_KINDS)}, not {kind!r}"
        )


def _load_source(con: duckdb.DuckDBPyConnection, store: Path, project: ProjectConfig, source: SourceConfig,
                 window: Window) -> SourceResult:
    result = SourceResult(source.name, source.provider)
    if source.provider == "local":
        from costaudit.loader import load_paths

        paths = source.settings["path"]
        paths = [paths] if isinstance(paths, str) else paths
        resolved = [p if os.path.isabs(p) else str(project.base / p) for p in paths]
        from costaudit.connectors.imports_inventory import import_inventory
        from costaudit.connectors.imports_metrics import import_metrics

        kind = source.settings.get("kind", "billing")
        if kind == "metrics":
            metrics = import_metrics(con, resolved)
            result.note = f"{metrics.samples} metric samples of {metrics.resources} resources imported"
            log.info("source %s (local metrics): %s", source.name, result.note)
            return result
        if kind == "inventory":
            inventory = import_inventory(con, resolved)
            objects = sum(count for count, _ in inventory.locations.values())
            result.note = f"{objects} inventoried objects in {len(inventory.locations)} location(s) imported"
            log.info("source %s (local inventory): %s", source.name, result.note)
            return result
        report: Any = load_paths(
            con, resolved, opts=ReadOptions(default_currency=source.settings.get("currency")),
            source_export=source.settings.get("export"),
        )
    else:
        report = pull(con, store, source, window)
    load = getattr(report, "load", report)  # a cloud PullReport carries the LoadReport of its load step
    for part in getattr(load, "partitions", None) or []:
        if part.action == "loaded":
            result.loaded += 1
        elif part.action == "replaced":
            result.replaced += 1
        else:
            result.unchanged += 1
    result.skipped_files = len(getattr(load, "skipped_files", None) or [])
    if load is not report:
        downloaded, reused = len(getattr(report, "downloaded", [])), len(getattr(report, "reused", []))
        result.note = "; ".join([f"{downloaded} file(s) downloaded, {reused} reused from the cache",
                                 *getattr(report, "notes", [])])
    log.info("source %s (%s): %d partition(s) loaded, %d replaced, %d unchanged", source.name, source.provider,
             result.loaded, result.replaced, result.unchanged)
    return result


def pull(con: duckdb.DuckDBPyConnection, store: Path, source: SourceConfig, window: Window) -> Any:
    """Pull a cloud source through `costaudit.connectors.cloud.pull_source`, when installed.

    Downloads go to the real store's cache folder (``<store>.d/downloads``), not beside the
    copy being built, so they survive the swap and a failed run."""
    try:
        from costaudit.connectors.cloud import pull_source  # type: ignore[attr-defined]
    except ImportError:
        raise UsageError(
            f"source {source.name!r}: pulling from {source.provider} needs the cloud connectors "
            "(costaudit.connectors.cloud.pull_source), which this installation does not have yet; "
            "download the exports and use a provider = \"local\" source meanwhile"
        ) from None
    accepted = inspect.signature(pull_source).parameters
    offered = {"since": f"{window.since:%Y-%m}", "until": f"{window.until:%Y-%m}",
               "workdir": Path(store).resolve().with_name(Path(store).name + ".d") / "downloads"}
    return pull_source(con, source, **{key: value for key, value in offered.items() if key in accepted})


def compare_with_previous(con: duckdb.DuckDBPyConnection, run_id: str) -> RunDiff:
    """New, resolved and persisting open findings and the saving per currency, against the
    previous complete run (the `findings_changes` view compares the last two)."""
    diff = RunDiff()
    previous = con.execute(
        """SELECT run_id, since, until FROM runs WHERE status = 'complete' AND run_id <> ?
           ORDER BY finished_at DESC, run_id DESC LIMIT 1""",
        [run_id],
    ).fetchall()
    [(current,)] = con.execute(
        "SELECT run_id FROM runs WHERE status = 'complete' ORDER BY finished_at DESC, run_id DESC LIMIT 1"
    ).fetchall()
    if current != run_id:
        raise CostauditError(f"run {run_id} is not the latest complete run ({current}); cannot compare")
    if previous:
        diff.previous_run_id, since, until = previous[0]
        diff.previous_window = (since, until)
    changes = """
        SELECT c.rule_id, f.severity, c.resource_id, f.estimated_monthly_saving, c.currency, f.summary, c.fingerprint
        FROM findings_changes c JOIN findings f ON f.run_id = {run} AND f.fingerprint = c.fingerprint
        WHERE {condition}
        ORDER BY c.currency, f.estimated_monthly_saving DESC NULLS LAST, c.rule_id, c.fingerprint"""
    diff.new = [Change(*row) for row in con.execute(changes.format(
        run="c.current_run_id",
        condition="c.current_status = 'open' AND c.previous_status IS DISTINCT FROM 'open'")).fetchall()]
    if diff.previous_run_id is None:
        return diff
    diff.resolved = [Change(*row) for row in con.execute(changes.format(
        run="c.previous_run_id", condition="c.previous_status = 'open' AND c.current_status IS NULL")).fetchall()]
    [(persisting, no_longer_open)] = con.execute(
        """SELECT count(*) FILTER (WHERE previous_status = 'open' AND current_status = 'open'),
                  count(*) FILTER (WHERE previous_status = 'open' AND current_status <> 'open')
           FROM findings_changes"""
    ).fetchall()
    diff.persisting, diff.no_longer_open = persisting, no_longer_open
    diff.savings = [
        (currency, Decimal(before), Decimal(now))
        for currency, before, now in con.execute(
            """SELECT currency,
                      coalesce(sum(previous_saving) FILTER (WHERE previous_status = 'open'), 0),
                      coalesce(sum(current_saving) FILTER (WHERE current_status = 'open'), 0)
               FROM findings_changes WHERE currency IS NOT NULL GROUP BY currency ORDER BY currency"""
        ).fetchall()
    ]
    return diff


def write_reports(store: Path, settings: ReportSettings, run_id: str, today: date,
                  advance=lambda label=None, done=1: None) -> tuple[list[Path], str | None]:
    """Write the configured report formats of run `run_id` from the store opened read-only.

    Returns the files written, or none and the reason when the reports module is absent. A
    failure here comes after the swap: the message says the run itself is stored."""
    try:
        from costaudit.reports import build_report_data, findings_limit, write_report  # type: ignore[attr-defined]
    except ImportError:
        note = ("reports not written: this installation has no report writer yet "
                f"(costaudit.reports); configured formats: {', '.join(settings.formats)}")
        log.warning(note)
        return [], note
    from costaudit.store import connect

    written: list[Path] = []
    try:
        con = connect(store, read_only=True)
        try:
            data = build_report_data(con, run_id=run_id, today=today,  # a stored run keeps its own window
                                     findings_limit=findings_limit(settings.formats))
        finally:
            con.close()
        try:
            settings.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CostauditError(f"{settings.out}: cannot create the reports folder ({exc.strerror})") from None
        for fmt in settings.formats:
            advance(f"report {fmt}", done=0)
            pause_point("run:mid-report")
            written.append(Path(write_report(data, fmt, settings.out / f"costaudit-{run_id}.{REPORT_SUFFIX[fmt]}")))
            advance()
            log.info("wrote %s", written[-1])
    except CostauditError as exc:
        raise CostauditError(f"run {run_id} is stored, but its reports were not all written: {exc}") from None
    return written, None


