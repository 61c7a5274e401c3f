"""The XLSX report for finance: a summary sheet, a sheet per rule family, and the detail sheets.

Written with openpyxl in write-only mode: rows go to disk as they are made, so a run with a
million findings is never held in memory (the tests read the file back with openpyxl). Every
sheet is one table: a bold header row, frozen, with a filter over the whole table; a table longer
than Excel's 1,048,576 rows continues on a second sheet. Amounts are numbers (exact decimals
written as numbers) formatted ``#,##0.00``, each with its currency in the column to its right;
billing months are dates formatted ``yyyy-mm``; shares are fractions formatted as percentages.

Text from the store is a text cell: openpyxl would otherwise store a value starting with ``=``
as a formula. Text a spreadsheet would read as a formula when edited or re-saved as CSV also
gets Excel's quote prefix (the apostrophe that marks a cell as text without being part of its
value); characters XML cannot hold are replaced.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from .data import FindingRow, ReportData
from .safe import needs_formula_guard, xml_text

MONEY_FORMAT = "#,##0.00"
GB_FORMAT = "#,##0.000"
SHARE_FORMAT = "0.0%"
MONTH_FORMAT = "yyyy-mm"
MAX_CELL_TEXT = 32767  # Excel's limit for one cell
MAX_SHEET_ROWS = 1_048_576  # Excel's limit for one sheet (the header row included)
STATUS_SHEET_ORDER = ("open", "suppressed", "not_assessed")
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="E8ECF2")
_WRAP = Alignment(wrap_text=True, vertical="top")


class Money(Decimal):
    """Marks an amount column's value for the money number format."""


class Volume(Decimal):
    """A data volume in GB."""


class Share(Decimal):
    """A fraction shown as a percentage."""


