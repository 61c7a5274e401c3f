"""`costaudit load`: plan deliveries, validate them, then replace billing periods atomically.

Order of work, so that a bad input never touches the store:
1. expand paths and group files into deliveries (manifests pick the latest assembly or run);
2. detect each delivery's format from its columns and check required columns;
3. scan for values that do not parse (money, quantities, timestamps, JSON) and name the row;
4. compute the source's own totals from the raw files;
5. in ONE transaction: replace each changed (provider, account, period, export) partition,
   insert the normalised rows, and reconcile stored totals with the source totals to the cent.
   Any mismatch or error rolls the whole command back.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb

from costaudit.connectors import deliveries
from costaudit.connectors.base import EXPECTED, FILE_COLUMN, Cols, Format, ReadOptions, bad_value_condition
from costaudit.connectors.files import SourceFile, check_gzip_whole, raw_relation_sql
from costaudit.connectors.sql import quote_ident
from costaudit.errors import CostauditError, InputError, ReconciliationError
from costaudit.faults import pause_point
from costaudit.schema import charge_key_sql

TOLERANCE = Decimal("0.01")
# ISO 4217 codes are three letters; a two-letter code (seen in Microsoft's test exports) is let through.
CURRENCY_CODE = re.compile(r"[A-Za-z]{2,3}")


@dataclass
class PreparedDelivery:
    delivery: deliveries.Delivery
    fmt: Format
    cols: Cols
    raw_sql: str
    source_totals: list[tuple[str, str, datetime, str, Decimal]]
    fingerprint: str
    source_export: str


@dataclass
class PartitionResult:
    provider: str
    billing_account_id: str
    billing_period_start: datetime
    currency: str
    basis: str
    source_total: Decimal
    stored_total: Decimal
    action: str  # 'loaded', 'replaced', 'unchanged'
    source_export: str
    source_format: str
    rows: int

    @property
    def difference(self) -> Decimal:
        return self.stored_total - self.source_total


@dataclass
class LoadReport:
    batch_id: str
    partitions: list[PartitionResult] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(p.action != "unchanged" for p in self.partitions)


def load_paths(
    con: duckdb.DuckDBPyConnection,
    paths: list[str],
    *,
    opts: ReadOptions | None = None,
    source_export: str | None = None,
) -> LoadReport:
    """Load billing exports from local paths into the store. All or nothing."""
    opts = opts or ReadOptions()
    plan = deliveries.plan(con, paths)
    report = LoadReport(batch_id=uuid.uuid4().hex[:12], skipped_files=plan.skipped)
    if not plan.deliveries:
        raise InputError(", ".join(paths), "no billing export found")
    prepared = []
    for delivery in plan.deliveries:
        unchanged = _already_loaded(con, delivery, source_export)
        if unchanged is not None:
            report.partitions.extend(unchanged)
        else:
            prepared.append(_prepare(con, delivery, opts, source_export))
    _check_overlaps(prepared)
    pause_point("load:after-read")
    con.execute("BEGIN TRANSACTION")
    try:
        for item in prepared:
            report.partitions.extend(_load_one(con, item, opts, report.batch_id))
        pause_point("load:before-commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return report


def _prepare(
    con: duckdb.DuckDBPyConnection, delivery: deliveries.Delivery, opts: ReadOptions, source_export: str | None
) -> PreparedDelivery:
    fmt = delivery.fmt
    cols = delivery.cols
    fmt.check(cols, opts)
    for file in delivery.files:
        check_gzip_whole(file)
    fmt.prepare(con)
    raw_sql = raw_relation_sql(delivery.files)
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw AS SELECT * FROM {raw_sql}")
    _check_values(con, delivery.files, fmt.parsed_columns(cols))
    _check_problems(con, delivery.files, fmt.problem_checks(cols))
    # Sorted so that any message naming "the first" partition names the same one on every run.
    totals = sorted(_run(con, fmt.source_totals_sql(cols, opts), delivery.files).fetchall(), key=lambda t: tuple(map(str, t)))
    _check_totals(delivery, totals)
    export = source_export or delivery.source_export or fmt.export_family or fmt.id
    return PreparedDelivery(delivery, fmt, cols, raw_sql, totals, _fingerprint(delivery), export)


def _fingerprint(delivery: deliveries.Delivery) -> str:
    """The delivery's identity in the ledger: its format and the checksums of its files."""
    digest = hashlib.sha256(delivery.fmt.id.encode())
    for file in sorted(delivery.files, key=lambda f: f.sha256):
        digest.update(file.sha256.encode())
    return digest.hexdigest()


