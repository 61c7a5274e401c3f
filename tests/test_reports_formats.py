"""`costaudit report` on the bundled demo data: which run it reports, the numbers it shows
(checked against SQL written here over the store), and the JSON, CSV, XLSX and Markdown files."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path

import jsonschema
import openpyxl
import pytest

from costaudit.errors import CostauditError, UsageError
from costaudit.loader import load_paths
from costaudit.reports import build_report_data, write_report
from costaudit.reports.safe import money
from costaudit.store import connect

from . import focus_rows
from .reports_support import copy_store, demo_reports, run_cli


def expected_first_month(con) -> str:
    return con.execute("SELECT strftime(min(BillingPeriodStart), '%Y-%m') FROM current_line_items").fetchall()[0][0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_reports(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def expected(demo):
    """Per currency, straight from the store: spend and AI on EffectiveCost in the run's window,
    and the open findings' savings, exact."""
    store, _, _ = demo
    con = connect(store, read_only=True)
    try:
        [(run_id, since, until)] = con.execute(
            "SELECT run_id, since, until FROM runs WHERE status = 'complete'").fetchall()
        window = {"since": since, "until": until}
        spend = dict(con.execute(
            """SELECT BillingCurrency, sum(EffectiveCost) FROM current_line_items
               WHERE BillingPeriodStart >= $since AND BillingPeriodStart < $until GROUP BY 1""", window).fetchall())
        ai = dict(con.execute("SELECT BillingCurrency, sum(EffectiveCost) FROM ai_spend GROUP BY 1").fetchall())
        saving = dict(con.execute(
            """SELECT currency, sum(estimated_monthly_saving) FROM findings
               WHERE run_id = ? AND status = 'open' GROUP BY 1""", [run_id]).fetchall())
        findings = con.execute("SELECT count(*) FROM findings WHERE run_id = ?", [run_id]).fetchall()[0][0]
        families = {f for (f,) in con.execute("SELECT DISTINCT family FROM findings WHERE run_id = ?", [run_id]).fetchall()}
    finally:
        con.close()
    return {"run_id": run_id, "spend": spend, "ai": ai, "saving": saving, "findings": findings, "families": families}


def test_report_runs_the_audit_on_a_fresh_store(demo, expected):
    store, out, output = demo
    assert "made for this report: no audit run in the store yet" in output
    for ext in ("html", "xlsx", "csv", "json", "md"):
        assert (out / f"costaudit-report.{ext}").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    document = json.loads((out / "costaudit-report.json").read_text(encoding="utf-8"))
    assert document["run"]["run_id"] == expected["run_id"]
    assert document["run"]["made_for_report"] is True
    assert expected["findings"] > 0 and {"compute", "storage"} <= expected["families"]


def test_a_current_run_is_reused_and_a_new_window_audited(demo, tmp_path):
    store, _, _ = demo
    con = connect(copy_store(store, tmp_path))
    try:
        [(runs_before,)] = con.execute("SELECT count(*) FROM runs").fetchall()
        again = build_report_data(con)
        assert not again.audit_ran and again.run.is_latest
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == runs_before
        narrowed = build_report_data(con, since="2024-09")
        assert narrowed.audit_ran and f"{narrowed.run.since:%Y-%m}" == "2024-09"
        assert {p.period for p in narrowed.coverage.periods} == {"2024-09", "2024-10"}
        independent = dict(con.execute(
            """SELECT BillingCurrency, sum(EffectiveCost) FROM current_line_items
               WHERE BillingPeriodStart >= '2024-09-01' GROUP BY 1""").fetchall())
        assert {c.currency: c.effective for c in narrowed.currencies if c.effective} == independent
        # The earlier run is still reportable as it was; it is no longer the latest.
        old = build_report_data(con, run_id=again.run.run_id)
        assert not old.run.is_latest and old.changes is None
        assert old.run.findings_open == again.run.findings_open
        # The latest run now has a previous one: the changes between the two are counted.
        latest = build_report_data(con, since="2024-09")
        assert not latest.audit_ran and latest.changes and sum(latest.changes.values()) > 0
        # Without --since/--until the latest run is fine whatever its window ...
        assert build_report_data(con).run.run_id == latest.run.run_id
        # ... until a bill is loaded after it: then the report audits again, over every month.
        load_paths(con, [str(focus_rows.write(tmp_path / "late.csv", [focus_rows.row(period="2024-11")]))])
        fresh = build_report_data(con)
        assert fresh.audit_ran and f"{fresh.run.since:%Y-%m}" == expected_first_month(con)
        assert any("bills were loaded after the latest audit run" in note for note in fresh.notes)
        assert "2024-11" in fresh.run.periods
    finally:
        con.close()


