"""The HTML report: one self-contained file, readable offline and as an email attachment.

Rendered with Jinja2 with autoescape on, so every value from the store is text. The page has no
script and references nothing outside itself: the stylesheet is inlined and allowed by its hash
in the page's Content-Security-Policy (``default-src 'none'``), charts are inline SVG. Print
styles give clean A4 pages (Print to PDF).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from .charts import Chart, currency_charts
from .data import FindingRow, ReportData
from .safe import gigabytes, money, percent

# Findings shown in full per family and currency (open first, then suppressed, by saving). A
# month of a large estate yields hundreds of thousands of findings: the HTML stays a document a
# person reads and mails, and the rest are counted with their saving and left to the CSV, XLSX
# and JSON reports and the store. 0 shows every finding.
HTML_FINDINGS_PER_FAMILY = 100


def _evidence(value: object) -> str:
    """An evidence value as text: lists joined, objects as JSON (escaped by the template)."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(_evidence(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("costaudit.reports", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters.update(money=money, gb=gigabytes, percent=percent, evidence=_evidence)
    return env


@cache
def stylesheet() -> str:
    """The report's CSS (a package asset)."""
    return resources.files("costaudit.reports").joinpath("assets/report.css").read_text(encoding="utf-8")


def content_security_policy(css: str) -> str:
    """Nothing may load or run; only the inlined stylesheet, identified by its SHA-256, applies."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; style-src 'sha256-{digest}'; script-src 'none'; img-src 'none'; "
            "font-src 'none'; connect-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'")


def report_charts(data: ReportData) -> list[tuple[str, list[Chart]]]:
    """(currency, charts) for every currency of the report."""
    # Every month of the window, so the time axis is regular; months without bills show no column
    # (and are listed under data coverage).
    months = data.run.months() or list(data.run.periods)
    return [(spend.currency, currency_charts(spend, months, data.top_findings(spend.currency)))
            for spend in data.currencies]


@dataclass
class FamilySection:
    """One family's findings as the HTML shows them: the first `limit` per currency and status
    class in full, the others counted (with their open saving per currency)."""

    family: str
    open_count: int
    suppressed_count: int
    shown: list[FindingRow]
    hidden: int
    hidden_savings: list[tuple[str, Decimal]]
    not_assessed_shown: list[FindingRow]
    not_assessed_hidden: int


def _first_per_currency(items: list[FindingRow], limit: int) -> tuple[list[FindingRow], list[FindingRow]]:
    """(shown, hidden): the first `limit` of each currency, in the given order (by saving)."""
    if limit <= 0:
        return items, []
    seen: dict[str | None, int] = defaultdict(int)
    shown, hidden = [], []
    for item in items:
        seen[item.currency] += 1
        (shown if seen[item.currency] <= limit else hidden).append(item)
    return shown, hidden


def family_sections(data: ReportData, limit: int = HTML_FINDINGS_PER_FAMILY) -> list[FamilySection]:
    """Each family of the run with the findings the HTML shows in full and what it only counts.

    Counts and hidden savings come from `ReportData.finding_counts` (every finding, counted in
    SQL), so they are right also when `data.findings` holds only the largest of each group."""
    by_family: dict[str, dict[str, list[FindingRow]]] = defaultdict(lambda: defaultdict(list))
    for finding in data.findings:  # already ordered by currency and saving
        by_family[finding.family][finding.status].append(finding)
    sections = []
    for family in data.families():
        groups = by_family.get(family, {})
        open_shown, _ = _first_per_currency(groups.get("open", []), limit)
        sup_shown, _ = _first_per_currency(groups.get("suppressed", []), limit)
        na_shown, _ = _first_per_currency(groups.get("not_assessed", []), limit)
        open_count, suppressed_count = data.count_of(family, "open"), data.count_of(family, "suppressed")
        savings: dict[str, Decimal] = defaultdict(Decimal)
        if data.finding_counts:
            for (fam, status, currency), (_, saving) in data.finding_counts.items():
                if fam == family and status == "open" and currency and saving is not None:
                    savings[currency] += saving
        else:
            for item in groups.get("open", []):
                if item.currency and item.estimated_monthly_saving is not None:
                    savings[item.currency] += item.estimated_monthly_saving
        for item in open_shown:  # what is shown is not part of "the rest"
            if item.currency and item.estimated_monthly_saving is not None:
                savings[item.currency] -= item.estimated_monthly_saving
        hidden = open_count + suppressed_count - len(open_shown) - len(sup_shown)
        hidden_open = open_count - len(open_shown)
        sections.append(FamilySection(
            family=family, open_count=open_count, suppressed_count=suppressed_count,
            shown=open_shown + sup_shown, hidden=hidden,
            hidden_savings=sorted((c, v) for c, v in savings.items() if hidden_open and v),
            not_assessed_shown=na_shown,
            not_assessed_hidden=data.count_of(family, "not_assessed") - len(na_shown),
        ))
    return sections


def render_html(data: ReportData, findings_per_family: int = HTML_FINDINGS_PER_FAMILY) -> str:
    """The report as one HTML document; `findings_per_family` caps the findings shown in full
    per family, currency and status (0: all)."""
    css = stylesheet()
    template = _environment().get_template("report.html.j2")
    return template.render(
        data=data, run=data.run, css=Markup(css), csp=content_security_policy(css), span=data.run.span,
        counts=data.status_counts(), sections=family_sections(data, findings_per_family),
        charts=report_charts(data), limit=findings_per_family,
    )