def _already_loaded(
    con: duckdb.DuckDBPyConnection, delivery: deliveries.Delivery, source_export: str | None
) -> list[PartitionResult] | None:
    """The ledger's partitions of this very delivery when all of them are still active: then
    nothing needs reading (a rerun with nothing new costs no scan). None otherwise."""
    export = source_export or delivery.source_export or delivery.fmt.export_family or delivery.fmt.id
    rows = con.execute(
        """SELECT l.status, l.provider, l.billing_account_id, l.billing_period_start, t.currency, l.basis,
                  t.source_total, t.stored_total, l.source_export, l.source_format, l.row_count
           FROM loads l JOIN load_totals t USING (load_id)
           WHERE l.fingerprint = ? AND l.source_export = ?""",
        [_fingerprint(delivery), export],
    ).fetchall()
    if not rows or any(status != "active" for status, *_ in rows):
        return None
    return [
        PartitionResult(
            provider=provider, billing_account_id=account, billing_period_start=period, currency=currency,
            basis=basis, source_total=Decimal(source), stored_total=Decimal(stored), action="unchanged",
            source_export=export_name, source_format=source_format, rows=row_count,
        )
        for _, provider, account, period, currency, basis, source, stored, export_name, source_format, row_count in rows
    ]


def _run(con: duckdb.DuckDBPyConnection, sql: str, files: list[SourceFile]) -> duckdb.DuckDBPyConnection:
    try:
        return con.execute(sql)
    except duckdb.Error as exc:
        label = str(files[0].path) if len(files) == 1 else f"{files[0].path} (and {len(files) - 1} more)"
        raise InputError(label, f"cannot be read: {str(exc).strip().splitlines()[0]}") from None


def _check_values(con: duckdb.DuckDBPyConnection, files: list[SourceFile], checks: list[tuple[str, str]]) -> None:
    """Find any value that does not parse, checking each column's distinct values (a text rate
    column of 10^7 rows holds a few hundred: parsing them all row by row cost 19 s at 50M rows).
    Only on failure are the rows counted and the first bad row found in its file."""
    if not checks:
        _run(con, "SELECT count(*) FROM raw", files).fetchone()
        return
    distinct = " UNION ALL ".join(
        f"SELECT count(*) FILTER (WHERE {bad_value_condition('v', kind)}) AS bad"
        f" FROM (SELECT DISTINCT {quote_ident(col)} AS v FROM raw)"
        for col, kind in checks
    )
    if not any(bad for (bad,) in _run(con, distinct, files).fetchall()):
        return
    parts = [f"count(*) FILTER (WHERE {bad_value_condition(col, kind)})" for col, kind in checks]
    counts = _run(con, f"SELECT {', '.join(parts)} FROM raw", files).fetchone()
    assert counts is not None
    for (column, kind), count in zip(checks, counts, strict=True):
        if not count:
            continue
        condition = bad_value_condition(column, kind)
        found = con.execute(
            f"""
            SELECT file, rn, value FROM (
              SELECT {quote_ident(FILE_COLUMN)} AS file,
                     row_number() OVER (PARTITION BY {quote_ident(FILE_COLUMN)}) AS rn,
                     CAST({quote_ident(column)} AS VARCHAR) AS value,
                     {condition} AS bad
              FROM raw)
            WHERE bad ORDER BY file, rn LIMIT 1
            """
        ).fetchone()
        file, row, value = found if found else (str(files[0].path), None, "?")
        what = (f"is missing: expected {EXPECTED[kind]}" if value is None or not value.strip()
                else _not_parsed(value, kind.rstrip("!")))
        raise InputError(
            str(file),
            f"{what} ({count} such value{'s' if count > 1 else ''} in this column)",
            row=row,
            column=column,
        )


