"""Run every rule over a billing window and store the findings with the run.

Order of work: resolve the window; load the shipped catalogue; for each rule, check its data
needs (missing data -> skipped, with the reason; asked once per table for all rules, see
`needs`), evaluate it (reads only; TEMP tables the rules share live in the run's `RunScratch`
and are dropped when the rules are done), stage and validate what it returned; apply
suppressions; then write the run, the per-rule results and the findings in one transaction. A
rule that raises, or returns a finding that breaks the contract, is recorded as ``error`` (none
of its findings are kept) and the others still run.

Findings stay in DuckDB from the rule's SELECT to the store: a rule's `FindingQuery` becomes
rows of a TEMP stage with one INSERT ... SELECT, where the fingerprint, the contract checks, the
open-month label and the suppressions are computed in SQL; the run's counts and totals are
summed there too. Only the findings a caller reads back (`keep`) become Python objects, so an
audit of a million findings needs no more memory than one of ten.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from costaudit.errors import UsageError

from .config import RulesConfig, Suppression
from .contract import (
    FINGERPRINT_SQL,
    RULE_STATUSES,
    Finding,
    FindingQuery,
    LoadedRule,
    ParamValue,
    RuleContext,
    RuleContractError,
    RunScratch,
    Window,
)
from .instance_catalogue import refresh_catalogue
from .needs import BILLING_TABLE, NeedsProfile, check_needs
from .registry import all_rules
from .schema import drop_primary_key, ensure_rules_schema

EMPTY_WINDOW = Window(datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))


@dataclass
class RuleOutcome:
    """What happened to one rule in a run."""

    rule: LoadedRule
    status: str  # 'ok', 'skipped', 'disabled', 'error'
    reason: str | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    found: int = 0  # findings the rule made (all stored with the run)


@dataclass(frozen=True, slots=True)
class AppliedFinding:
    """A finding as stored: its status after suppressions, and the suppression that applied."""

    finding: Finding
    status: str
    suppression_reason: str | None = None
    suppression_expires: date | None = None
    suppression_note: str | None = None
    stored_fingerprint: str | None = None  # as the store computed it (`contract.FINGERPRINT_SQL`)

    @property
    def fingerprint(self) -> str:
        return self.stored_fingerprint or self.finding.fingerprint


@dataclass
class AuditReport:
    """A stored run, summed up in SQL. Every finding is in the store (``findings``, by
    ``run_id``); `findings` here holds what was read back: all of them, or the `keep` largest
    of each status and currency (`run_audit`), in the order `costaudit audit` prints them."""

    run_id: str
    window: Window | None
    periods: list[str]
    billing_rows: int
    outcomes: list[RuleOutcome]
    findings: list[AppliedFinding]
    expired: list[Suppression]
    unused: list[Suppression]
    counts: dict[str, int] = field(default_factory=dict)  # findings per status
    open_by_severity: dict[str, int] = field(default_factory=dict)
    # per currency: (sum of the estimated saving of open findings, how many have one)
    open_savings: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    # findings not in `findings`, per status and currency ("no currency" when it has none)
    not_read: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

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


# Every finding of a run waits in this TEMP table (one INSERT ... SELECT per rule) until the
# run is stored: no Python object per finding, so the memory of a run does not grow with its
# findings (a large estate has about a million).
STAGE = "costaudit_run_findings"
_RULE_ROWS = "costaudit_rule_findings"
_MONEY = "DECIMAL(38,12)"  # what the store keeps (rules.schema.MONEY)
_STAGE_COLUMNS = (
    ("rule_id", "VARCHAR"), ("fingerprint", "VARCHAR"), ("provider", "VARCHAR"), ("billing_account_id", "VARCHAR"),
    ("sub_account_id", "VARCHAR"), ("region", "VARCHAR"), ("resource_id", "VARCHAR"),
    ("billing_period", "TIMESTAMPTZ"), ("summary", "VARCHAR"), ("evidence", "VARCHAR"),
    ("monthly_cost_in_scope", _MONEY), ("estimated_monthly_saving", _MONEY), ("currency", "VARCHAR"),
    ("estimate_method", "VARCHAR"), ("cost_basis", "VARCHAR"), ("status", "VARCHAR"),
)
_STAGE_NAMES = ", ".join(name for name, _ in _STAGE_COLUMNS)
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _rule_rows_from_query(con: duckdb.DuckDBPyConnection, query: FindingQuery, cost_basis: str) -> None:
    """The rule's SELECT into the per-rule TEMP table, shaped as the stage (DuckDB does it all)."""
    rel = query.relation()
    types = dict(zip(rel.columns, (str(t).upper() for t in rel.types), strict=True))
    for money in ("monthly_cost_in_scope", "estimated_monthly_saving"):
        if types[money] in _FLOAT_TYPES:
            raise RuleContractError(
                f"{money} is {types[money]}: money must be DECIMAL in SQL, not DOUBLE (cast before returning it)"
            )
    status = "coalesce(status, 'open')" if "status" in rel.columns else "'open'"
    rule_id = _sql_text(query.ctx.rule.id)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_RULE_ROWS} AS
        SELECT {rule_id} AS rule_id, CAST(provider AS VARCHAR) AS provider,
               CAST(billing_account_id AS VARCHAR) AS billing_account_id,
               CAST(sub_account_id AS VARCHAR) AS sub_account_id, CAST(region AS VARCHAR) AS region,
               CAST(resource_id AS VARCHAR) AS resource_id, CAST(billing_period AS TIMESTAMPTZ) AS billing_period,
               CAST(summary AS VARCHAR) AS summary,
               coalesce(CAST(CAST(evidence AS JSON) AS VARCHAR), '{{}}') AS evidence,
               CAST(monthly_cost_in_scope AS {_MONEY}) AS monthly_cost_in_scope,
               CAST(estimated_monthly_saving AS {_MONEY}) AS estimated_monthly_saving,
               CAST(currency AS VARCHAR) AS currency, CAST(estimate_method AS VARCHAR) AS estimate_method,
               {_sql_text(cost_basis)} AS cost_basis, CAST({status} AS VARCHAR) AS status
        FROM ({query.sql}) q""",
        query.params,
    )


def _rule_rows_from_list(con: duckdb.DuckDBPyConnection, findings: list[Finding]) -> None:
    """Findings built in Python (a plugin rule) into the per-rule TEMP table, in Arrow batches."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_RULE_ROWS} ("
        + ", ".join(f"{name} {sql_type}" for name, sql_type in _STAGE_COLUMNS if name != "fingerprint")
        + ")"
    )
    fields = [name for name, _ in _STAGE_COLUMNS if name != "fingerprint"]
    types = {"billing_period": pa.timestamp("us", tz="UTC"), "monthly_cost_in_scope": _MONEY_ARROW,
             "estimated_monthly_saving": _MONEY_ARROW}
    for start in range(0, len(findings), STORE_BATCH):
        columns: dict[str, list] = {name: [] for name in fields}
        for f in findings[start:start + STORE_BATCH]:
            values = (
                f.rule_id, f.provider, f.billing_account_id, f.sub_account_id, f.region, f.resource_id,
                f.billing_period, f.summary, json.dumps(f.evidence, default=str), _money(f.monthly_cost_in_scope),
                _money(f.estimated_monthly_saving), f.currency, f.estimate_method, f.cost_basis, f.status,
            )
            for name, value in zip(fields, values, strict=True):
                columns[name].append(value)
        batch = pa.table({name: pa.array(values, types.get(name, pa.string())) for name, values in columns.items()})
        con.register("findings_batch", batch)
        try:
            con.execute(f"INSERT INTO {_RULE_ROWS} BY NAME SELECT * FROM findings_batch")
        finally:
            con.unregister("findings_batch")


