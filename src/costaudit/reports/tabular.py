"""The CSV and JSON reports, for automation.

JSON (schema ``schema/report-1.schema.json``, ``schema_version`` "1.0"): the whole report.
Amounts are JSON strings holding exact decimals ("2359.68", "0.000125"): a JSON number is read
as a binary float by most parsers (JavaScript, Python's default), which cannot hold most cent
values exactly, and billing data must add up to the cent. Values are the store's text as is
(JSON-escaped; ``<``, ``>`` and ``&`` as \\u escapes so the document is also safe to embed).

CSV: one row per finding of the run (RFC 4180, UTF-8, header row). Amounts are plain decimal
numbers with the currency in the next column; text cells a spreadsheet would read as a formula
get a leading apostrophe (see `safe.spreadsheet_text`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any, BinaryIO

from .data import FindingRow, ReportData
from .safe import exact, spreadsheet_text

CSV_COLUMNS = (
    "run_id", "fingerprint", "rule_id", "family", "severity", "title", "status", "provider", "billing_account_id",
    "sub_account_id", "region", "resource_id", "billing_period", "summary", "monthly_cost_in_scope", "cost_currency",
    "estimated_monthly_saving", "saving_currency", "estimate_method", "cost_basis", "remediation",
    "suppression_reason", "suppression_expires", "suppression_note", "evidence",
)
_NUMERIC = {"monthly_cost_in_scope", "estimated_monthly_saving"}


def _month(moment: datetime | None) -> str | None:
    return f"{moment:%Y-%m}" if moment is not None else None


def _instant(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def write_csv(data: ReportData, stream: BinaryIO) -> None:
    """The run's findings, one row each, amounts as numbers and text neutralised; written as
    they are read (a streamed `data.findings` is never held whole)."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for f in data.findings:
            values: dict[str, Any] = {
                "run_id": data.run.run_id, "fingerprint": f.fingerprint, "rule_id": f.rule_id, "family": f.family,
                "severity": f.severity, "title": f.title, "status": f.status, "provider": f.provider,
                "billing_account_id": f.billing_account_id, "sub_account_id": f.sub_account_id, "region": f.region,
                "resource_id": f.resource_id, "billing_period": _month(f.billing_period), "summary": f.summary,
                "monthly_cost_in_scope": exact(f.monthly_cost_in_scope), "cost_currency": f.currency,
                "estimated_monthly_saving": exact(f.estimated_monthly_saving), "saving_currency": f.currency,
                "estimate_method": f.estimate_method, "cost_basis": f.cost_basis, "remediation": f.remediation,
                "suppression_reason": f.suppression_reason,
                "suppression_expires": f.suppression_expires.isoformat() if f.suppression_expires else None,
                "suppression_note": f.suppression_note,
                "evidence": json.dumps(f.evidence, ensure_ascii=False, sort_keys=True, default=str),
            }
            writer.writerow([
                (values[c] or "") if c in _NUMERIC else spreadsheet_text(values[c]) for c in CSV_COLUMNS
            ])
        text.flush()
    finally:
        text.detach()  # the caller owns `stream`


def render_csv(data: ReportData) -> bytes:
    """`write_csv` into memory."""
    buffer = io.BytesIO()
    write_csv(data, buffer)
    return buffer.getvalue()


def _money(value: Decimal | None) -> str | None:
    return exact(value)


