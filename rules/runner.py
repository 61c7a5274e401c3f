"""Run every rule over a billing window and store the findings with the run.

Order of work: resolve the window; load the shipped catalogue; for each rule, check its data
needs (missing data -> skipped, with the reason; asked once per table for all rules, see
`needs`), evaluate it (reads only; TEMP tables the rules share live in the run's `RunScratch`
and are dropped when the rules are done), validate what it returned; apply suppressions; then
write the run, the per-rule results and the findings in one transaction. A rule that raises is
recorded as ``error`` and the others still run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from costaudit.errors import UsageError

from .config import RulesConfig, Suppression
from .contract import RULE_STATUSES, Finding, LoadedRule, ParamValue, RuleContext, RunScratch, Window
from .instance_catalogue import refresh_catalogue
from .needs import BILLING_TABLE, NeedsProfile, check_needs
from .registry import all_rules
from .schema import ensure_rules_schema

EMPTY_WINDOW = Window(datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))


@dataclass
class RuleOutcome:
    """What happened to one rule in a run."""

    rule: LoadedRule
    status: str  # 'ok', 'skipped', 'disabled', 'error'
    reason: str | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AppliedFinding:
    """A finding as stored: its status after suppressions, and the suppression that applied."""

    finding: Finding
    status: str
    suppression_reason: str | None = None
    suppression_expires: date | None = None
    suppression_note: str | None = None

    @property
    def fingerprint(self) -> str:
        return self.finding.fingerprint


@dataclass
class AuditReport:
    run_id: str
    window: Window | None
    periods: list[str]
    billing_rows: int
    outcomes: list[RuleOutcome]
    findings: list[AppliedFinding]
    expired: list[Suppression]
    unused: list[Suppression]

    def count(self, status: str) -> int:
        return sum(1 for f in self.findings if f.status == status)

    def rules_with(self, status: str) -> list[RuleOutcome]:
        return [o for o in self.outcomes if o.status == status]


def month_start(text: str, option: str) -> datetime:
    """The first instant (UTC) of a billing month given as YYYY-MM (or YYYY-MM-01)."""
    value = text.strip()
    for fmt in ("%Y-%m", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if parsed.day != 1:
            break
        return parsed.replace(tzinfo=UTC)
    raise UsageError(f"{option} {text!r}: expected a billing month such as 2024-01")


def _next_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def resolve_window(con: duckdb.DuckDBPyConnection, since: str | None, until: str | None) -> Window | None:
    """The audit window: the months given, else every billing period in the store."""
    [(first, last)] = con.execute(
        f"SELECT min(BillingPeriodStart), max(BillingPeriodStart) FROM {BILLING_TABLE}"
    ).fetchall()
    start = month_start(since, "--since") if since else (first.astimezone(UTC) if first else None)
    end = month_start(until, "--until") if until else (_next_month(last.astimezone(UTC)) if last else None)
    if start is None or end is None:
        return None
    if start >= end:
        raise UsageError(f"--since {start:%Y-%m} must be before --until {end:%Y-%m} (until is exclusive)")
    return Window(start, end)


def _check_findings(rule: LoadedRule, findings: Any) -> list[Finding]:
    if not isinstance(findings, list) or not all(isinstance(f, Finding) for f in findings):
        raise TypeError("evaluate must return a list of Finding")
    seen: set[str] = set()
    for item in findings:
        problems = []
        if item.rule_id != rule.id:
            problems.append(f"rule_id {item.rule_id!r} is not {rule.id!r}")
        if item.status not in RULE_STATUSES:
            problems.append(f"status {item.status!r} is not one of {RULE_STATUSES}")
        if not item.provider or not item.resource_id:
            problems.append("provider and resource_id are required")
        if not item.summary or not item.estimate_method:
            problems.append("summary and estimate_method are required")
        if (item.monthly_cost_in_scope is not None or item.estimated_monthly_saving is not None) and not item.currency:
            problems.append("an amount without a currency")
        if item.fingerprint in seen:
            problems.append(f"two findings for one resource ({item.resource_id}); a rule reports a resource once")
        seen.add(item.fingerprint)
        if problems:
            raise ValueError(f"invalid finding for {item.resource_id!r}: {'; '.join(problems)}")
    return findings


def _suppress(findings: list[Finding], suppressions: tuple[Suppression, ...], today: date):
    applied: list[AppliedFinding] = []
    used: set[int] = set()
    expired_hit: dict[int, Suppression] = {}
    for item in findings:
        live = [s for s in suppressions if s.matches(item) and not s.expired(today)]
        stale = [s for s in suppressions if s.matches(item) and s.expired(today)]
        if live:
            chosen = live[0]
            used.add(chosen.position)
            applied.append(AppliedFinding(item, "suppressed", chosen.reason, chosen.expires))
            continue
        note = None
        if stale:
            chosen = stale[0]
            expired_hit[chosen.position] = chosen
            note = f"suppression expired on {chosen.expires}: {chosen.reason}"
        applied.append(AppliedFinding(item, item.status, suppression_note=note))
    unused = [s for s in suppressions if s.position not in used and s.position not in expired_hit]
    return applied, list(expired_hit.values()), unused


def _label_open_month(item: Finding, today: date) -> Finding:
    """Findings on the current (open) month are provisional: the bill can still change."""
    period = item.billing_period
    if period is None or (period.year, period.month) != (today.year, today.month):
        return item
    return replace(item, evidence={**item.evidence, "billing_period_status": "open month, provisional"})


def run_audit(
    con: duckdb.DuckDBPyConnection,
    config: RulesConfig | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    rules: list[LoadedRule] | None = None,
    only: Collection[str] = (),
    today: date | None = None,
) -> AuditReport:
    """Run the rules over the window and store a run; returns what happened, rule by rule.

    `rules` defaults to every registered rule; `only` narrows the run to some rule ids (the
    configuration is still checked against all of them)."""
    config = config or RulesConfig()
    today = today or datetime.now(UTC).date()
    rules = all_rules() if rules is None else rules
    parameters = config.resolve(rules)
    unknown = sorted(set(only) - {r.id for r in rules})
    if unknown:
        raise UsageError(f"unknown rule id(s) {', '.join(unknown)} (known: {', '.join(r.id for r in rules)})")
    if only:
        rules = [r for r in rules if r.id in set(only)]
    ensure_rules_schema(con)
    refresh_catalogue(con)
    window = resolve_window(con, since, until)
    periods: list[str] = []
    billing_rows = 0
    if window is not None:
        rows = con.execute(
            f"""SELECT strftime(BillingPeriodStart, '%Y-%m'), count(*) FROM {BILLING_TABLE}
                WHERE BillingPeriodStart >= $since AND BillingPeriodStart < $until GROUP BY 1 ORDER BY 1""",
            {"since": window.since, "until": window.until},
        ).fetchall()
        periods = [p for p, _ in rows]
        billing_rows = sum(n for _, n in rows)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    outcomes: list[RuleOutcome] = []
    enabled = [r for r in rules if r.id not in config.disabled]
    profile = NeedsProfile(con, [need for r in enabled for need in r.rule.needs], window)
    scratch = RunScratch()  # TEMP tables the rules share in this run (e.g. the compute rules' instances)
    try:
        for loaded in rules:
            params = parameters[loaded.id]
            if loaded.id in config.disabled:
                outcomes.append(RuleOutcome(loaded, "disabled", "disabled in the configuration", params))
                continue
            reason = check_needs(con, loaded.rule.needs, window, profile)
            if reason is not None:
                outcomes.append(RuleOutcome(loaded, "skipped", reason, params))
                continue
            # A rule that does not need billing still runs on an empty store, over an empty window.
            ctx = RuleContext(
                con, loaded.rule, params, window or EMPTY_WINDOW, run_id, config.cost_basis, today, scratch
            )
            try:
                found = _check_findings(loaded, loaded.evaluate(ctx))
            except Exception as exc:  # one broken rule must not hide the others' findings
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcomes.append(RuleOutcome(loaded, "error", f"{type(exc).__name__}: {message}", params))
                continue
            found = [_label_open_month(f, today) for f in found]
            outcomes.append(RuleOutcome(loaded, "ok", None, params, found))
    finally:
        scratch.drop(con)
    all_found = [f for o in outcomes for f in o.findings]
    applied, expired, unused = _suppress(all_found, config.suppressions, today)
    report = AuditReport(run_id, window, periods, billing_rows, outcomes, applied, expired, unused)
    _store(con, report, config, started)
    return report


FINDING_FIELDS = (
    "run_id", "fingerprint", "rule_id", "family", "severity", "title", "status", "provider", "billing_account_id",
    "sub_account_id", "region", "resource_id", "billing_period", "summary", "evidence", "monthly_cost_in_scope",
    "estimated_monthly_saving", "currency", "estimate_method", "cost_basis", "suppression_reason",
    "suppression_expires", "suppression_note",
)
_MONEY_ARROW = pa.decimal128(38, 12)
_MONEY_SCALE = Decimal("1e-12")  # the store keeps 12 decimal places


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_MONEY_SCALE)


def _findings_table(run_id: str, applied_findings: list[AppliedFinding], by_id: dict) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in FINDING_FIELDS}
    for applied in applied_findings:
        f = applied.finding
        rule = by_id[f.rule_id]
        values = (
            run_id, f.fingerprint, f.rule_id, rule.family, rule.severity, rule.title, applied.status,
            f.provider, f.billing_account_id, f.sub_account_id, f.region, f.resource_id, f.billing_period,
            f.summary, json.dumps(f.evidence, default=str), _money(f.monthly_cost_in_scope),
            _money(f.estimated_monthly_saving), f.currency, f.estimate_method, f.cost_basis,
            applied.suppression_reason, applied.suppression_expires, applied.suppression_note,
        )
        for name, value in zip(FINDING_FIELDS, values, strict=True):
            columns[name].append(value)
    types = {
        "billing_period": pa.timestamp("us", tz="UTC"), "suppression_expires": pa.date32(),
        "monthly_cost_in_scope": _MONEY_ARROW, "estimated_monthly_saving": _MONEY_ARROW,
    }
    return pa.table({name: pa.array(values, types.get(name, pa.string())) for name, values in columns.items()})


# Findings are written in Arrow batches of this many: not a statement per finding (a large estate
# has hundreds of thousands), and not one batch of all (a second copy of every finding in memory).
STORE_BATCH = 20_000


def _store(con: duckdb.DuckDBPyConnection, report: AuditReport, config: RulesConfig, started: datetime) -> None:
    by_id = {o.rule.id: o.rule.rule for o in report.outcomes}
    window = report.window
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            """INSERT INTO runs VALUES ($run_id, $started, $finished, 'complete', $since, $until, $periods,
                   $cost_basis, $digest, $config_file, $rows, $run, $skipped, $failed, $open, $suppressed, $not_assessed)""",
            {
                "run_id": report.run_id, "started": started, "finished": datetime.now(UTC),
                "since": window.since if window else None, "until": window.until if window else None,
                "periods": json.dumps(report.periods), "cost_basis": config.cost_basis, "digest": config.digest(),
                "config_file": str(config.source) if config.source else None, "rows": report.billing_rows,
                "run": len(report.rules_with("ok")), "skipped": len(report.rules_with("skipped")),
                "failed": len(report.rules_with("error")), "open": report.count("open"),
                "suppressed": report.count("suppressed"), "not_assessed": report.count("not_assessed"),
            },
        )
        for outcome in report.outcomes:
            con.execute(
                "INSERT INTO rule_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                [report.run_id, outcome.rule.id, outcome.status, outcome.reason, len(outcome.findings),
                 json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in outcome.params.items()}),
                 outcome.rule.origin],
            )
        for start in range(0, len(report.findings), STORE_BATCH):
            batch = _findings_table(report.run_id, report.findings[start:start + STORE_BATCH], by_id)
            con.register("findings_batch", batch)
            try:
                con.execute(f"INSERT INTO findings SELECT {', '.join(FINDING_FIELDS)} FROM findings_batch")
            finally:
                con.unregister("findings_batch")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