def _problem_condition(rule_id: str) -> str:
    """SQL true for a row of the per-rule table that breaks the finding contract."""
    statuses = ", ".join(_sql_text(s) for s in RULE_STATUSES)
    return f"""(rule_id IS DISTINCT FROM {_sql_text(rule_id)}
        OR status IS NULL OR status NOT IN ({statuses})
        OR coalesce(provider, '') = '' OR coalesce(resource_id, '') = ''
        OR coalesce(summary, '') = '' OR coalesce(estimate_method, '') = ''
        OR ((monthly_cost_in_scope IS NOT NULL OR estimated_monthly_saving IS NOT NULL) AND coalesce(currency, '') = '')
        OR duplicate
        OR json_type(CAST(evidence AS JSON)) IS DISTINCT FROM 'OBJECT')"""


def _check_rule_rows(con: duckdb.DuckDBPyConnection, rule: LoadedRule) -> int:
    """Validate the rule's rows in one query; name the first bad one as the contract says.
    Returns how many findings the rule made."""
    found = con.execute(
        f"""WITH rows AS (
              SELECT *, rowid AS position,
                     row_number() OVER (PARTITION BY {FINGERPRINT_SQL} ORDER BY rowid) > 1 AS duplicate
              FROM {_RULE_ROWS})
            SELECT (SELECT count(*) FROM rows), rule_id, status, provider, resource_id, summary, estimate_method,
                   monthly_cost_in_scope, estimated_monthly_saving, currency, duplicate,
                   json_type(CAST(evidence AS JSON)) = 'OBJECT'
            FROM rows WHERE {_problem_condition(rule.id)} ORDER BY position LIMIT 1"""
    ).fetchone()
    if found is None:
        [(count,)] = con.execute(f"SELECT count(*) FROM {_RULE_ROWS}").fetchall()
        return count
    _, rule_id, status, provider, resource_id, summary, method, in_scope, saving, currency, duplicate, is_object = found
    problems = []
    if rule_id != rule.id:
        problems.append(f"rule_id {rule_id!r} is not {rule.id!r}")
    if status not in RULE_STATUSES:
        problems.append(f"status {status!r} is not one of {RULE_STATUSES}")
    if not provider or not resource_id:
        problems.append("provider and resource_id are required")
    if not summary or not method:
        problems.append("summary and estimate_method are required")
    if (in_scope is not None or saving is not None) and not currency:
        problems.append("an amount without a currency")
    if duplicate:
        problems.append(f"two findings for one resource ({resource_id}); a rule reports a resource once")
    if not is_object:
        problems.append("evidence must be a JSON object")
    raise ValueError(f"invalid finding for {resource_id!r}: {'; '.join(problems)}")