def _plain(value: Any) -> Any:
    """Evidence and parameters as JSON values (decimals as exact strings, dates as ISO text)."""
    if isinstance(value, Decimal):
        return exact(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinity are not JSON
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _finding_document(f: FindingRow) -> dict[str, Any]:
    return {
        "fingerprint": f.fingerprint, "rule_id": f.rule_id, "family": f.family, "severity": f.severity,
        "title": f.title, "status": f.status, "provider": f.provider,
        "billing_account_id": f.billing_account_id, "sub_account_id": f.sub_account_id, "region": f.region,
        "resource_id": f.resource_id, "billing_period": _month(f.billing_period), "summary": f.summary,
        "evidence": _plain(f.evidence), "monthly_cost_in_scope": _money(f.monthly_cost_in_scope),
        "estimated_monthly_saving": _money(f.estimated_monthly_saving), "currency": f.currency,
        "estimate_method": f.estimate_method, "cost_basis": f.cost_basis, "remediation": f.remediation,
        "suppression": None if not (f.suppression_reason or f.suppression_note) else {
            "reason": f.suppression_reason,
            "expires": f.suppression_expires.isoformat() if f.suppression_expires else None,
            "note": f.suppression_note},
    }


# Stands in for the findings list while the rest of the document is encoded (`write_json`).
_FINDINGS_SLOT = "\x00costaudit findings\x00"


def report_document(data: ReportData, with_findings: bool = True) -> dict[str, Any]:
    """The report as the JSON document of schema version 1.0 (before encoding); without the
    findings, a placeholder stands where their list goes."""
    run = data.run
    return {
        "schema_version": data.schema_version,
        "generated_at": _instant(data.generated_at),
        "generator": data.generator,
        "run": {
            "run_id": run.run_id, "started_at": _instant(run.started_at), "finished_at": _instant(run.finished_at),
            "since": _month(run.since), "until": _month(run.until), "periods": run.periods,
            "cost_basis": run.cost_basis, "config_digest": run.config_digest, "config_file": run.config_file,
            "billing_rows": run.billing_rows,
            "rules": {"ran": run.rules_run, "skipped": run.rules_skipped, "failed": run.rules_failed},
            "findings": {"open": run.findings_open, "suppressed": run.findings_suppressed,
                         "not_assessed": run.findings_not_assessed},
            "is_latest": run.is_latest, "made_for_report": data.audit_ran,
        },
        "notes": list(data.notes),
        "currencies": [
            {
                "currency": c.currency, "cost_basis": c.cost_basis,
                "spend": {"billed": _money(c.billed), "effective": _money(c.effective)},
                "ai": {"billed": _money(c.ai_billed), "effective": _money(c.ai_effective),
                       "share_percent": exact(c.ai_share)},
                "network": {"billed": _money(c.network_billed), "effective": _money(c.network_effective),
                            "gb": exact(c.network_gb), "share_percent": exact(c.network_share)},
                "estimated_monthly_saving": _money(c.estimated_saving),
                "open_findings": c.open_findings,
                "ai_by_month": [{"month": r.month, "provider": r.provider, "category": r.category,
                                 "billed": _money(r.billed), "effective": _money(r.effective), "rows": r.rows}
                                for r in c.ai_by_month],
                "network_by_class": [{"class": r.network_class, "billed": _money(r.billed),
                                      "effective": _money(r.effective), "gb": exact(r.gb), "rows": r.rows}
                                     for r in c.network_classes],
                "top_routes": [{"route": r.route, "class": r.network_class, "billed": _money(r.billed),
                                "effective": _money(r.effective), "gb": exact(r.gb)} for r in c.top_routes],
            }
            for c in data.currencies
        ],
        "findings": [_finding_document(f) for f in data.findings] if with_findings else _FINDINGS_SLOT,
        "rules": [
            {"rule_id": r.rule_id, "title": r.title, "family": r.family, "severity": r.severity, "status": r.status,
             "reason": r.reason, "findings": r.findings, "parameters": _plain(r.parameters), "origin": r.origin,
             "why": r.why, "how_to_fix": r.how_to_fix, "references": list(r.references)}
            for r in data.rules
        ],
        "coverage": {
            "periods": [{"period": p.period, "line_items": p.rows, "provisional": p.provisional}
                        for p in data.coverage.periods],
            "missing_periods": list(data.coverage.missing_periods),
            "accounts": [{"provider": p, "billing_account_id": a, "periods": ps, "currencies": cs, "line_items": n}
                         for p, a, ps, cs, n in data.coverage.accounts()],
            "loads": [{"provider": x.provider, "billing_account_id": x.billing_account_id, "period": x.period,
                       "source_export": x.source_export, "source_format": x.source_format,
                       "format_version": x.format_version, "rows": x.rows, "currency": x.currency,
                       "source_total": _money(x.source_total), "stored_total": _money(x.stored_total),
                       "basis": x.basis, "state": x.state, "note": x.note} for x in data.coverage.loads],
            "skipped": [{"kind": s.kind, "subject": s.subject, "reason": s.reason} for s in data.coverage.skipped],
        },
        "changes": data.changes,
    }


def _escaped(text: str) -> str:
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)  # these characters only occur inside JSON strings
    return text


def write_json(data: ReportData, stream: BinaryIO) -> None:
    """The JSON report, UTF-8, indented; markup characters \\u-escaped. The findings are encoded
    one at a time into their place in the document (the same text as encoding it whole)."""
    document = json.dumps(report_document(data, with_findings=False), ensure_ascii=False, indent=2, default=str)
    # A raw newline never occurs inside a JSON string, so only the top-level key matches this.
    key = '\n  "findings": '
    head, found, tail = document.partition(key + json.dumps(_FINDINGS_SLOT))
    assert found, "the findings slot is missing from the JSON document"
    stream.write(_escaped(head + key).encode("utf-8"))
    first = True
    for f in data.findings:
        item = json.dumps(_finding_document(f), ensure_ascii=False, indent=2, default=str)
        item = "\n".join("    " + line for line in item.split("\n"))
        stream.write(_escaped(("[\n" if first else ",\n") + item).encode("utf-8"))
        first = False
    stream.write(("[]" if first else "\n  ]").encode("utf-8"))
    stream.write((_escaped(tail) + "\n").encode("utf-8"))


def render_json(data: ReportData) -> bytes:
    """`write_json` into memory."""
    buffer = io.BytesIO()
    write_json(data, buffer)
    return buffer.getvalue()