def _not_parsed(value: str, kind: str) -> str:
    """Why `value` does not read as `kind`: a number too large for the store's DECIMAL, or not a
    `kind` at all."""
    if kind in {"money", "qty"}:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return (f"{value!r} is out of range: amounts are stored as DECIMAL(38,12), at most 26 digits "
                    "before the decimal point")
    return f"{value!r} is not {EXPECTED[kind]}"


def _check_problems(con: duckdb.DuckDBPyConnection, files: list[SourceFile], checks: list[tuple[str, str]]) -> None:
    """Run a format's own value checks in one pass; name the first bad row on failure."""
    if not checks:
        return
    parts = [f"count(*) FILTER (WHERE ({problem}) IS NOT NULL)" for _, problem in checks]
    counts = _run(con, f"SELECT {', '.join(parts)} FROM raw", files).fetchone()
    assert counts is not None
    for (label, problem), count in zip(checks, counts, strict=True):
        if not count:
            continue
        found = con.execute(
            f"""
            SELECT file, rn, problem FROM (
              SELECT {quote_ident(FILE_COLUMN)} AS file,
                     row_number() OVER (PARTITION BY {quote_ident(FILE_COLUMN)}) AS rn,
                     ({problem}) AS problem
              FROM raw)
            WHERE problem IS NOT NULL ORDER BY file, rn LIMIT 1
            """
        ).fetchone()
        file, row, text = found if found else (str(files[0].path), None, "has a value that cannot be read")
        raise InputError(str(file), f"{text} ({count} such row{'s' if count > 1 else ''})", row=row, column=label)


def _check_overlaps(prepared: list[PreparedDelivery]) -> None:
    """Two deliveries of one command must not both claim the same ledger partition: one would
    silently replace the other (say the same bill as Parquet and as NDJSON)."""
    owners: dict[tuple, str] = {}
    for item in prepared:
        for provider, account, period, _currency, _total in item.source_totals:
            key = (provider, account, period, item.source_export)
            other = owners.setdefault(key, item.delivery.label)
            if other != item.delivery.label:
                raise InputError(
                    item.delivery.label,
                    f"delivers {provider} billing account {account}, period {period:%Y-%m} (export "
                    f"{item.source_export!r}) which {other} also delivers; load one of them, or load them "
                    "separately with different --export names",
                )


def _check_totals(delivery: deliveries.Delivery, totals: list[tuple]) -> None:
    label = delivery.label
    if not totals:
        raise InputError(label, "the export has a header but no rows")
    currencies: dict[tuple[str, str, datetime], set[str]] = {}
    for provider, account, period, currency, _total in totals:
        if period is None:
            raise InputError(label, "rows without a billing period (expected a parsable billing period start)")
        if currency is None:
            raise InputError(label, "rows without a billing currency (expected an ISO 4217 code)")
        if not CURRENCY_CODE.fullmatch(currency):
            raise InputError(label, f"billing currency {currency!r} is not a currency code (expected e.g. USD, EUR)")
        currencies.setdefault((provider, account, period), set()).add(currency)
    for (provider, account, period), found in currencies.items():
        if len(found) > 1:
            raise InputError(
                label,
                f"conflicting currencies {', '.join(sorted(found))} for {provider} billing account {account}, "
                f"period {period:%Y-%m}: one invoice has one billing currency",
            )


