"""Gather a report's data from the store: the audit run, its findings, spend and coverage.

Which run: ``run_id`` names a stored run, shown as it was. Without it the report shows the
latest complete run when it is still current, that is when no bill was loaded since it started,
it covers the billing months asked for (if any were) and it ran with the same rule configuration. Otherwise
the report first brings the analysis up to date and runs the audit, with the same functions
`costaudit audit` uses, so `costaudit report` works on a freshly loaded store.

Numbers come from the queries other commands print: spend, AI and network figures from
`costaudit summary`'s `summarise`, findings and savings from the stored run. Nothing here
re-derives what a rule computed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from costaudit import __version__
from costaudit.connectors.sql import quote_literal
from costaudit.errors import CostauditError, UsageError
from costaudit.store import COMMITMENT_PURCHASES

from .data import (
    AiMonth,
    Coverage,
    CurrencySpend,
    FindingRow,
    LoadCoverage,
    NetworkClass,
    PeriodCoverage,
    ReportData,
    Route,
    RuleRow,
    RunInfo,
    Skipped,
)

TOP_ROUTES = 10
_RUN_COLUMNS = ("run_id", "started_at", "finished_at", "status", "since", "until", "periods", "cost_basis",
                "config_digest", "config_file", "billing_rows", "rules_run", "rules_skipped", "rules_failed",
                "findings_open", "findings_suppressed", "findings_not_assessed")


def _month_text(value: str | date | datetime | None, option: str) -> str | None:
    """A billing month as YYYY-MM, the form `run_audit` takes."""
    if value is None:
        return None
    if isinstance(value, date):  # datetime is a date too
        if value.day != 1:
            raise UsageError(f"{option} {value.isoformat()}: expected the first day of a billing month")
        return f"{value:%Y-%m}"
    return str(value).strip()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _latest_run_id(con: duckdb.DuckDBPyConnection) -> str | None:
    rows = con.execute(
        "SELECT run_id FROM runs WHERE status = 'complete' ORDER BY finished_at DESC, run_id DESC LIMIT 1"
    ).fetchall()
    return rows[0][0] if rows else None


def _run_row(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    rows = _rows(con, f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id])
    return rows[0] if rows else None


def _as_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _stale_reason(con, run: dict, window, rules_digest: str) -> str | None:
    """Why the latest run no longer describes this store, the window asked for (None: any) and
    the configuration."""
    if window is not None and (_as_utc(run["since"]), _as_utc(run["until"])) != (window.since, window.until):
        return (f"the latest audit covers {_span(run['since'], run['until'])}, "
                f"the report asks for {_span(window.since, window.until)}")
    [(loaded,)] = con.execute("SELECT max(loaded_at) FROM loads").fetchall()
    if loaded is not None and loaded > run["started_at"]:
        return "bills were loaded after the latest audit run"
    if run["config_digest"] != rules_digest:
        return "the rule configuration changed since the latest audit run"
    return None


def _span(since: datetime | None, until: datetime | None) -> str:
    if since is None or until is None:
        return "no billing months"
    return f"{since:%Y-%m} to {until:%Y-%m} (exclusive)"


def _ensure_analysis(con, config_path: Path | None) -> str | None:
    from costaudit.analysis import ensure_analysis, load_analysis_config

    run = ensure_analysis(con, load_analysis_config(config_path))
    if run is None:
        return None
    return f"analysis refreshed: {run.keys} charge keys ({run.ai_keys} AI, {run.network_keys} network)"


def _writable(action):
    """Run `action`; a read-only store becomes a message saying what to do instead."""
    try:
        return action()
    except duckdb.Error as exc:
        if "read-only" in str(exc).lower() or "read only" in str(exc).lower():
            raise CostauditError(
                "the report needs to bring the analysis or the audit up to date, which writes to the store; "
                "open it writable or run `costaudit audit` first"
            ) from None
        raise


def _resolve_run(con, *, since, until, run_id, config_path, rules, today) -> tuple[str, bool, list[str]]:
    """The run to report, whether this call ran it, and notes for the reader."""
    from costaudit.rules.config import load_rules_config
    from costaudit.rules.runner import resolve_window, run_audit

    notes: list[str] = []
    [(billing_rows,)] = con.execute("SELECT count(*) FROM current_line_items").fetchall()
    if not billing_rows and run_id is None and _latest_run_id(con) is None:
        raise CostauditError("the store has no billing data yet; run `costaudit load PATH...` first")
    views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    # A stored run is shown with the analysis as it stands (a read-only store is fine); the
    # analysis only runs when its views are missing, or for a report on the current state.
    if billing_rows and (run_id is None or not {"ai_spend", "network_transfer"} <= views):
        note = _writable(lambda: _ensure_analysis(con, config_path))
        if note:
            notes.append(note)
    if run_id is not None:
        row = _run_row(con, run_id)
        if row is None:
            raise CostauditError(f"no audit run {run_id!r} in the store (the runs table lists them)")
        if row["status"] != "complete":
            raise CostauditError(f"audit run {run_id!r} did not complete (status {row['status']})")
        if since is not None or until is not None:
            raise UsageError("give either a run id or --since/--until: a stored run keeps its own window")
        return run_id, False, notes
    config = load_rules_config(config_path)
    # Without --since/--until any window of the latest run will do; with them it must match.
    window = resolve_window(con, since, until) if since is not None or until is not None else None
    latest = _latest_run_id(con)
    reason = "no audit run in the store yet" if latest is None else _stale_reason(
        con, _run_row(con, latest), window, config.digest())
    if reason is None:
        return latest, False, notes
    report = _writable(lambda: run_audit(con, config, since=since, until=until, rules=rules, today=today, keep=0))
    notes.append(f"audit run {report.run_id} made for this report: {reason}")
    return report.run_id, True, notes


def _run_info(row: dict, latest: str | None) -> RunInfo:
    return RunInfo(
        run_id=row["run_id"], started_at=row["started_at"], finished_at=row["finished_at"],
        since=_as_utc(row["since"]), until=_as_utc(row["until"]), periods=json.loads(row["periods"] or "[]"),
        cost_basis=row["cost_basis"], config_digest=row["config_digest"], config_file=row["config_file"],
        billing_rows=row["billing_rows"] or 0, rules_run=row["rules_run"] or 0,
        rules_skipped=row["rules_skipped"] or 0, rules_failed=row["rules_failed"] or 0,
        findings_open=row["findings_open"] or 0, findings_suppressed=row["findings_suppressed"] or 0,
        findings_not_assessed=row["findings_not_assessed"] or 0, is_latest=row["run_id"] == latest,
    )


def _currencies(con, run: RunInfo) -> list[CurrencySpend]:
    from costaudit.analysis.summary import summarise

    zero = Decimal(0)
    spend: dict[str, CurrencySpend] = {}
    relations = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    if {"analysis_line_items", "ai_spend", "network_transfer"} <= relations:
        for item in summarise(con, since=run.since, until=run.until, top=TOP_ROUTES):
            spend[item.currency] = CurrencySpend(
                item.currency, run.cost_basis, item.billed, item.effective, item.ai_billed, item.ai_effective,
                item.network_billed, item.network_effective, item.network_gb,
                [AiMonth(*row) for row in item.ai_rows],
                [NetworkClass(*row) for row in item.network_classes],
                [Route(*row) for row in item.top_routes],
            )
    # Savings per currency as `costaudit audit` totals them: open findings only.
    for currency, saving, count in con.execute(
        """SELECT currency, coalesce(sum(estimated_monthly_saving), 0), count(*) FROM findings
           WHERE run_id = ? AND status = 'open' AND currency IS NOT NULL GROUP BY currency""",
        [run.run_id],
    ).fetchall():
        item = spend.setdefault(currency, CurrencySpend(currency, run.cost_basis, *([zero] * 7)))
        item.estimated_saving, item.open_findings = saving, count
    return [spend[c] for c in sorted(spend)]


def _rule_metadata(rules) -> tuple[dict, str | None]:
    from costaudit.rules.registry import all_rules

    try:
        loaded = all_rules() if rules is None else rules
    except CostauditError as exc:  # a broken plugin must not stop the report
        return {}, f"rule descriptions unavailable: {exc}"
    return {r.id: r.rule for r in loaded}, None


# A run with more findings than this is not read into memory for a full report: its findings
# are copied to a Parquet file and streamed from there (`StoredFindings`).
STREAM_ABOVE = 20_000
_STREAM_BATCH = 5_000
_FINDINGS_ORDER = "currency NULLS LAST, estimated_monthly_saving DESC NULLS LAST, rule_id, fingerprint"


def _finding_row(row: dict, meta: dict) -> FindingRow:
    rule = meta.get(row["rule_id"])
    evidence = json.loads(row.pop("evidence") or "{}")
    return FindingRow(**row, evidence=evidence if isinstance(evidence, dict) else {"value": evidence},
                      remediation=rule.how_to_fix if rule else None)


def _finding_columns() -> list[str]:
    # Named columns: the findings table may grow columns this version does not know.
    return [f.name for f in fields(FindingRow) if f.name != "remediation"]


class StoredFindings(Sequence[FindingRow]):
    """Every finding of a run, in report order, without holding them: DuckDB copies them once to
    a Parquet file in a private temporary folder, and each iteration reads it back in batches of
    a few thousand `FindingRow`s. The folder goes when the object does.

    A CSV, JSON or XLSX report of a million findings then needs the memory of one batch, not of
    a million rows (at 10M billing rows, ~190k findings, the lists cost 1.5-2.4 GB)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: str, meta: dict) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="costaudit-findings-")
        self._path = Path(self._folder.name) / "findings.parquet"
        self._meta = meta
        con.execute(
            f"""COPY (SELECT {', '.join(_finding_columns())} FROM findings WHERE run_id = {quote_literal(run_id)}
                      ORDER BY {_FINDINGS_ORDER})
                TO {quote_literal(str(self._path))} (FORMAT parquet)"""
        )
        self._count = pq.ParquetFile(self._path).metadata.num_rows

    def __iter__(self) -> Iterator[FindingRow]:
        return self.where()

    def where(self, family: str | None = None, status: str | None = None) -> Iterator[FindingRow]:
        """The findings of one family and/or status, in order; the others are skipped in Arrow,
        before any Python object is made for them."""
        for batch in pq.ParquetFile(self._path).iter_batches(batch_size=_STREAM_BATCH):
            if family is not None:
                batch = batch.filter(pc.equal(batch.column("family"), family))
            if status is not None:
                batch = batch.filter(pc.equal(batch.column("status"), status))
            for row in batch.to_pylist():
                yield _finding_row(row, self._meta)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):  # type: ignore[override]  # a Sequence, read sequentially
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self._count
        for position, item in enumerate(self):
            if position == index:
                return item
        raise IndexError(index)