def test_a_read_only_store_reports_but_cannot_audit(demo, expected):
    store, _, _ = demo
    con = connect(store, read_only=True)
    try:
        current = build_report_data(con)  # the latest run is current: nothing to write
        assert current.run.run_id == expected["run_id"] and not current.audit_ran
        with pytest.raises(CostauditError, match="open it writable or run `costaudit audit` first"):
            build_report_data(con, since="2024-10")
    finally:
        con.close()


def report_data(store, run_id: str):
    """The report data of a stored run, from the store opened read-only."""
    con = connect(store, read_only=True)
    try:
        return build_report_data(con, run_id=run_id)
    finally:
        con.close()


def test_summary_figures_match_the_store(demo, expected):
    store, _, _ = demo
    data = report_data(store, expected["run_id"])
    by_currency = {c.currency: c for c in data.currencies}
    assert set(by_currency) == set(expected["spend"]) == {"EUR", "USD"}
    for currency, total in expected["spend"].items():
        assert by_currency[currency].total == total  # exact, not rounded
        assert by_currency[currency].ai == expected["ai"][currency]
        assert by_currency[currency].estimated_saving == expected["saving"][currency]
        assert by_currency[currency].ai_share == (expected["ai"][currency] * 100 / total).quantize(Decimal("0.1"))