def _load_one(
    con: duckdb.DuckDBPyConnection, item: PreparedDelivery, opts: ReadOptions, batch_id: str
) -> list[PartitionResult]:
    fmt = item.fmt
    fmt.prepare(con)
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw AS SELECT * FROM {item.raw_sql}")
    partitions: dict[tuple[str, str, datetime], dict] = {}
    for provider, account, period, currency, total in item.source_totals:
        partitions[(provider, account, period)] = {"currency": currency, "total": Decimal(total or 0)}

    con.execute(
        "CREATE OR REPLACE TEMP TABLE partition_map (provider VARCHAR, account VARCHAR, period TIMESTAMPTZ,"
        " load_id VARCHAR, action VARCHAR, old_load_id VARCHAR)"
    )
    plan_rows = []
    for (provider, account, period), info in partitions.items():
        existing = con.execute(
            """SELECT load_id, fingerprint FROM loads
               WHERE status = 'active' AND provider = ? AND billing_account_id = ?
                 AND billing_period_start = ? AND source_export = ?""",
            [provider, account, period, item.source_export],
        ).fetchone()
        if existing and existing[1] == item.fingerprint:
            action, load_id, old = "unchanged", existing[0], None
        else:
            action = "replaced" if existing else "loaded"
            load_id, old = uuid.uuid4().hex[:16], existing[0] if existing else None
        info.update(action=action, load_id=load_id)
        plan_rows.append((provider, account, period, load_id, action, old))
    con.executemany("INSERT INTO partition_map VALUES (?, ?, ?, ?, ?, ?)", plan_rows)

    to_load = [r for r in plan_rows if r[4] != "unchanged"]
    if to_load:
        con.execute(
            "DELETE FROM line_items WHERE x_LoadId IN (SELECT old_load_id FROM partition_map WHERE old_load_id IS NOT NULL)"
        )
        con.execute(
            """UPDATE loads SET status = 'replaced', replaced_by = m.load_id
               FROM partition_map m WHERE loads.load_id = m.old_load_id"""
        )
        select = fmt.select_sql(item.cols, opts)
        try:
            con.execute(
                f"""
                INSERT INTO line_items BY NAME
                SELECT s.*, m.load_id AS x_LoadId, {charge_key_sql('s')} AS x_ChargeKey
                FROM ({select}) s
                LEFT JOIN partition_map m
                  ON m.provider = s.ProviderName AND m.account = s.BillingAccountId
                 AND m.period = s.BillingPeriodStart
                WHERE m.action IS DISTINCT FROM 'unchanged'
                """
            )
        except duckdb.Error as exc:
            raise InputError(item.delivery.label, f"cannot be normalised: {str(exc).strip().splitlines()[0]}") from None
        pause_point("load:mid-transaction")
        orphans = con.execute("SELECT count(*) FROM line_items WHERE x_LoadId IS NULL").fetchone()
        if orphans and orphans[0]:
            raise ReconciliationError(
                f"{item.delivery.label}: {orphans[0]} normalised rows match no billing period of the source totals"
            )

    results: list[PartitionResult] = []
    now = datetime.now(UTC)
    files_json = json.dumps(
        [
            {"path": str(f.path), "sha256": f.sha256, "bytes": f.size, "mtime_ns": _mtime_ns(f.path)}
            for f in item.delivery.files
        ]
    )
    mismatches = []
    for (provider, account, period), info in partitions.items():
        load_id = info["load_id"]
        stored_rows = con.execute(
            f"""SELECT BillingCurrency, sum({quote_ident(fmt.basis)}), count(*) FROM line_items
                WHERE x_LoadId = ? GROUP BY BillingCurrency""",
            [load_id],
        ).fetchall()
        stored = {currency: Decimal(total or 0) for currency, total, _ in stored_rows}
        row_count = sum(n for _, _, n in stored_rows)
        currency = info["currency"]
        source_total = info["total"]
        stored_total = stored.pop(currency, Decimal(0))
        if stored or abs(stored_total - source_total) > TOLERANCE:
            mismatches.append(
                f"{provider} {account} {period:%Y-%m} {currency}: source {source_total} vs stored {stored_total}"
                + (f" (and stored currencies {sorted(stored)} absent from the source)" if stored else "")
            )
        if info["action"] != "unchanged":
            con.execute(
                """INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', NULL)""",
                [
                    load_id, batch_id, provider, account, period, item.source_export, fmt.id,
                    fmt.version(item.cols), item.delivery.delivery_id, item.fingerprint, files_json,
                    row_count, fmt.basis, now,
                ],
            )
            con.execute(
                "INSERT INTO load_totals VALUES (?, ?, ?, ?, ?)",
                [load_id, currency, fmt.basis, source_total, stored_total],
            )
        results.append(
            PartitionResult(
                provider=provider, billing_account_id=account, billing_period_start=period, currency=currency,
                basis=fmt.basis, source_total=source_total, stored_total=stored_total, action=info["action"],
                source_export=item.source_export, source_format=fmt.id, rows=row_count,
            )
        )
    if mismatches:
        raise ReconciliationError(
            f"{item.delivery.label}: stored totals do not reconcile with the source to 0.01; nothing was loaded: "
            + "; ".join(mismatches)
        )
    return results


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def delivery_label(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more)"


__all__ = ["load_paths", "LoadReport", "PartitionResult", "CostauditError"]