def _stage_rule(con: duckdb.DuckDBPyConnection, rule: LoadedRule, returned: Any, cost_basis: str, today: date) -> int:
    """What `evaluate` returned, validated, into the run's stage; the number of findings."""
    if isinstance(returned, FindingQuery):
        _rule_rows_from_query(con, returned, cost_basis)
    elif isinstance(returned, list) and all(isinstance(f, Finding) for f in returned):
        _rule_rows_from_list(con, returned)
    else:
        raise TypeError("evaluate must return a list of Finding")
    count = _check_rule_rows(con, rule)
    # Findings on the current (open) month are provisional: the bill can still change.
    month = datetime(today.year, today.month, 1, tzinfo=UTC)
    expressions = {name: name for name, _ in _STAGE_COLUMNS}
    expressions["fingerprint"] = FINGERPRINT_SQL
    expressions["evidence"] = (
        "CASE WHEN billing_period >= $month AND billing_period < $next THEN json_merge_patch(evidence, "
        "'{\"billing_period_status\": \"open month, provisional\"}') ELSE evidence END"
    )
    select = ", ".join(f"{sql} AS {name}" for name, sql in expressions.items())
    con.execute(
        f"INSERT INTO {STAGE} ({_STAGE_NAMES}) SELECT {select} FROM {_RULE_ROWS} ORDER BY rowid",
        {"month": month, "next": _next_month(month)},
    )
    con.execute(f"DROP TABLE IF EXISTS temp.main.{_RULE_ROWS}")
    return count


def _apply_suppressions(
    con: duckdb.DuckDBPyConnection, suppressions: tuple[Suppression, ...], today: date
) -> tuple[list[Suppression], list[Suppression]]:
    """Mark staged findings that a live suppression matches; a finding whose only match has
    expired stays open with a note. Returns the expired suppressions that matched and those
    that matched nothing."""
    if not suppressions:
        return [], []
    rows = [(s.position, s.fingerprint, s.rule, s.resource, s.expired(today), s.reason, s.expires) for s in suppressions]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE costaudit_suppressions (position INTEGER, fingerprint VARCHAR, rule VARCHAR,"
        " resource VARCHAR, expired BOOLEAN, reason VARCHAR, expires DATE)"
    )
    con.executemany("INSERT INTO costaudit_suppressions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    match = """CASE WHEN s.fingerprint IS NOT NULL THEN starts_with(f.fingerprint, s.fingerprint)
                    ELSE f.rule_id = s.rule AND lower(f.resource_id) = lower(coalesce(s.resource, '')) END"""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE costaudit_suppressed AS
        SELECT f.fingerprint,
               min(s.position) FILTER (WHERE NOT s.expired) AS live,
               min(s.position) FILTER (WHERE s.expired) AS stale
        FROM {STAGE} f JOIN costaudit_suppressions s ON {match}
        GROUP BY f.fingerprint"""
    )
    con.execute(
        f"""UPDATE {STAGE} f SET
              status = CASE WHEN m.live IS NOT NULL THEN 'suppressed' ELSE f.status END,
              suppression_reason = live.reason, suppression_expires = live.expires,
              suppression_note = CASE WHEN m.live IS NULL
                  THEN 'suppression expired on ' || CAST(stale.expires AS VARCHAR) || ': ' || stale.reason END
        FROM costaudit_suppressed m
        LEFT JOIN costaudit_suppressions live ON live.position = m.live
        LEFT JOIN costaudit_suppressions stale ON stale.position = m.stale
        WHERE f.fingerprint = m.fingerprint"""
    )
    used = {p for (p,) in con.execute("SELECT DISTINCT live FROM costaudit_suppressed WHERE live IS NOT NULL").fetchall()}
    hit = {p for (p,) in con.execute(
        "SELECT DISTINCT stale FROM costaudit_suppressed WHERE live IS NULL AND stale IS NOT NULL").fetchall()}
    con.execute("DROP TABLE IF EXISTS temp.main.costaudit_suppressed")
    con.execute("DROP TABLE IF EXISTS temp.main.costaudit_suppressions")
    expired = [s for s in suppressions if s.position in hit]
    unused = [s for s in suppressions if s.position not in used and s.position not in hit]
    return expired, unused


