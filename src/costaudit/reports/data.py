"""What a report holds: one audit run, the spend it covers, and the data it was based on.

`ReportData` is built once (`build.build_report_data`) and rendered by every format, so the
HTML, XLSX, CSV, JSON and Markdown reports always show the same numbers. Amounts are exact
`Decimal`s in their billing currency; nothing here adds two currencies together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .safe import share

SCHEMA_VERSION = "1.0"
FAMILY_ORDER = ("egress", "network", "ai", "compute", "storage", "commitment", "other")
STATUS_ORDER = ("open", "suppressed", "not_assessed")


@dataclass(frozen=True)
class RunInfo:
    """The audit run a report shows (a row of `runs`)."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    since: datetime | None
    until: datetime | None
    periods: list[str]
    cost_basis: str
    config_digest: str
    config_file: str | None
    billing_rows: int
    rules_run: int
    rules_skipped: int
    rules_failed: int
    findings_open: int
    findings_suppressed: int
    findings_not_assessed: int
    is_latest: bool

    def months(self) -> list[str]:
        """Every billing month of the window, YYYY-MM, in order."""
        if self.since is None or self.until is None:
            return []
        months, year, month = [], self.since.year, self.since.month
        while (year, month) < (self.until.year, self.until.month):
            months.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months

    @property
    def span(self) -> str:
        """The billing months audited, both ends inclusive: '2024-01 to 2024-10'."""
        if self.since is None or self.until is None:
            return "none (no billing data)"
        year, month = (self.until.year, self.until.month - 1) if self.until.month > 1 else (self.until.year - 1, 12)
        return f"{self.since:%Y-%m} to {year:04d}-{month:02d}"


@dataclass(frozen=True)
class AiMonth:
    month: str
    provider: str
    category: str
    billed: Decimal
    effective: Decimal
    rows: int


@dataclass(frozen=True)
class NetworkClass:
    network_class: str
    billed: Decimal
    effective: Decimal
    gb: Decimal
    rows: int


@dataclass(frozen=True)
class Route:
    route: str
    network_class: str
    billed: Decimal
    effective: Decimal
    gb: Decimal


@dataclass
class CurrencySpend:
    """One billing currency: spend, AI and network figures (from `costaudit summary`'s queries)
    and the savings the run's open findings estimate."""

    currency: str
    cost_basis: str
    billed: Decimal
    effective: Decimal
    ai_billed: Decimal
    ai_effective: Decimal
    network_billed: Decimal
    network_effective: Decimal
    network_gb: Decimal
    ai_by_month: list[AiMonth] = field(default_factory=list)
    network_classes: list[NetworkClass] = field(default_factory=list)
    top_routes: list[Route] = field(default_factory=list)
    open_findings: int = 0
    estimated_saving: Decimal = Decimal(0)

    def _pick(self, billed: Decimal, effective: Decimal) -> Decimal:
        return billed if self.cost_basis == "BilledCost" else effective

    @property
    def total(self) -> Decimal:
        """Spend on the run's cost basis."""
        return self._pick(self.billed, self.effective)

    @property
    def ai(self) -> Decimal:
        return self._pick(self.ai_billed, self.ai_effective)

    @property
    def network(self) -> Decimal:
        return self._pick(self.network_billed, self.network_effective)

    @property
    def ai_share(self) -> Decimal | None:
        """AI spend as a percentage of all spend, on the run's cost basis."""
        return share(self.ai, self.total)

    @property
    def network_share(self) -> Decimal | None:
        return share(self.network, self.total)

    def ai_month_category(self) -> list[tuple[str, str, Decimal]]:
        """(month, category, amount on the cost basis), providers taken together, for the chart."""
        totals: dict[tuple[str, str], Decimal] = {}
        for row in self.ai_by_month:
            key = (row.month, row.category)
            totals[key] = totals.get(key, Decimal(0)) + self._pick(row.billed, row.effective)
        return [(month, category, amount) for (month, category), amount in sorted(totals.items())]


@dataclass(frozen=True)
class FindingRow:
    """A stored finding (a row of `findings`) with its rule's remediation."""

    fingerprint: str
    rule_id: str
    family: str
    severity: str
    title: str
    status: str
    provider: str
    billing_account_id: str | None
    sub_account_id: str | None
    region: str | None
    resource_id: str
    billing_period: datetime | None
    summary: str
    evidence: dict[str, Any]
    monthly_cost_in_scope: Decimal | None
    estimated_monthly_saving: Decimal | None
    currency: str | None
    estimate_method: str
    cost_basis: str
    suppression_reason: str | None
    suppression_expires: date | None
    suppression_note: str | None
    remediation: str | None

    @property
    def period(self) -> str:
        return f"{self.billing_period:%Y-%m}" if self.billing_period else ""