def _findings(con, run_id: str, meta: dict, limit: int | None = None) -> Sequence[FindingRow]:
    """The run's findings by currency and saving; with `limit`, only the largest `limit` of each
    (family, status, currency), the ones an HTML or Markdown report shows in full. All of a run
    with more than `STREAM_ABOVE` findings come as a `StoredFindings`."""
    top = ""
    if limit is not None:
        top = f"""QUALIFY row_number() OVER (PARTITION BY family, status, currency
                     ORDER BY estimated_monthly_saving DESC NULLS LAST, rule_id, fingerprint) <= {int(limit)}"""
    else:
        [(count,)] = con.execute("SELECT count(*) FROM findings WHERE run_id = ?", [run_id]).fetchall()
        if count > STREAM_ABOVE:
            return StoredFindings(con, run_id, meta)
    rows = _rows(
        con,
        f"""SELECT {', '.join(_finding_columns())} FROM findings WHERE run_id = ? {top}
            ORDER BY {_FINDINGS_ORDER}""",
        [run_id],
    )
    return [_finding_row(row, meta) for row in rows]


def _finding_counts(con, run_id: str) -> dict[tuple[str, str, str | None], tuple[int, Decimal | None]]:
    """Every finding of the run counted per (family, status, currency), with the summed saving."""
    return {
        (family, status, currency): (n, saving)
        for family, status, currency, n, saving in con.execute(
            """SELECT family, status, currency, count(*), sum(estimated_monthly_saving) FROM findings
               WHERE run_id = ? GROUP BY ALL ORDER BY ALL""", [run_id]).fetchall()
    }


