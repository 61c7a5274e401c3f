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
from functools import cache
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from .charts import Chart, currency_charts
from .data import ReportData
from .safe import gigabytes, money, percent


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


def render_html(data: ReportData) -> str:
    """The report as one HTML document."""
    css = stylesheet()
    template = _environment().get_template("report.html.j2")
    return template.render(
        data=data, run=data.run, css=Markup(css), csp=content_security_policy(css), span=data.run.span,
        counts=data.status_counts(), families=data.families(), charts=report_charts(data),
    )