@dataclass(frozen=True)
class RuleRow:
    """How one rule fared in the run (a row of `rule_results`) and what the rule is."""

    rule_id: str
    status: str
    reason: str | None
    findings: int
    parameters: dict[str, Any]
    origin: str | None
    title: str
    family: str
    severity: str
    why: str | None
    how_to_fix: str | None
    references: tuple[str, ...]


@dataclass(frozen=True)
class PeriodCoverage:
    period: str
    rows: int
    provisional: bool


@dataclass(frozen=True)
class LoadCoverage:
    """One loaded bill (a `loads` row with its `load_totals`), and whether the report reads it."""

    provider: str
    billing_account_id: str
    period: str
    source_export: str
    source_format: str
    format_version: str | None
    rows: int
    currency: str | None
    source_total: Decimal | None
    stored_total: Decimal | None
    basis: str
    state: str  # 'current', 'shadowed' (another export of the same bill is read), 'replaced'
    note: str | None


@dataclass(frozen=True)
class Skipped:
    """Something the report or the audit did not cover, and why."""

    kind: str  # 'rule', 'load', 'period', 'findings'
    subject: str
    reason: str


@dataclass
class Coverage:
    periods: list[PeriodCoverage]
    missing_periods: list[str]
    loads: list[LoadCoverage]
    skipped: list[Skipped]

    def current_loads(self) -> list[LoadCoverage]:
        return [load for load in self.loads if load.state == "current"]

    def accounts(self) -> list[tuple[str, str, list[str], list[str], int]]:
        """(provider, billing account, periods, currencies, rows) of the bills the report reads."""
        grouped: dict[tuple[str, str], tuple[set[str], set[str], int]] = {}
        for load in self.current_loads():
            periods, currencies, rows = grouped.get((load.provider, load.billing_account_id), (set(), set(), 0))
            periods.add(load.period)
            if load.currency:
                currencies.add(load.currency)
            grouped[(load.provider, load.billing_account_id)] = (periods, currencies, rows + load.rows)
        return [
            (provider, account, sorted(periods), sorted(currencies), rows)
            for (provider, account), (periods, currencies, rows) in sorted(grouped.items())
        ]


@dataclass
class ReportData:
    """Everything a report shows. Built by `build_report_data`, rendered by `write_report`."""

    generated_at: datetime
    generator: str
    run: RunInfo
    audit_ran: bool
    currencies: list[CurrencySpend]
    # A list, or for a run with many findings a `build.StoredFindings` that reads them from disk
    # in batches each time it is iterated (CSV, JSON and XLSX stream through it).
    findings: Sequence[FindingRow]
    rules: list[RuleRow]
    coverage: Coverage
    changes: dict[str, int] | None
    notes: list[str]
    schema_version: str = SCHEMA_VERSION
    # Every finding of the run counted in SQL: (family, status, currency) -> (count, summed
    # estimated saving). `findings` may hold only the largest of each such group
    # (`findings_complete` False) when only the HTML and Markdown reports are written.
    finding_counts: dict[tuple[str, str, str | None], tuple[int, Decimal | None]] = field(default_factory=dict)
    findings_complete: bool = True

    def families(self) -> list[str]:
        """Families of the rules in the run and of the findings, in a fixed order."""
        present = {r.family for r in self.rules} | {family for family, _, _ in self.finding_counts}
        if not self.finding_counts:
            present |= {f.family for f in self.findings}
        return sorted(present, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))

    def count_of(self, family: str, status: str) -> int:
        """How many findings of `family` have `status`, across currencies (all of them, also when
        `findings` holds only the largest)."""
        if not self.finding_counts:
            return len(self.findings_of(family, status))
        return sum(n for (fam, st, _), (n, _) in self.finding_counts.items() if fam == family and st == status)

    def findings_of(self, family: str, status: str | None = None) -> list[FindingRow]:
        return list(self.iter_findings_of(family, status))

    def iter_findings_of(self, family: str, status: str | None = None) -> Iterator[FindingRow]:
        """`findings_of` one at a time (a streamed `findings` is never held whole, and picks the
        family's rows before making objects of them)."""
        where = getattr(self.findings, "where", None)
        if where is not None:
            return where(family, status)
        return (f for f in self.findings if f.family == family and (status is None or f.status == status))

    def top_findings(self, currency: str, limit: int = 10) -> list[FindingRow]:
        """Open findings in one currency with the largest estimated monthly saving."""
        ranked = [f for f in self.findings
                  if f.status == "open" and f.currency == currency and f.estimated_monthly_saving is not None]
        return ranked[:limit]  # findings are already sorted by saving within a currency

    def status_counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUS_ORDER}
        if self.finding_counts:
            for (_, status, _), (n, _) in self.finding_counts.items():
                counts[status] = counts.get(status, 0) + n
            return counts
        for finding in self.findings:
            counts[finding.status] = counts.get(finding.status, 0) + 1
        return counts

    def rule(self, rule_id: str) -> RuleRow | None:
        return next((r for r in self.rules if r.rule_id == rule_id), None)