def _rules(con, run_id: str, meta: dict) -> list[RuleRow]:
    # A rule no longer installed is described by its stored findings (any one of them).
    examples = {rule_id: (title, family, severity) for rule_id, title, family, severity in con.execute(
        """SELECT rule_id, any_value(title), any_value(family), any_value(severity) FROM findings
           WHERE run_id = ? GROUP BY rule_id""", [run_id]).fetchall()}
    result = []
    for row in _rows(con, "SELECT * FROM rule_results WHERE run_id = ? ORDER BY rule_id", [run_id]):
        rule = meta.get(row["rule_id"])
        example = examples.get(row["rule_id"])
        result.append(RuleRow(
            rule_id=row["rule_id"], status=row["status"], reason=row["reason"], findings=row["findings"],
            parameters=json.loads(row["parameters"] or "{}"), origin=row["origin"],
            title=rule.title if rule else (example[0] if example else row["rule_id"]),
            family=rule.family if rule else (example[1] if example else "other"),
            severity=rule.severity if rule else (example[2] if example else ""),
            why=rule.why if rule else None, how_to_fix=rule.how_to_fix if rule else None,
            references=tuple(rule.references) if rule else (),
        ))
    return result


def _coverage(con, run: RunInfo, rules: list[RuleRow], today: date) -> Coverage:
    where, params = "TRUE", {}
    if run.since is not None and run.until is not None:
        where, params = "BillingPeriodStart >= $since AND BillingPeriodStart < $until", {
            "since": run.since, "until": run.until}
    this_month = f"{today:%Y-%m}"
    periods = [
        PeriodCoverage(period, rows, period >= this_month)
        for period, rows in con.execute(
            f"SELECT strftime(BillingPeriodStart, '%Y-%m'), count(*) FROM current_line_items WHERE {where} "
            "GROUP BY 1 ORDER BY 1", params).fetchall()
    ]
    seen = {p.period for p in periods}
    missing = [m for m in run.months() if m not in seen]
    load_where = where.replace("BillingPeriodStart", "l.billing_period_start")
    loads = []
    for row in _rows(
        con,
        f"""SELECT l.provider, l.billing_account_id, strftime(l.billing_period_start, '%Y-%m') AS period,
                   l.source_export, l.source_format, l.format_version, l.row_count, l.basis, l.status,
                   t.currency, t.source_total, t.stored_total,
                   l.load_id IN (SELECT load_id FROM current_loads) AS is_current,
                   (SELECT min(c.row_scope) FROM current_loads c WHERE c.load_id = l.load_id) AS row_scope,
                   (SELECT string_agg(DISTINCT c.source_export, ', ' ORDER BY c.source_export) FROM current_loads c
                    WHERE c.provider = l.provider AND c.billing_account_id = l.billing_account_id
                      AND c.billing_period_start = l.billing_period_start AND c.load_id <> l.load_id) AS read_export
            FROM loads l LEFT JOIN load_totals t USING (load_id)
            WHERE {load_where}
            ORDER BY l.provider, l.billing_account_id, period, l.source_export, t.currency""",
        params,
    ):
        if row["is_current"] and row["row_scope"] == COMMITMENT_PURCHASES:
            state, note = "current", (f"only its reservation and savings-plan purchases and refunds are read, "
                                      f"beside the amortized export {row['read_export']}")
        elif row["is_current"]:
            state, note = "current", None
        elif row["status"] == "active":
            state, note = "shadowed", f"not read: the same bill is read from export {row['read_export']}"
        else:
            state, note = row["status"], "not read: replaced by a newer delivery of the same export"
        loads.append(LoadCoverage(
            row["provider"], row["billing_account_id"], row["period"], row["source_export"], row["source_format"],
            row["format_version"], row["row_count"], row["currency"], row["source_total"], row["stored_total"],
            row["basis"], state, note))
    skipped = [Skipped("rule", r.rule_id, f"{r.status}: {r.reason or 'no reason recorded'}")
               for r in rules if r.status != "ok"]
    # Per rule: how many resources were not assessed, and the most common reason (ties: the
    # reason first met in the findings' order, as the report lists them).
    for rule_id, count, common, times in con.execute(
        """WITH reasons AS (
             SELECT rule_id, summary, count(*) AS times,
                    min(seen) AS first_seen
             FROM (SELECT rule_id, summary, row_number() OVER (
                     ORDER BY currency NULLS LAST, estimated_monthly_saving DESC NULLS LAST, rule_id, fingerprint) AS seen
                   FROM findings WHERE run_id = ? AND status = 'not_assessed')
             GROUP BY ALL)
           SELECT rule_id, sum(times) OVER (PARTITION BY rule_id)::BIGINT, summary, times FROM reasons
           QUALIFY row_number() OVER (PARTITION BY rule_id ORDER BY times DESC, first_seen) = 1
           ORDER BY rule_id""", [run.run_id]).fetchall():
        skipped.append(Skipped("findings", rule_id,
                               f"{count} resource(s) not assessed; most common reason ({times}x): {common}"))
    skipped += [Skipped("period", month, "no billing data loaded for this month") for month in missing]
    skipped += [Skipped("load", f"{x.provider} {x.billing_account_id} {x.period} {x.source_export}", x.note or "")
                for x in loads if x.state == "shadowed"]
    return Coverage(periods, missing, loads, skipped)