def _month_date(value: str | datetime | None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return date(value.year, value.month, 1)
    year, month = str(value).split("-")[:2]
    return date(int(year), int(month), 1)


def _cell(ws: Any, value: Any) -> Any:
    """One data cell, typed and formatted (None for an empty one). A plain number, or short text
    that no spreadsheet reads as a formula, goes as the bare value (most cells: far cheaper than
    a styled cell object)."""
    if value is None:
        return None
    if type(value) in (int, float, Decimal):
        return value
    if type(value) is str and len(value) <= 40 and not needs_formula_guard(value):
        text = xml_text(value)
        if text == value:
            return text
    cell = WriteOnlyCell(ws)
    if isinstance(value, bool):
        cell.value = "yes" if value else "no"
    elif isinstance(value, Money | Volume | Share):
        cell.value = Decimal(value)
        cell.number_format = MONEY_FORMAT if isinstance(value, Money) else (
            GB_FORMAT if isinstance(value, Volume) else SHARE_FORMAT)
    elif isinstance(value, int | float | Decimal):
        cell.value = value
    elif isinstance(value, date):
        cell.value = value
        cell.number_format = MONTH_FORMAT if value.day == 1 else "yyyy-mm-dd"
    else:
        text = _fit(xml_text(str(value)))
        cell.value = text
        cell.data_type = "s"  # never a formula, whatever the text starts with
        if needs_formula_guard(text):
            cell.quotePrefix = True
        if len(text) > 40:
            cell.alignment = _WRAP
    return cell


def _fit(text: str) -> str:
    """`text`, or, beyond Excel's cell limit, its start with a visible note of how much was left
    out: a cut that says nothing would pass for the whole value (an evidence JSON, a long id)."""
    if len(text) <= MAX_CELL_TEXT:
        return text

    def note(cut: int) -> str:
        return f" [... cut: {cut:,} more characters; the JSON report has it all]"

    keep = MAX_CELL_TEXT - len(note(len(text)))  # the count left out has no more digits than the length
    return text[:keep] + note(len(text) - keep)


def _sheet(wb: Workbook, title: str, headers: list[str], rows: Iterable[list[Any]],
           widths: dict[str, int] | None = None) -> None:
    """A table sheet, written row by row (the workbook is write-only: rows go to disk as they
    come). A table longer than a sheet can hold continues on sheets titled "<title> (2)" ..."""
    rows = iter(rows)
    part = 1
    while True:
        name = title[:31] if part == 1 else f"{title[:25]} ({part})"
        ws = wb.create_sheet(title=name)
        for column, header in enumerate(headers, 1):
            width = (widths or {}).get(header) or max(10, min(len(header) + 4, 24))
            ws.column_dimensions[get_column_letter(column)].width = width
        ws.freeze_panes = "A2"
        header_cells = []
        for header in headers:
            cell = WriteOnlyCell(ws, value=header)
            cell.font, cell.fill = _HEADER_FONT, _HEADER_FILL
            header_cells.append(cell)
        ws.append(header_cells)
        count = 0
        for values in rows:
            ws.append([_cell(ws, value) for value in values])
            count += 1
            if count == MAX_SHEET_ROWS - 1:
                break
        ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{count + 1}"
        if count < MAX_SHEET_ROWS - 1:
            return
        following = next(rows, None)
        if following is None:
            return
        rows = itertools.chain([following], rows)
        part += 1


def _money(value: Decimal | None) -> Money | None:
    return None if value is None else Money(value)


def _fraction(percent: Decimal | None) -> Share | None:
    return None if percent is None else Share(percent / 100)


def _summary_rows(data: ReportData) -> Iterable[list[Any]]:
    for c in data.currencies:
        cur = c.currency
        for measure, billed, effective, with_share in (
            ("Spend", c.billed, c.effective, False),
            ("AI spend", c.ai_billed, c.ai_effective, True),
            ("Network cost", c.network_billed, c.network_effective, True),
        ):
            for basis, amount, whole in (("BilledCost", billed, c.billed), ("EffectiveCost", effective, c.effective)):
                share = _fraction(Decimal(amount) * 100 / whole) if with_share and whole else None
                yield [cur, measure, basis, _money(amount), cur, share]
        yield [cur, "Estimated monthly saving, open findings", c.cost_basis, _money(c.estimated_saving), cur, None]


def _finding_row(f: FindingRow) -> list[Any]:
    return [
        f.status, f.severity, f.rule_id, f.title, f.provider, f.billing_account_id, f.sub_account_id, f.region,
        f.resource_id, _month_date(f.billing_period), _money(f.monthly_cost_in_scope), f.currency,
        _money(f.estimated_monthly_saving), f.currency, f.summary, f.estimate_method, f.cost_basis, f.remediation,
        f.suppression_reason, f.suppression_expires, f.suppression_note,
        json.dumps(f.evidence, ensure_ascii=False, sort_keys=True, default=str), f.fingerprint,
    ]


FINDING_HEADERS = [
    "Status", "Severity", "Rule", "Title", "Provider", "Billing account", "Sub-account", "Region", "Resource",
    "Billing period", "Monthly cost in scope", "Currency", "Estimated monthly saving", "Currency", "Summary",
    "Estimate method", "Cost basis", "Remediation", "Suppression reason", "Suppression expires",
    "Suppression note", "Evidence (JSON)", "Fingerprint",
]
_FINDING_WIDTHS = {"Title": 32, "Resource": 40, "Billing account": 22, "Summary": 60, "Estimate method": 50,
                   "Remediation": 50, "Evidence (JSON)": 60, "Fingerprint": 20, "Billing period": 12}


def _run_rows(data: ReportData) -> list[list[Any]]:
    run = data.run
    rows: list[list[Any]] = [
        ["Run id", run.run_id], ["Billing months", run.span], ["Periods with data", ", ".join(run.periods)],
        ["Cost basis", run.cost_basis], ["Started", run.started_at.isoformat()],
        ["Generated", data.generated_at.isoformat()], ["Generator", data.generator],
        ["Report schema", data.schema_version], ["Config file", run.config_file or "(defaults)"],
        ["Config digest", run.config_digest], ["Billing rows", run.billing_rows],
        ["Rules ran", run.rules_run], ["Rules skipped", run.rules_skipped], ["Rules failed", run.rules_failed],
        ["Findings open", run.findings_open], ["Findings suppressed", run.findings_suppressed],
        ["Findings not assessed", run.findings_not_assessed],
        ["Audit made for this report", data.audit_ran],
    ]
    rows += [["Note", note] for note in data.notes]
    rows += [[f"Change since previous run: {k}", n] for k, n in (data.changes or {}).items()]
    return rows


def write_xlsx(data: ReportData, stream: BinaryIO) -> None:
    """The workbook, written into `stream`. Write-only: each sheet's rows are streamed to a
    temporary file as they are made, so the findings of a large run are never all in memory."""
    wb = Workbook(write_only=True)
    wb.properties.creator = data.generator
    wb.properties.title = f"Cloud cost audit {data.run.run_id}"
    _sheet(wb, "Summary", ["Currency", "Measure", "Cost basis", "Amount", "Currency", "Share of spend"],
           _summary_rows(data), {"Measure": 38, "Amount": 16})
    for family in data.families():
        _sheet(wb, f"{family.capitalize()} findings", FINDING_HEADERS,
               (_finding_row(f) for f in _by_status(data, family)), _FINDING_WIDTHS)
    _sheet(wb, "AI spend", ["Billing period", "Provider", "AI category", "Billed cost", "Currency", "Effective cost",
                            "Currency", "Line items"],
           ([_month_date(r.month), r.provider, r.category, _money(r.billed), c.currency, _money(r.effective),
             c.currency, r.rows] for c in data.currencies for r in c.ai_by_month))
    _sheet(wb, "Network by class", ["Class", "Billed cost", "Currency", "Effective cost", "Currency", "GB", "Line items"],
           ([r.network_class, _money(r.billed), c.currency, _money(r.effective), c.currency, Volume(r.gb), r.rows]
            for c in data.currencies for r in c.network_classes))
    _sheet(wb, "Top routes", ["Route", "Class", "Billed cost", "Currency", "Effective cost", "Currency", "GB"],
           ([r.route, r.network_class, _money(r.billed), c.currency, _money(r.effective), c.currency, Volume(r.gb)]
            for c in data.currencies for r in c.top_routes), {"Route": 40})
    _sheet(wb, "Rules", ["Rule", "Title", "Family", "Severity", "Status", "Findings", "Reason", "Origin", "Parameters"],
           ([r.rule_id, r.title, r.family, r.severity, r.status, r.findings, r.reason, r.origin,
             json.dumps(r.parameters, sort_keys=True)] for r in data.rules),
           {"Rule": 30, "Title": 40, "Reason": 60, "Parameters": 60})
    _sheet(wb, "Bills", ["Provider", "Billing account", "Billing period", "Source export", "Format", "Version",
                         "Rows", "Source total", "Currency", "Stored total", "Currency", "Basis", "Read", "Note"],
           ([x.provider, x.billing_account_id, _month_date(x.period), x.source_export, x.source_format,
             x.format_version, x.rows, _money(x.source_total), x.currency, _money(x.stored_total), x.currency,
             x.basis, x.state, x.note] for x in data.coverage.loads),
           {"Billing account": 30, "Source export": 30, "Note": 50})
    _sheet(wb, "Skipped", ["What", "Which", "Why"],
           ([s.kind, s.subject, s.reason] for s in data.coverage.skipped), {"Which": 50, "Why": 90})
    _sheet(wb, "Run", ["Field", "Value"], _run_rows(data), {"Field": 34, "Value": 80})
    wb.save(stream)


def render_xlsx(data: ReportData) -> bytes:
    """`write_xlsx` into memory."""
    buffer = io.BytesIO()
    write_xlsx(data, buffer)
    return buffer.getvalue()


def _by_status(data: ReportData, family: str) -> Iterator[FindingRow]:
    """A family's findings, open first, then suppressed, then not assessed (each in report order):
    one pass over the findings per status, none held."""
    for status in STATUS_SHEET_ORDER:
        yield from data.iter_findings_of(family, status)
    yield from (f for f in data.iter_findings_of(family) if f.status not in STATUS_SHEET_ORDER)
