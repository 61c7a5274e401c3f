"""`costaudit export focus`: write the store as a FOCUS 1.2 dataset.

Layout under ``--out DIR`` (nothing else in DIR is touched)::

    DIR/focus-1.2/metadata.json
    DIR/focus-1.2/billing_period=2024-09/part-0.parquet     (or part-0.csv)

One file per billing period, written by DuckDB ``COPY`` from the store's current line items (one
representation of each bill, as ``current_line_items`` defines it). The FOCUS 1.2 columns come
first in the specification's order, then costaudit's ``x_`` columns unless ``--no-extensions``.
CSV carries timestamps as ``YYYY-MM-DDTHH:MM:SSZ``, decimals as plain numbers, nulls as empty
fields and key-value columns as JSON text; Parquet keeps DECIMAL(38,12) and UTC timestamps.

CSV text is guarded against spreadsheet formulas, as every CSV costaudit writes: a text value a
spreadsheet would run as a formula (``= + - @``, a tab or a line break first, or their full-width
forms; `costaudit.reports.safe`) gets a leading apostrophe, and ``metadata.json`` counts those
values under ``csv_formula_guard``. Amounts, timestamps and JSON columns are never changed.
``--raw`` writes the text exactly as stored (for programs, not spreadsheets); Parquet is always exact.

``metadata.json`` also counts, under ``conformance_adjustments``, the exported rows each FOCUS
conversion rule of the FOCUS reader changed (``costaudit.connectors.formats.focus_conformance``),
so a consumer sees how much of the data is costaudit's conversion rather than the source's text.

Safety: the dataset is staged in a hidden folder inside DIR and swapped in at the end. An
existing ``DIR/focus-1.2`` is replaced only when its ``metadata.json`` says costaudit wrote it and
it holds no file that metadata does not list; otherwise the export stops and writes nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click
import duckdb

from costaudit import __version__
from costaudit.connectors.formats.focus_conformance import ADJUSTMENTS, RULES
from costaudit.connectors.sql import quote_ident, quote_literal
from costaudit.errors import CostauditError, UsageError
from costaudit.reports.safe import FORMULA_GUARD_PATTERN, spreadsheet_text_sql
from costaudit.schema import EXTRA_COLUMNS, FOCUS_COLUMNS, JSON, MONEY, QUANTITY, STR, TS
from costaudit.store import connect

FOCUS_VERSION = "1.2"
DATASET_DIR = f"focus-{FOCUS_VERSION}"
METADATA = "metadata.json"
GENERATOR = "costaudit"
COST_METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
# The export's own fills of a null ServiceSubcategory, counted in metadata.json beside the reader's rules.
EXPORT_SUBCATEGORY_FROM_SERVICE = "ServiceSubcategory filled by the export from the service's other rows"
EXPORT_SUBCATEGORY_OTHER = "ServiceSubcategory filled by the export with 'Other (<ServiceCategory>)'"
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
# A stable row order, so that exporting the same store twice writes the same files. Qualified, so
# that rows sort by the stored values, not by their CSV rendering (text amounts, guarded text).
_ORDER = ", ".join("ca_src." + quote_ident(c) for c in (
    "ProviderName", "BillingAccountId", "SubAccountId", "ChargePeriodStart", "ServiceName", "ChargeCategory",
    "ResourceId", "SkuPriceId", "ChargeDescription", "BilledCost", "EffectiveCost", "x_SourceFile",
))


class ExportError(CostauditError):
    """The export cannot be written where or as asked; nothing was written."""


@dataclass
class ExportResult:
    dataset: Path
    files: list[Path] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def export_focus(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    *,
    file_format: str = "parquet",
    providers: tuple[str, ...] = (),
    since: str | None = None,
    until: str | None = None,
    extensions: bool = True,
    raw: bool = False,
) -> ExportResult:
    """Write the store's current line items as a FOCUS 1.2 dataset under ``out_dir/focus-1.2``.

    CSV text values a spreadsheet would run as formulas get a leading apostrophe unless `raw`."""
    if file_format not in ("parquet", "csv"):
        raise UsageError(f"unknown export format {file_format!r}; expected parquet or csv")
    where = _filters(providers, since, until)
    source = _source_relation(con)
    periods = con.execute(
        f"SELECT DISTINCT strftime(BillingPeriodStart AT TIME ZONE 'UTC', '%Y-%m') AS p FROM {source} "
        f"WHERE {where} ORDER BY p"
    ).fetchall()
    if not periods:
        raise ExportError("nothing to export: the store holds no line items" + _filter_note(providers, since, until))
    root, dataset = _prepare_target(out_dir)
    staging = _inside(root, root / f".{DATASET_DIR}.staging-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        guard = file_format == "csv" and not raw
        select = _select_list(file_format, extensions, guard)
        entries = []
        for (period,) in periods:
            relative = f"billing_period={period}/part-0.{file_format}"
            target = _inside(root, staging / relative)
            target.parent.mkdir(parents=True)
            period_where = f"{where} AND strftime(BillingPeriodStart AT TIME ZONE 'UTC', '%Y-%m') = {quote_literal(period)}"
            options = "FORMAT parquet, COMPRESSION zstd" if file_format == "parquet" else "FORMAT csv, HEADER true"
            con.execute(
                f"COPY ({_with_subcategory_fill(source, where)} SELECT {select} FROM ca_src "
                f"WHERE {period_where} ORDER BY {_ORDER}) TO {quote_literal(str(target))} ({options})"
            )
            entries.append(_period_entry(con, source, period_where, period, relative))
        metadata = _metadata(con, source, where, entries, file_format, extensions, providers, since, until)
        if file_format == "csv":
            metadata["csv_formula_guard"] = _guard_note(con, source, where, extensions, guard)
        (staging / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        _swap_in(root, staging, dataset)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(dataset, [dataset / e["file"] for e in entries], metadata)


# -- what to export ---------------------------------------------------------------------------


def _source_relation(con: duckdb.DuckDBPyConnection) -> str:
    """The store's current line items: one representation of each bill."""
    names = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "current_line_items" in names:
        return "current_line_items"
    if "line_items" in names:
        return "line_items"
    raise ExportError("the store has no line_items table; run `costaudit load` first")