def test_json_report_follows_its_schema_with_exact_amounts(demo, expected):
    _, out, _ = demo
    document = json.loads((out / "costaudit-report.json").read_text(encoding="utf-8"))
    schema = json.loads(resources.files("costaudit.reports").joinpath("schema/report-1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors[:5]
    assert document["schema_version"] == "1.0"
    for item in document["currencies"]:
        assert Decimal(item["spend"]["effective"]) == expected["spend"][item["currency"]]
        assert Decimal(item["estimated_monthly_saving"]) == expected["saving"][item["currency"]]
    assert len(document["findings"]) == expected["findings"]
    # The schema is strict: an amount as a JSON number, or an unknown property, is refused.
    broken = json.loads(json.dumps(document))
    broken["currencies"][0]["estimated_monthly_saving"] = 12.5
    assert list(validator.iter_errors(broken))
    broken = json.loads(json.dumps(document))
    broken["findings"][0]["surprise"] = True
    assert list(validator.iter_errors(broken))


def test_csv_report_lists_every_finding_with_numbers_and_currencies(demo, expected):
    _, out, _ = demo
    text = (out / "costaudit-report.csv").read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    rows = [dict(zip(header, r, strict=True)) for r in reader]
    assert len(rows) == expected["findings"]
    assert header[header.index("monthly_cost_in_scope") + 1] == "cost_currency"
    assert header[header.index("estimated_monthly_saving") + 1] == "saving_currency"
    totals: dict[str, Decimal] = {}
    for r in rows:
        assert r["run_id"] == expected["run_id"]
        if r["status"] == "open":
            totals[r["saving_currency"]] = totals.get(r["saving_currency"], Decimal(0)) + Decimal(r["estimated_monthly_saving"])
    assert totals == expected["saving"]


def test_xlsx_report_reads_back_as_numbers_with_currencies(demo, expected):
    _, out, _ = demo
    workbook = openpyxl.load_workbook(out / "costaudit-report.xlsx")
    assert workbook.sheetnames[0] == "Summary"
    for family in expected["families"]:
        assert f"{family.capitalize()} findings" in workbook.sheetnames
    amount_headers = {"Amount", "Monthly cost in scope", "Estimated monthly saving", "Billed cost", "Effective cost",
                      "Source total", "Stored total"}
    seen_amounts = 0
    for sheet in workbook.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}{sheet.max_row}", sheet.title
        headers = [c.value for c in sheet[1]]
        for index, header in enumerate(headers):
            if header not in amount_headers:
                continue
            assert headers[index + 1] == "Currency", (sheet.title, header)
            for cells in sheet.iter_rows(min_row=2, min_col=index + 1, max_col=index + 2):
                amount, currency = cells
                if amount.value is not None:
                    seen_amounts += 1
                    assert amount.data_type == "n" and amount.number_format == "#,##0.00", (sheet.title, header)
                    assert isinstance(currency.value, str) and len(currency.value) == 3, (sheet.title, header)
    assert seen_amounts > 100
    saving: dict[str, Decimal] = {}
    for sheet in (workbook[f"{family.capitalize()} findings"] for family in expected["families"]):
        headers = [c.value for c in sheet[1]]
        status, amount = headers.index("Status"), headers.index("Estimated monthly saving")
        for values in sheet.iter_rows(min_row=2, values_only=True):
            if values[status] == "open":
                currency = values[amount + 1]
                saving[currency] = saving.get(currency, Decimal(0)) + Decimal(str(values[amount]))
    assert set(saving) == set(expected["saving"])
    for currency, total in expected["saving"].items():
        assert abs(saving[currency] - total) < Decimal("0.000001")
    summary = {(r[0], r[1], r[2]): r[3] for r in workbook["Summary"].iter_rows(min_row=2, values_only=True)}
    for currency, total in expected["spend"].items():
        assert abs(Decimal(str(summary[(currency, "Spend", "EffectiveCost")])) - total) < Decimal("0.000001")


def test_markdown_summary_shows_the_headline_figures(demo, expected):
    _, out, _ = demo
    text = (out / "costaudit-report.md").read_text(encoding="utf-8")
    assert text.startswith("# Cloud cost audit: ")
    for currency, total in expected["spend"].items():
        line = next(line for line in text.splitlines() if line.startswith(f"| {currency} |"))
        assert money(total) in line and money(expected["saving"][currency]) in line
    assert "## Top findings by estimated monthly saving (USD)" in text


def test_write_report_targets_and_atomicity(demo, tmp_path, monkeypatch):
    store, _, _ = demo
    con = connect(store, read_only=True)
    try:
        data = build_report_data(con, run_id=json.loads(
            (demo[1] / "costaudit-report.json").read_text())["run"]["run_id"])
    finally:
        con.close()
    assert write_report(data, "md", tmp_path) == tmp_path / "costaudit-report.md"
    named = write_report(data, "json", tmp_path / "weekly.json")
    assert named == tmp_path / "weekly.json" and json.loads(named.read_text())["schema_version"] == "1.0"
    with pytest.raises(CostauditError, match="folder does not exist"):
        write_report(data, "csv", tmp_path / "missing" / "x.csv")
    with pytest.raises(UsageError, match="expected one of"):
        write_report(data, "pdf", tmp_path)
    # A failed rename leaves the old report untouched and no temporary file behind.
    before = named.read_bytes()

    def refuse(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("costaudit.reports.write.os.replace", refuse)
    with pytest.raises(CostauditError, match="cannot write the report"):
        write_report(data, "json", named)
    assert named.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["costaudit-report.md", "weekly.json"]


def test_report_command_errors_are_one_clear_line(demo, tmp_path):
    store, _, _ = demo
    result = run_cli(tmp_path / "nothing.duckdb", "report")
    assert result.exit_code == 1 and "no store here yet" in result.output
    result = run_cli(store, "report", "--format", "html", "--format", "md", "--out", str(tmp_path / "one.html"))
    assert result.exit_code == 2 and "several formats" in result.output
    result = run_cli(store, "report", "--run-id", "no-such-run", "--out", str(tmp_path))
    assert result.exit_code == 1 and "no audit run 'no-such-run'" in result.output
    empty = tmp_path / "empty.duckdb"
    connect(empty).close()
    result = run_cli(empty, "report", "--out", str(tmp_path))
    assert result.exit_code == 1 and "no billing data" in result.output


@pytest.mark.parametrize("suffix", ["", ".wal"])
def test_a_report_is_never_written_over_the_store(demo, tmp_path, suffix):
    store, _, _ = demo
    copy = copy_store(store, tmp_path)
    before = copy.read_bytes()
    result = run_cli(copy, "report", "--format", "json", "--out", str(copy) + suffix)
    assert result.exit_code == 2 and "that is the store" in result.output
    assert copy.read_bytes() == before and not Path(str(copy) + ".wal").exists()
    con = connect(copy, read_only=True)
    assert con.execute("SELECT count(*) FROM line_items").fetchone()[0] > 0
    con.close()


def test_every_format_renders_a_run_without_findings(tmp_path):
    """A small bill, no rules: empty sections say so, and the JSON still follows the schema."""
    con = connect(tmp_path / "small.duckdb")
    try:
        load_paths(con, [str(focus_rows.write(tmp_path / "bill.csv", [focus_rows.row(cost="12.345678")]))])
        data = build_report_data(con, rules=[])
    finally:
        con.close()
    assert data.audit_ran and data.findings == [] and data.rules == []
    assert [(c.currency, c.billed) for c in data.currencies] == [("USD", Decimal("12.345678"))]
    written = {fmt: write_report(data, fmt, tmp_path) for fmt in ("html", "xlsx", "csv", "json", "md")}
    html = written["html"].read_text(encoding="utf-8")
    assert "No rule ran." in html and 'data-key="saving-USD">0.00 USD' in html
    document = json.loads(written["json"].read_text(encoding="utf-8"))
    schema = json.loads(resources.files("costaudit.reports").joinpath("schema/report-1.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["currencies"][0]["spend"]["billed"] == "12.345678"  # exact, not rounded to the cent
    assert written["csv"].read_bytes().count(b"\r\n") == 1  # the header only (CRLF, RFC 4180)
    assert openpyxl.load_workbook(written["xlsx"]).sheetnames[0] == "Summary"
    assert "| USD | 12.35 |" in written["md"].read_text(encoding="utf-8")


def test_html_shows_the_largest_findings_per_family_and_counts_the_rest(demo, expected, tmp_path):
    """With --html-findings 2 each family shows its 2 largest open findings per currency in full
    and names how many more there are and their open saving, computed here in SQL; the default
    shows every demo finding (fewer than 100 per family)."""
    import re
    from html import unescape

    store, out, _ = demo
    con = connect(store, read_only=True)
    try:
        per = con.execute(
            """SELECT family, count(*) FILTER (WHERE rn <= 2), count(*) FILTER (WHERE rn > 2),
                      list(DISTINCT currency ORDER BY currency) FILTER (WHERE rn > 2)
               FROM (SELECT family, currency, status, row_number() OVER (
                       PARTITION BY family, currency, status ORDER BY estimated_monthly_saving DESC NULLS LAST) AS rn
                     FROM findings WHERE run_id = ? AND status IN ('open', 'suppressed'))
               GROUP BY family""", [expected["run_id"]]).fetchall()
        hidden_saving = {
            (family, currency): saving for family, currency, saving in con.execute(
                """SELECT family, currency, sum(estimated_monthly_saving) FROM (
                     SELECT *, row_number() OVER (PARTITION BY family, currency, status
                                                  ORDER BY estimated_monthly_saving DESC NULLS LAST) AS rn
                     FROM findings WHERE run_id = ? AND status = 'open') WHERE rn > 2 GROUP BY ALL""",
                [expected["run_id"]]).fetchall()}
    finally:
        con.close()
    assert any(hidden for _, _, hidden, _ in per), "the demo run should have a family with more than 2 findings"

    result = run_cli(store, "report", "--format", "html", "--html-findings", "2", "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    full = (out / "costaudit-report.html").read_text(encoding="utf-8")
    for family, shown, hidden, currencies in per:
        section = re.search(rf'<section class="family" id="family-{family}".*?</section>', page, re.S).group(0)
        assert section.count('<article class="finding') == shown
        full_section = re.search(rf'<section class="family" id="family-{family}".*?</section>', full, re.S).group(0)
        assert full_section.count('<article class="finding') == shown + hidden
        if not hidden:
            assert 'class="more"' not in section
            continue
        note = unescape(re.search(r'<p class="more" data-hidden="(\d+)">(.*?)</p>', section, re.S).group(2))
        assert note.startswith(f"{hidden} more {family} finding")
        for currency in currencies or []:
            if (family, currency) in hidden_saving:
                assert f"{money(hidden_saving[(family, currency)])} {currency}" in note


def test_html_and_markdown_read_only_the_findings_they_show(demo, expected, tmp_path):
    """A report of HTML / Markdown only reads the largest findings of each family, status and
    currency (at 50M rows a run holds ~10^6 findings) and counts the rest in SQL: the pages are
    the same as from every finding, and the formats that list every finding refuse such data."""
    import re
    from dataclasses import replace

    from costaudit.reports import findings_limit
    from costaudit.reports.html import render_html
    from costaudit.reports.markdown import render_markdown

    store, _, _ = demo
    con = connect(store, read_only=True)
    try:
        complete = build_report_data(con, run_id=expected["run_id"])
        partial = build_report_data(con, run_id=expected["run_id"], findings_limit=1)
    finally:
        con.close()
    partial = replace(partial, generated_at=complete.generated_at)
    assert len(complete.findings) == expected["findings"]
    assert len(partial.findings) < len(complete.findings)
    assert not partial.findings_complete and complete.findings_complete
    assert partial.status_counts() == complete.status_counts()
    assert sum(partial.status_counts().values()) == expected["findings"]
    assert partial.families() == complete.families()
    assert partial.coverage == complete.coverage and partial.rules == complete.rules
    # Same page, but for the "top findings" chart, which shows the 10 largest per currency and so
    # needs findings_limit >= 10 (findings_limit() never asks for fewer).
    def without_charts(page: str) -> str:
        return re.sub(r'<section id="charts">.*?</section>', "", page, flags=re.S)

    assert without_charts(render_html(partial, 1)) == without_charts(render_html(complete, 1))
    assert 'class="more"' in render_html(partial, 1)
    assert render_markdown(partial, top=1) == render_markdown(complete, top=1)
    with pytest.raises(ValueError, match="lists every finding"):
        write_report(partial, "csv", tmp_path)

    assert findings_limit(("html",)) == 100 and findings_limit(("html",), 3) == 10
    assert findings_limit(("md",)) == 10 and findings_limit(("html", "md"), 0) is None
    assert findings_limit(("html", "csv")) is None and findings_limit(("xlsx",)) is None


def _xlsx_contents(path) -> dict:
    """Every sheet's cell values, number formats, quote prefixes, freeze pane and filter."""
    book = openpyxl.load_workbook(path)
    return {
        ws.title: (ws.freeze_panes, ws.auto_filter.ref,
                   [[(c.value, c.number_format, c.quotePrefix) for c in row] for row in ws.iter_rows()])
        for ws in book.worksheets
    }


def test_a_run_with_many_findings_is_streamed_to_the_same_files(demo, expected, tmp_path, monkeypatch):
    """Above `build.STREAM_ABOVE` findings a full report does not read them into memory: they are
    copied to Parquet and read back in batches (`StoredFindings`), and CSV, JSON and XLSX are
    written as they come. With the threshold at 0 and batches of 2, the demo run's CSV and JSON
    are byte for byte the files written from the list, and the XLSX holds the same cells."""
    from costaudit.reports import build

    store, _, _ = demo
    con = connect(store, read_only=True)
    try:
        listed = build_report_data(con, run_id=expected["run_id"])
        monkeypatch.setattr(build, "STREAM_ABOVE", 0)
        monkeypatch.setattr(build, "_STREAM_BATCH", 2)
        streamed = build_report_data(con, run_id=expected["run_id"])
    finally:
        con.close()
    streamed.generated_at = listed.generated_at  # the one field that differs between the two builds
    assert isinstance(listed.findings, list) and isinstance(streamed.findings, build.StoredFindings)
    assert len(streamed.findings) == len(listed.findings) == expected["findings"] > 2
    assert list(streamed.findings) == listed.findings and list(streamed.findings) == listed.findings  # re-iterable
    for fmt in ("csv", "json", "xlsx"):
        (tmp_path / "list").mkdir(exist_ok=True)
        (tmp_path / "stream").mkdir(exist_ok=True)
        a = write_report(listed, fmt, tmp_path / "list")
        b = write_report(streamed, fmt, tmp_path / "stream")
        if fmt == "xlsx":
            assert _xlsx_contents(a) == _xlsx_contents(b)
        else:
            assert a.read_bytes() == b.read_bytes(), fmt
    doc = json.loads((tmp_path / "stream" / "costaudit-report.json").read_text())
    assert len(doc["findings"]) == expected["findings"]


def test_a_findings_table_longer_than_a_sheet_continues_on_the_next(demo, expected, tmp_path, monkeypatch):
    """Excel holds 1,048,576 rows a sheet: a longer family table goes on '<title> (2)' and so on,
    each with its header, and no finding is lost."""
    from costaudit.reports import xlsx

    store, _, _ = demo
    data = report_data(store, expected["run_id"])
    family = max(data.families(), key=lambda f: len(data.findings_of(f)))
    rows = len(data.findings_of(family))
    assert rows >= 3
    monkeypatch.setattr(xlsx, "MAX_SHEET_ROWS", 3)  # a header and two findings per sheet
    book = openpyxl.load_workbook(write_report(data, "xlsx", tmp_path))
    title = f"{family.capitalize()} findings"
    parts = [ws for ws in book.worksheets if ws.title == title or ws.title.startswith(f"{title[:25]} (")]
    assert len(parts) == (rows + 1) // 2
    assert all(ws.cell(1, 1).value == "Status" for ws in parts)
    fingerprints = [row[-1] for ws in parts for row in ws.iter_rows(min_row=2, values_only=True)]
    assert sorted(fingerprints) == sorted(f.fingerprint for f in data.findings_of(family))


def test_xlsx_text_longer_than_a_cell_says_it_was_cut():
    """Excel holds 32,767 characters a cell; a longer value (an evidence JSON, a long id) is cut
    with a note saying how much is missing, never silently."""
    from costaudit.reports.xlsx import MAX_CELL_TEXT, _fit

    assert _fit("a" * MAX_CELL_TEXT) == "a" * MAX_CELL_TEXT
    long = "b" * 40_000
    cut = _fit(long)
    assert len(cut) <= MAX_CELL_TEXT and long.startswith(cut.split(" [")[0])
    kept = len(cut.split(" [")[0])
    assert cut.endswith(f" [... cut: {40_000 - kept:,} more characters; the JSON report has it all]")