def run_audit(
    con: duckdb.DuckDBPyConnection,
    config: RulesConfig | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    rules: list[LoadedRule] | None = None,
    only: Collection[str] = (),
    today: date | None = None,
    keep: int | None = None,
) -> AuditReport:
    """Run the rules over the window and store a run; returns what happened, rule by rule.

    `rules` defaults to every registered rule; `only` narrows the run to some rule ids (the
    configuration is still checked against all of them). Every finding is stored with the run;
    `keep` bounds how many the report reads back (see `AuditReport`)."""
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
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {STAGE} ("
        + ", ".join(f"{name} {sql_type}" for name, sql_type in _STAGE_COLUMNS)
        + ", suppression_reason VARCHAR, suppression_expires DATE, suppression_note VARCHAR)"
    )
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
                found = _stage_rule(con, loaded, loaded.evaluate(ctx), config.cost_basis, today)
            except Exception as exc:  # one broken rule must not hide the others' findings
                con.execute(f"DROP TABLE IF EXISTS temp.main.{_RULE_ROWS}")
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcomes.append(RuleOutcome(loaded, "error", f"{type(exc).__name__}: {message}", params))
                continue
            outcomes.append(RuleOutcome(loaded, "ok", None, params, found))
        expired, unused = _apply_suppressions(con, config.suppressions, today)
        report = AuditReport(run_id, window, periods, billing_rows, outcomes, [], expired, unused)
        _store(con, report, config, started)
        _summarise(con, report, keep)
    finally:
        scratch.drop(con)
        con.execute(f"DROP TABLE IF EXISTS temp.main.{STAGE}")
    return report


FINDING_FIELDS = (
    "run_id", "fingerprint", "rule_id", "family", "severity", "title", "status", "provider", "billing_account_id",
    "sub_account_id", "region", "resource_id", "billing_period", "summary", "evidence", "monthly_cost_in_scope",
    "estimated_monthly_saving", "currency", "estimate_method", "cost_basis", "suppression_reason",
    "suppression_expires", "suppression_note",
)
_MONEY_ARROW = pa.decimal128(38, 12)
_MONEY_SCALE = Decimal("1e-12")  # the store keeps 12 decimal places
# Findings built in Python (plugin rules) go to DuckDB in Arrow batches of this many: not a
# statement per finding, and not one batch of all (a second copy of every finding in memory).
STORE_BATCH = 20_000


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_MONEY_SCALE)