def _month(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    if not _MONTH.fullmatch(value):
        raise UsageError(f"{option} {value!r}: expected a billing month as YYYY-MM, e.g. 2024-09")
    return f"{value}-01"


def _filters(providers: tuple[str, ...], since: str | None, until: str | None) -> str:
    conditions = ["TRUE"]
    if providers:
        conditions.append(f"ProviderName IN ({', '.join(quote_literal(p) for p in providers)})")
    start, stop = _month(since, "--since"), _month(until, "--until")
    if start and stop and stop <= start:
        raise UsageError(f"--until {until} must be after --since {since} (since is inclusive, until exclusive)")
    if start:
        conditions.append(f"BillingPeriodStart >= TIMESTAMPTZ {quote_literal(start + ' 00:00:00+00')}")
    if stop:
        conditions.append(f"BillingPeriodStart < TIMESTAMPTZ {quote_literal(stop + ' 00:00:00+00')}")
    return " AND ".join(conditions)


def _filter_note(providers: tuple[str, ...], since: str | None, until: str | None) -> str:
    parts = []
    if providers:
        parts.append(f"provider {', '.join(providers)}")
    if since:
        parts.append(f"from {since}")
    if until:
        parts.append(f"before {until}")
    return f" for {' '.join(parts)}" if parts else ""


def _plain_number(expr: str) -> str:
    """Decimal text without trailing zeros but with a decimal point, so that readers inferring
    CSV types see a decimal column: 0.000000800000 -> 0.0000008, 100.000000000000 -> 100.0."""
    text = f"CAST({expr} AS VARCHAR)"
    return f"regexp_replace({text}, '(\\.\\d)(\\d*?)0+$', '\\1\\2')"


def _with_subcategory_fill(source: str, where: str) -> str:
    """``ca_src``: the source rows plus ``ca__sub_fill``, the ServiceSubcategory that the exported rows
    of the same (ProviderName, ServiceName, ServiceCategory) state (most rows, then alphabetical).

    FOCUS: ServiceSubcategory MUST NOT be null, and a ServiceName SHOULD have one subcategory. A row
    without one (read from a file older than FOCUS 1.1) takes the one its service has elsewhere in
    the export, so a 1.0 and a 1.2 file of the same service export alike."""
    keys = ("ProviderName", "ServiceName", "ServiceCategory")
    key_list = ", ".join(quote_ident(k) for k in keys)
    join = " AND ".join(f"f.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
    return f"""WITH ca_sub AS (
          SELECT {key_list}, ServiceSubcategory, count(*) AS n FROM {source}
          WHERE {where} AND ServiceSubcategory IS NOT NULL GROUP BY ALL
        ), ca_fill AS (
          SELECT {key_list}, list(ServiceSubcategory ORDER BY n DESC, ServiceSubcategory)[1] AS ca__sub_fill
          FROM ca_sub GROUP BY ALL
        ), ca_src AS (
          SELECT s.*, f.ca__sub_fill FROM {source} s LEFT JOIN ca_fill f ON {join}
        )"""


def _column(name: str, sql_type: str, file_format: str, guard: bool = False) -> str:
    ident = quote_ident(name)
    expr = ident
    if name == "ServiceSubcategory":
        # FOCUS: never null. Where no reader could name it and no other row of the service does,
        # the category's own catch-all ("Other (<ServiceCategory>)") is the value the specification
        # provides for that case.
        expr = f"coalesce({ident}, ca__sub_fill, 'Other (' || ServiceCategory || ')')"
    if guard and sql_type == STR:
        # Tags and ids are whoever labelled a resource: never a formula when a person opens the CSV.
        return f"{spreadsheet_text_sql(expr)} AS {ident}"
    if sql_type == JSON:
        return f"CAST({expr} AS VARCHAR) AS {ident}"
    if file_format == "csv" and sql_type == TS:
        return f"strftime({expr} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS {ident}"
    if file_format == "csv" and sql_type in (MONEY, QUANTITY):
        return f"{_plain_number(expr)} AS {ident}"
    return f"{expr} AS {ident}"


def _typed_columns(extensions: bool) -> list[tuple[str, str]]:
    columns = [(name, sql_type) for name, sql_type, _ in FOCUS_COLUMNS]
    if extensions:
        columns += [(name, sql_type) for name, sql_type, _ in EXTRA_COLUMNS]
    return columns


def _select_list(file_format: str, extensions: bool, guard: bool = False) -> str:
    return ", ".join(_column(name, sql_type, file_format, guard) for name, sql_type in _typed_columns(extensions))


def _guard_note(con: duckdb.DuckDBPyConnection, source: str, where: str, extensions: bool, applied: bool) -> dict:
    """metadata.json's ``csv_formula_guard``: whether CSV text was guarded, and how many exported
    values start like a formula (prefixed with an apostrophe when applied, exact under --raw)."""
    texts = [quote_ident(n) for n, sql_type in _typed_columns(extensions) if sql_type == STR]
    pattern = quote_literal(FORMULA_GUARD_PATTERN)
    flags = " + ".join(f"coalesce(regexp_matches({t}, {pattern}), false)::INTEGER" for t in texts)
    [(values,)] = con.execute(f"SELECT coalesce(sum({flags}), 0) FROM {source} WHERE {where}").fetchall()
    return {"applied": applied, "formula_like_values": int(values)}


def exported_columns(extensions: bool = True) -> list[str]:
    """Column names of an exported file, in order."""
    names = [name for name, _, _ in FOCUS_COLUMNS]
    return names + ([name for name, _, _ in EXTRA_COLUMNS] if extensions else [])


# -- metadata ---------------------------------------------------------------------------------


def _decimal_text(value) -> str:
    number = Decimal(value or 0).normalize()
    return format(number, "f")


def _totals(con: duckdb.DuckDBPyConnection, source: str, where: str) -> list[dict]:
    sums = ", ".join(f"sum({quote_ident(m)})" for m in COST_METRICS)
    rows = con.execute(
        f"SELECT BillingCurrency, count(*), {sums} FROM {source} WHERE {where} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return [
        {"currency": currency, "rows": count, **{m: _decimal_text(v) for m, v in zip(COST_METRICS, values, strict=True)}}
        for currency, count, *values in rows
    ]


def _period_entry(con: duckdb.DuckDBPyConnection, source: str, where: str, period: str, relative: str) -> dict:
    totals = _totals(con, source, where)
    providers = [r[0] for r in con.execute(f"SELECT DISTINCT ProviderName FROM {source} WHERE {where} ORDER BY 1").fetchall()]
    return {
        "billing_period": period,
        "file": relative,
        "rows": sum(t["rows"] for t in totals),
        "providers": providers,
        "totals": totals,
    }


def _adjustments(con: duckdb.DuckDBPyConnection, source: str, where: str) -> dict[str, int]:
    """Rows each FOCUS conversion rule changed, by the rule's description (every rule, 0 included):
    the FOCUS reader's rules, recorded per row in x_ConformanceAdjustments, then the export's own."""
    column = quote_ident(ADJUSTMENTS)
    counts = dict(con.execute(
        f"SELECT rule, count(*) FROM (SELECT unnest(list_distinct(string_split({column}, ','))) AS rule "
        f"FROM {source} WHERE {where} AND {column} IS NOT NULL) GROUP BY rule"
    ).fetchall())
    result = {description: counts.get(rule, 0) for rule, description in RULES.items()}
    from_service, catch_all = con.execute(
        f"{_with_subcategory_fill(source, where)} SELECT count(*) FILTER (WHERE ca__sub_fill IS NOT NULL), "
        f"count(*) FILTER (WHERE ca__sub_fill IS NULL) FROM ca_src WHERE {where} AND ServiceSubcategory IS NULL"
    ).fetchone()
    result[EXPORT_SUBCATEGORY_FROM_SERVICE] = from_service
    result[EXPORT_SUBCATEGORY_OTHER] = catch_all
    return result


def _metadata(con, source, where, entries, file_format, extensions, providers, since, until) -> dict:
    totals = _totals(con, source, where)
    provider_rows = con.execute(
        f"SELECT ProviderName, BillingCurrency, count(*), sum(BilledCost) FROM {source} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return {
        "generator": GENERATOR,
        "generator_version": __version__,
        "focus_version": FOCUS_VERSION,
        "dataset": "CostAndUsage",
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "format": file_format,
        "columns": exported_columns(extensions),
        "filters": {"providers": list(providers), "since": since, "until": until},
        "providers": [
            {"provider": p, "currency": c, "rows": n, "BilledCost": _decimal_text(b)} for p, c, n, b in provider_rows
        ],
        "row_count": sum(t["rows"] for t in totals),
        "totals": totals,
        # Values the FOCUS reader converted to meet FOCUS 1.2 (README: FOCUS conversion rules); the
        # values as the sources stated them are in x_OriginalValues.
        "conformance_adjustments": _adjustments(con, source, where),
        "periods": entries,
        "files": [e["file"] for e in entries],
    }


# -- where to write ---------------------------------------------------------------------------


def _inside(root: Path, path: Path) -> Path:
    """`path` resolved, refusing anything that escapes `root` (symlinks included)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise ExportError(f"{path}: refusing to write outside the output folder {root}")
    return resolved


def _prepare_target(out_dir: Path) -> tuple[Path, Path]:
    """Create the output folder; check that an existing dataset there is costaudit's to replace."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder; --out needs a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from None
    root = out_dir.resolve()
    dataset = root / DATASET_DIR
    if dataset.is_symlink() or (dataset.exists() and not dataset.is_dir()):
        raise ExportError(f"{dataset}: is not a plain folder written by costaudit; remove it or choose another --out")
    if dataset.exists():
        _check_ours(dataset)
    return root, dataset


def _check_ours(dataset: Path) -> None:
    present = sorted(p for p in dataset.rglob("*") if p.is_file() or p.is_symlink())
    if not present:
        return
    foreign_hint = "remove it or choose another --out; costaudit only replaces datasets it wrote itself"
    meta_path = dataset / METADATA
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict) or meta.get("generator") != GENERATOR:
        raise ExportError(f"{dataset}: holds files costaudit did not write (no costaudit {METADATA}); {foreign_hint}")
    listed = {(dataset / name).resolve() for name in meta.get("files", [])} | {meta_path.resolve()}
    for path in present:
        if path.is_symlink() or path.resolve() not in listed:
            raise ExportError(f"{path}: not written by costaudit's last export; {foreign_hint}")


def _swap_in(root: Path, staging: Path, dataset: Path) -> None:
    if not dataset.exists():
        staging.rename(dataset)
        return
    _check_ours(dataset)  # again, just before replacing it
    old = _inside(root, root / f".{DATASET_DIR}.old-{uuid.uuid4().hex[:8]}")
    dataset.rename(old)
    staging.rename(dataset)
    shutil.rmtree(old)


# -- command line -----------------------------------------------------------------------------


@click.group(name="export")
def export_group() -> None:
    """Export the store in open formats."""


@export_group.command(name="focus")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder (created if missing).")
@click.option("--format", "file_format", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--provider", "providers", multiple=True, help="Only this ProviderName (repeatable).")
@click.option("--since", default=None, help="First billing month to export, YYYY-MM (inclusive).")
@click.option("--until", default=None, help="Billing month to stop before, YYYY-MM (exclusive).")
@click.option("--extensions/--no-extensions", default=True, show_default=True,
              help="Keep costaudit's x_ columns after the FOCUS 1.2 columns.")
@click.option("--raw", is_flag=True,
              help="CSV: write text exactly as stored. By default a text value a spreadsheet would run as a "
                   "formula (starting with = + - @, a tab or a line break) gets a leading apostrophe.")
@click.pass_context
def focus_command(ctx: click.Context, out_dir: Path, file_format: str, providers: tuple[str, ...],
                  since: str | None, until: str | None, extensions: bool, raw: bool) -> None:
    """Write the store as a FOCUS 1.2 dataset: one file per billing period plus metadata.json.

    Writes only DIR/focus-1.2/. An earlier costaudit export there is replaced; a folder holding
    anything else stops the export before it writes a byte. In CSV, text a spreadsheet would run
    as a formula gets a leading apostrophe (counted in metadata.json) unless --raw.
    """
    con = connect(ctx.obj["db"], read_only=True)
    try:
        result = export_focus(con, out_dir, file_format=file_format, providers=providers, since=since,
                              until=until, extensions=extensions, raw=raw)
    finally:
        con.close()
    meta = result.metadata
    click.echo(f"FOCUS {FOCUS_VERSION} dataset: {result.dataset} ({meta['row_count']} rows, {len(result.files)} files)")
    for entry in meta["periods"]:
        amounts = ", ".join(f"{t['currency']} {t['BilledCost']}" for t in entry["totals"])
        click.echo(f"  {entry['file']}: {entry['rows']} rows, BilledCost {amounts}")
    guard = meta.get("csv_formula_guard")
    if guard and guard["applied"] and guard["formula_like_values"]:
        click.echo(f"  {guard['formula_like_values']} text value(s) a spreadsheet would run as formulas start "
                   "with an apostrophe (--raw writes them exactly)")
