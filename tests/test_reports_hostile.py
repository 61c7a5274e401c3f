"""Hostile values from the bills (tags, resource ids, account ids, regions) and from a rule's text
are shown as text in every report format: escaped in HTML, Markdown and JSON, neutralised as
formulas in CSV and XLSX, while amounts (a negative one too) stay numbers."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from decimal import Decimal
from importlib import resources

import jsonschema
import openpyxl
import pytest

from costaudit.loader import load_paths
from costaudit.reports import build_report_data, write_report
from costaudit.reports.safe import FORMULA_TRIGGERS, needs_formula_guard
from costaudit.store import connect

from .reports_support import (
    AT,
    CHROMIUM,
    CMD,
    DASH,
    FORMULA,
    FULLWIDTH,
    HOSTILE,
    IMG,
    MARKDOWN,
    SCRIPT,
    TAB,
    Chromium,
    hostile_bills,
    hostile_rules,
)

FORMULA_LIKE = (FORMULA, CMD, AT, DASH, FULLWIDTH, TAB)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    con = connect(folder / "hostile.duckdb")
    try:
        load_paths(con, [str(hostile_bills(folder / "bills"))])
        data = build_report_data(con, rules=hostile_rules())
    finally:
        con.close()
    out = folder / "out"
    out.mkdir()
    files = {fmt: write_report(data, fmt, out) for fmt in ("html", "xlsx", "csv", "json", "md")}
    return data, files


def test_the_store_really_holds_the_hostile_values(hostile):
    data, _ = hostile
    resources_found = {f.resource_id for f in data.findings}
    assert set(HOSTILE) <= resources_found
    assert {f.billing_account_id for f in data.findings} == {FORMULA}
    routes = [r.route for c in data.currencies for r in c.top_routes]
    assert routes == [f"{SCRIPT} -> {FORMULA}"]
    credit = next(f for f in data.findings if f.resource_id == "net-credit")
    assert credit.estimated_monthly_saving == Decimal("-20.05")


def test_html_escapes_everything(hostile):
    _, files = hostile
    text = files["html"].read_text(encoding="utf-8")
    assert SCRIPT not in text and "<img" not in text and "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;" in text


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (Debian package 'chromium')")
def test_html_in_chromium_shows_hostile_text_as_text(hostile):
    data, files = hostile
    browser = Chromium()
    try:
        browser.open(files["html"])
        facts = browser.evaluate("""(() => ({
          title: document.title,
          scripts: document.querySelectorAll('script').length,
          images: document.querySelectorAll('img').length,
          text: document.body.innerText,
          chartText: [...document.querySelectorAll('svg text, svg title')].map(t => t.textContent),
          routeBars: document.querySelectorAll('svg[data-chart="top-routes"] rect.bar').length,
          resources: performance.getEntriesByType('resource').length}))()""")
        problems = browser.problems()
    finally:
        browser.close()
    assert problems == []
    assert facts["title"] == f"Cloud cost audit {data.run.run_id}"  # no injected script renamed it
    assert facts["scripts"] == 0 and facts["images"] == 0 and facts["resources"] == 0
    for value in (SCRIPT, IMG, FORMULA, CMD, "[link](http://evil.example)"):
        assert value in facts["text"]
    assert any(SCRIPT in t for t in facts["chartText"])
    assert facts["routeBars"] == 1  # the negative route (a credit) is still one bar


def test_csv_neutralises_formulas_and_keeps_amounts_numeric(hostile):
    data, files = hostile
    reader = csv.reader(io.StringIO(files["csv"].read_text(encoding="utf-8")))
    header = next(reader)
    rows = [dict(zip(header, r, strict=True)) for r in reader]
    numeric = {"monthly_cost_in_scope", "estimated_monthly_saving"}
    for r in rows:
        for column, cell in r.items():
            if column in numeric:
                assert cell == "" or Decimal(cell) is not None
            else:
                assert not needs_formula_guard(cell) or cell.startswith("'"), (column, cell)
                assert not cell or cell[0] not in FORMULA_TRIGGERS, (column, cell)
    by_resource = {r["resource_id"]: r for r in rows}
    for value in FORMULA_LIKE:
        assert "'" + value in by_resource, value
    assert by_resource[SCRIPT]["billing_account_id"] == "'" + FORMULA
    assert by_resource[SCRIPT]["sub_account_id"] == "'" + CMD
    assert by_resource["net-credit"]["estimated_monthly_saving"] == "-20.05"
    assert by_resource["net-credit"]["saving_currency"] == "USD"


def test_xlsx_keeps_hostile_text_as_text(hostile):
    _, files = hostile
    workbook = openpyxl.load_workbook(files["xlsx"])
    strings = 0
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and needs_formula_guard(cell.value):
                    strings += 1
                    assert cell.quotePrefix, (sheet.title, cell.coordinate, cell.value)
    assert strings >= len(FORMULA_LIKE)
    findings = workbook["Other findings"]
    headers = [c.value for c in findings[1]]
    resource, saving = headers.index("Resource"), headers.index("Estimated monthly saving")
    values = {r[resource]: r for r in findings.iter_rows(min_row=2, values_only=True)}
    for value in HOSTILE:
        assert value in values, value  # the exact text, not altered
    assert values["net-credit"][saving] == pytest.approx(-20.05)
    with zipfile.ZipFile(files["xlsx"]) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert not re.search(rb"<f[ >]", archive.read(name)), name


def test_markdown_escapes_markup(hostile):
    _, files = hostile
    text = files["md"].read_text(encoding="utf-8")
    outside_code = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)  # inside a code span < is shown as is
    assert not re.search(r"(?<!\\)[<>]", outside_code), "an unescaped < or > would be raw HTML"
    assert "\\<script\\>alert(1)\\</script\\>" in text
    # The Markdown probe holds a URL, so it is one code span: no link, emphasis, mention or cell in it.
    assert "``\\| *bold* _em_ [link](http://evil.example) `code` @channel $x$ \\|``" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    columns = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
    assert len(columns) == 1, table  # a hostile '|' cannot add a column


def test_markdown_rendered_as_gfm_with_autolinks_has_no_link_image_or_html(hostile):
    """Rendered the way chat tools and GitHub do (tables, strikethrough and autolinks: markdown-it's
    gfm-like preset with linkify), the hostile values add no element of their own: no link, image
    or raw HTML, and every table row keeps its cells."""
    from markdown_it import MarkdownIt

    _, files = hostile
    html = MarkdownIt("gfm-like", {"linkify": True}).render(files["md"].read_text(encoding="utf-8"))
    assert "<a " not in html and "<img" not in html and "<script" not in html, html
    assert "evil.example" in html  # the values are shown, as text
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        widths = {len(re.findall(r"<t[hd]", r)) for r in re.findall(r"<tr>.*?</tr>", table, re.S)}
        assert len(widths) == 1, table


def test_json_round_trips_hostile_text_exactly(hostile):
    _, files = hostile
    raw = files["json"].read_text(encoding="utf-8")
    assert "<" not in raw and ">" not in raw and "&" not in raw
    document = json.loads(raw)
    schema = json.loads(resources.files("costaudit.reports").joinpath("schema/report-1.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)
    found = {f["resource_id"]: f for f in document["findings"]}
    assert set(HOSTILE) <= set(found)
    assert found[SCRIPT]["billing_account_id"] == FORMULA
    assert found[SCRIPT]["evidence"]["team"] == IMG and found[SCRIPT]["evidence"]["note"] == MARKDOWN
    assert found["net-credit"]["estimated_monthly_saving"] == "-20.05"