def _store(con: duckdb.DuckDBPyConnection, report: AuditReport, config: RulesConfig, started: datetime) -> None:
    """The run, its rules and the staged findings, in one transaction (one INSERT ... SELECT)."""
    window = report.window
    [(open_, suppressed, not_assessed)] = con.execute(
        f"""SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status = 'suppressed'),
                   count(*) FILTER (WHERE status = 'not_assessed') FROM {STAGE}"""
    ).fetchall()
    rules = [(o.rule.id, o.rule.rule.family, o.rule.rule.severity, o.rule.rule.title) for o in report.outcomes]
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
                "failed": len(report.rules_with("error")), "open": open_, "suppressed": suppressed,
                "not_assessed": not_assessed,
            },
        )
        for outcome in report.outcomes:
            con.execute(
                "INSERT INTO rule_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                [report.run_id, outcome.rule.id, outcome.status, outcome.reason, outcome.found,
                 json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in outcome.params.items()}),
                 outcome.rule.origin],
            )
        if rules:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE costaudit_run_rules (rule_id VARCHAR, family VARCHAR, severity VARCHAR,"
                " title VARCHAR)"
            )
            con.executemany("INSERT INTO costaudit_run_rules VALUES (?, ?, ?, ?)", rules)
            drop_primary_key(con, "findings")
            con.execute(
                f"""INSERT INTO findings ({", ".join(FINDING_FIELDS)})
                SELECT $run_id, f.fingerprint, f.rule_id, r.family, r.severity, r.title, f.status, f.provider,
                       f.billing_account_id, f.sub_account_id, f.region, f.resource_id, f.billing_period, f.summary,
                       f.evidence, f.monthly_cost_in_scope, f.estimated_monthly_saving, f.currency,
                       f.estimate_method, f.cost_basis, f.suppression_reason, f.suppression_expires,
                       f.suppression_note
                FROM {STAGE} f JOIN costaudit_run_rules r USING (rule_id)""",
                {"run_id": report.run_id},
            )
            con.execute("DROP TABLE IF EXISTS temp.main.costaudit_run_rules")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# The order `costaudit audit` prints findings in, within a currency: open and suppressed ones by
# estimated saving, not assessed ones (no saving) by the cost in scope; ties by rule, fingerprint.
_PRINT_ORDER = """CASE WHEN status = 'not_assessed' THEN monthly_cost_in_scope ELSE estimated_monthly_saving END IS NULL,
    CASE WHEN status = 'not_assessed' THEN monthly_cost_in_scope ELSE estimated_monthly_saving END DESC,
    rule_id, fingerprint"""


def _summarise(con: duckdb.DuckDBPyConnection, report: AuditReport, keep: int | None) -> None:
    """Counts and totals of the stored run in SQL, and its findings read back: all of them when
    `keep` is None, else the `keep` largest of each status and currency."""
    params = {"run_id": report.run_id}
    report.counts = dict(con.execute(
        "SELECT status, count(*) FROM findings WHERE run_id = $run_id GROUP BY status", params).fetchall())
    report.open_by_severity = dict(con.execute(
        "SELECT severity, count(*) FROM findings WHERE run_id = $run_id AND status = 'open' GROUP BY severity",
        params).fetchall())
    report.open_savings = {
        currency: (Decimal(total), n)
        for currency, total, n in con.execute(
            """SELECT currency, sum(estimated_monthly_saving), count(*) FROM findings
               WHERE run_id = $run_id AND status = 'open' AND currency IS NOT NULL
                 AND estimated_monthly_saving IS NOT NULL GROUP BY currency""",
            params,
        ).fetchall()
    }
    limit = "" if keep is None else (
        f"QUALIFY row_number() OVER (PARTITION BY status, currency ORDER BY {_PRINT_ORDER}) <= {int(keep)}")
    cursor = con.execute(
        f"""SELECT rule_id, provider, billing_account_id, sub_account_id, region, resource_id, billing_period,
                   summary, CAST(evidence AS VARCHAR), monthly_cost_in_scope, estimated_monthly_saving, currency,
                   estimate_method, cost_basis, status, suppression_reason, suppression_expires, suppression_note,
                   fingerprint
            FROM findings WHERE run_id = $run_id {limit}
            ORDER BY coalesce(currency, '~'), {_PRINT_ORDER}""",
        params,
    )
    shown: list[AppliedFinding] = []
    while rows := cursor.fetchmany(10_000):
        for (rule_id, provider, account, sub_account, region, resource, period, summary, evidence, in_scope, saving,
             currency, method, basis, status, reason, expires, note, fp) in rows:
            finding = Finding(
                rule_id, provider, account, sub_account, region, resource, period, summary, json.loads(evidence),
                in_scope, saving, currency, method, basis, "not_assessed" if status == "not_assessed" else "open",
            )
            shown.append(AppliedFinding(finding, status, reason, expires, note, fp))
    report.findings = shown
    if keep is not None:
        not_read: dict[str, dict[str, int]] = {}
        for status, currency, n in con.execute(
            f"""SELECT status, coalesce(currency, 'no currency'), count(*) - {int(keep)} FROM findings
                WHERE run_id = $run_id GROUP BY ALL HAVING count(*) > {int(keep)}""",
            params,
        ).fetchall():
            not_read.setdefault(status, {})[currency] = n
        report.not_read = not_read