def _changes(con, run: RunInfo) -> dict[str, int] | None:
    [(complete,)] = con.execute("SELECT count(*) FROM runs WHERE status = 'complete'").fetchall()
    if not run.is_latest or complete < 2:
        return None
    return {change: n for change, n in con.execute(
        "SELECT change, count(*) FROM findings_changes GROUP BY change ORDER BY change").fetchall()}


def build_report_data(
    con: duckdb.DuckDBPyConnection,
    *,
    since: str | date | datetime | None = None,
    until: str | date | datetime | None = None,
    run_id: str | None = None,
    config_path: Path | None = None,
    rules: list | None = None,
    today: date | None = None,
    findings_limit: int | None = None,
) -> ReportData:
    """The data of a report on one audit run.

    `since` (inclusive) and `until` (exclusive) are billing months (``YYYY-MM`` or a month's
    first day); `run_id` names a stored run instead. Without `run_id`, the analysis and the audit
    run first when the latest run is missing or stale (see the module doc), which needs a
    writable connection. `config_path` is the costaudit.toml for that audit (default
    ./costaudit.toml when present); `rules` replaces the registered rules (plugins, tests).
    `findings_limit` keeps only the largest findings of each family, status and currency (every
    finding is still counted): enough for the HTML and Markdown reports, not for CSV/XLSX/JSON."""
    today = today or datetime.now(UTC).date()
    chosen, ran, notes = _resolve_run(
        con, since=_month_text(since, "--since"), until=_month_text(until, "--until"), run_id=run_id,
        config_path=config_path, rules=rules, today=today)
    run = _run_info(_run_row(con, chosen), _latest_run_id(con))
    if not ran and run_id is None:
        notes.append(f"findings of the latest audit run {run.run_id}, still current for this store")
    if run_id is not None:
        [(loaded,)] = con.execute("SELECT max(loaded_at) FROM loads").fetchall()
        if loaded is not None and loaded > run.started_at:
            notes.append("bills were loaded after this audit run: its findings may not reflect them")
    meta, meta_note = _rule_metadata(rules)
    if meta_note:
        notes.append(meta_note)
    findings = _findings(con, run.run_id, meta, findings_limit)
    rule_rows = _rules(con, run.run_id, meta)
    coverage = _coverage(con, run, rule_rows, today)
    provisional = [p.period for p in coverage.periods if p.provisional]
    if provisional:
        notes.append(f"open billing month(s) {', '.join(provisional)}: provisional, the bill can still change")
    return ReportData(
        generated_at=datetime.now(UTC), generator=f"costaudit {__version__}", run=run, audit_ran=ran,
        currencies=_currencies(con, run), findings=findings, rules=rule_rows, coverage=coverage,
        changes=_changes(con, run), notes=notes, finding_counts=_finding_counts(con, run.run_id),
        findings_complete=findings_limit is None,
    )
