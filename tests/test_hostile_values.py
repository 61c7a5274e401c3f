"""Hostile text in a bill, end to end through the command line: whoever can tag a resource writes
into costaudit's store, terminal output, reports, SQL results and exports.

ONE small FOCUS 1.2 bill carries, in its tag keys and values, ResourceId, ResourceName,
SubAccountName, ServiceName, RegionId, ChargeDescription, a ProviderName and a BillingAccountId:
HTML and JavaScript, spreadsheet formulas (ASCII and full-width), SQL, path separators, a
template expression, rich console markup, a leading tab and a line break. It goes through
`costaudit load`, `summary`, `audit`, `report` (all five formats), `run`, `sql` (table, CSV,
JSON, Parquet) and `export focus` (CSV, Parquet), and every output is checked:

* the store keeps every value exactly, and the money reconciles to the cent;
* terminal output prints them literally (rich markup neither styles nor swallows them);
* HTML/Markdown escape them, JSON and Parquet round-trip them, CSV and XLSX neutralise formulas
  (the reports in depth: tests/test_reports_hostile.py); `sql --format csv` and `export focus
  --format csv` guard formulas by default and write text exactly with ``--raw``; amounts stay numbers;
* the SQL fragment never runs (line_items is intact), and no value chooses a path: each command
  writes exactly the files it was asked for, nothing else appears anywhere under the test folder.

Manifest keys with ``..`` or absolute paths are refused by the delivery readers: see
tests/test_aws_delivery.py::test_manifest_keys_never_reach_outside_the_given_folder,
tests/test_azure_delivery.py::test_blob_names_cannot_escape_the_given_files and
tests/test_pull_aws.py::test_keys_that_would_leave_the_download_folder_are_refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb
import openpyxl
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from costaudit.cli import main
from costaudit.reports.safe import (
    FORMULA_TRIGGERS,
    needs_formula_guard,
    spreadsheet_text,
    spreadsheet_text_sql,
)
from costaudit.schema import EXTRA_COLUMNS, FOCUS_COLUMNS, STR

from .focus_rows import HEADER, row, write

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://x","y")'
CMD = "+cmd|' /C calc'!A0"
DASH = "-2+3"
AT = "@SUM(1)"
FULLWIDTH = "\uff1d1+1"
TAB = "\tTAB"
SQL = "'; DROP TABLE line_items; --"
DOTDOT = "../../etc/passwd"
ABSOLUTE = "/abs/path"
WINDOWS = "C:\\evil"
TEMPLATE = "{{7*7}}"
RICH = "[bold red]rich[/]"
NEWLINE = "first\nsecond"
HOSTILE = (SCRIPT, IMG, FORMULA, CMD, DASH, AT, FULLWIDTH, TAB, SQL, DOTDOT, ABSOLUTE, WINDOWS, TEMPLATE, RICH, NEWLINE)
FORMULA_LIKE = (FORMULA, CMD, DASH, AT, FULLWIDTH, TAB)
# Values a terminal shows on one line as they are (a tab is expanded, a line break breaks the line).
ONE_LINE = tuple(v for v in HOSTILE if "\t" not in v and "\n" not in v)
TEXT_COLUMNS = ("ResourceId", "ResourceName", "SubAccountName", "ServiceName", "RegionId", "ChargeDescription")
STORE_TEXT = {name for name, kind, _ in [*FOCUS_COLUMNS, *EXTRA_COLUMNS] if kind == STR}
HOSTILE_ACCOUNT = DOTDOT  # a billing account id (and ledger key) that looks like a path
AUDIT_TOML = """
[rules.egress_network_share]   # one finding per resource: every hostile id becomes a finding
workload_by = "resource"
max_monthly_network_cost = 10.0
"""
REPORT_FORMATS = ("html", "xlsx", "csv", "json", "md")


def hostile_bill(path: Path) -> Path:
    """The bill: one network charge per hostile value (in every text column and the tags), two data
    transfer lines between hostile regions (one a credit, a negative amount), and an AI charge of
    a second billing account whose id is a relative path and whose provider is rich markup."""
    header = [*HEADER, "ResourceName", "SubAccountId", "SubAccountName", "RegionId", "x_FromRegionCode",
              "x_ToRegionCode", "ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit"]
    tags = json.dumps({value: value for value in HOSTILE})
    rows = [
        row(account="111122223333", cost=f"{100 + i}.{i:02d}", ServiceCategory="Networking", Tags=tags,
            SubAccountId="222233334444", **dict.fromkeys(TEXT_COLUMNS, value))
        for i, value in enumerate(HOSTILE)
    ]
    for resource, cost, gb, to in (("net-credit", "-20.05", "10", FORMULA), ("net-out", "30.07", "100", SCRIPT)):
        rows.append(row(account="111122223333", cost=cost, ServiceCategory="Networking", ServiceName="Network",
                        ChargeDescription="data transfer out", ResourceId=resource, RegionId=RICH,
                        x_FromRegionCode=RICH, x_ToRegionCode=to, ConsumedQuantity=gb, ConsumedUnit="GB",
                        PricingQuantity=gb, PricingUnit="GB", Tags=tags))
    rows.append(row(account=HOSTILE_ACCOUNT, cost="12.34", ProviderName=RICH, PublisherName=RICH,
                    InvoiceIssuerName=RICH, ServiceCategory="AI and Machine Learning", ServiceName=f"{SCRIPT} API",
                    ChargeDescription="input tokens", ResourceId=ABSOLUTE, Tags=tags))
    return write(path, rows, header)


# -- the session: every command once, with the files each one made ------------------------------


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() + ("/" if p.is_dir() and not p.is_symlink() else "")
            for p in root.rglob("*")}


@dataclass
class Session:
    root: Path
    bill: Path
    db: Path
    out: dict[str, Result] = field(default_factory=dict)
    made: dict[str, set[str]] = field(default_factory=dict)  # paths each command added under root
    gone: dict[str, set[str]] = field(default_factory=dict)
    line_items_after_load: int = 0

    def cli(self, name: str, *args: str, store: bool = True) -> Result:
        """Run a command on the session's store (or, with store=False, on the one its config names)."""
        before = _tree(self.root)
        result = CliRunner().invoke(main, [*(["--db", str(self.db)] if store else []), *args], catch_exceptions=False)
        after = _tree(self.root)
        self.out[name], self.made[name], self.gone[name] = result, after - before, before - after
        return result


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    root = tmp_path_factory.mktemp("hostile-e2e")
    inputs, work = root / "in", root / "work"
    work.mkdir()
    bill = hostile_bill(inputs / "bill.csv")
    config = inputs / "costaudit.toml"
    config.write_text(AUDIT_TOML)
    run_config = inputs / "run.toml"
    run_config.write_text(f"""
[store]
path = "../work/run/run.duckdb"
[[sources]]
name = "hostile"
provider = "local"
path = "bill.csv"
[reports]
formats = {json.dumps(list(REPORT_FORMATS))}
out = "../work/run/reports"
[run]
fail_on = "none"
{AUDIT_TOML}""")
    for folder in ("reports", "run", "run/reports"):
        (work / folder).mkdir()
    s = Session(root, bill, work / "store.duckdb")
    check = "SELECT ResourceId, BilledCost FROM line_items ORDER BY BilledCost, ResourceId"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)  # a relative path chosen by a value would land here
        patch.delenv("COSTAUDIT_DB", raising=False)
        s.cli("load", "load", str(bill))
        con = duckdb.connect(str(s.db), read_only=True)
        s.line_items_after_load = con.execute("SELECT count(*) FROM line_items").fetchone()[0]
        con.close()
        s.cli("summary", "summary", "--config", str(config))
        s.cli("audit", "audit", "--config", str(config), "--no-evidence")
        s.cli("audit-evidence", "audit", "--config", str(config))
        s.cli("report", "report", "--config", str(config), *[a for f in REPORT_FORMATS for a in ("--format", f)],
              "--out", str(work / "reports"))
        s.cli("run", "run", "--config", str(run_config), "--since", "2024-09", "--until", "2024-10", store=False)
        s.cli("sql-table", "sql", check)
        s.cli("sql-csv", "sql", check, "--format", "csv")
        s.cli("sql-csv-raw", "sql", check, "--format", "csv", "--raw")
        s.cli("sql-json", "sql", check, "--format", "json")
        s.cli("sql-parquet", "sql", check, "--out", "result.parquet")
        s.cli("sql-csv-out", "sql", check, "--out", "result.csv")
        s.cli("sql-pivot", "sql", "PIVOT (SELECT ResourceId, BilledCost FROM line_items WHERE ResourceId NOT LIKE 'net-%') "
              "ON ResourceId USING sum(BilledCost)", "--format", "csv")
        s.cli("export-csv", "export", "focus", "--out", "export-csv", "--format", "csv")
        s.cli("export-raw", "export", "focus", "--out", "export-raw", "--format", "csv", "--raw")
        s.cli("export-parquet", "export", "focus", "--out", "export-parquet")
    for name, result in s.out.items():
        assert result.exit_code == 0, (name, result.output)
    return s


def _store(session: Session, query: str, db: Path | None = None, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db or session.db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(query, params).fetchall()
    finally:
        con.close()


# -- the store ---------------------------------------------------------------------------------


def test_the_bill_loads_exactly_and_reconciles_to_the_cent(session):
    raw = duckdb.connect().execute(
        f"SELECT BillingAccountId, sum(CAST(BilledCost AS DECIMAL(38,12))), count(*) FROM read_csv("
        f"'{session.bill}', all_varchar = true) GROUP BY 1 ORDER BY 1").fetchall()
    stored = _store(session, "SELECT BillingAccountId, sum(BilledCost), count(*) FROM current_line_items GROUP BY 1 ORDER BY 1")
    assert stored == raw
    assert dict((a, t) for a, t, _ in stored) == {"111122223333": Decimal("1616.07"), HOSTILE_ACCOUNT: Decimal("12.34")}
    columns = ", ".join(TEXT_COLUMNS)
    rows = _store(session, f"SELECT {columns}, CAST(Tags AS VARCHAR) FROM line_items WHERE ServiceName <> 'Network' "
                           f"AND BillingAccountId = '111122223333'")
    assert {r[0] for r in rows} == set(HOSTILE)
    for *texts, tags in rows:
        assert len(set(texts)) == 1, texts  # every column holds the value exactly, tab and line break included
        assert json.loads(tags) == {value: value for value in HOSTILE}
    [(provider, account)] = _store(session, "SELECT ProviderName, BillingAccountId FROM line_items WHERE ResourceId = '/abs/path' "
                                            "AND ServiceCategory = 'AI and Machine Learning'")
    assert (provider, account) == (RICH, HOSTILE_ACCOUNT)


def test_the_sql_fragment_never_runs(session):
    tables = _store(session, "SELECT table_name FROM duckdb_tables() ORDER BY 1")
    assert ("line_items",) in tables
    assert _store(session, "SELECT count(*) FROM line_items") == [(session.line_items_after_load,)] == [(18,)]
    assert _store(session, "SELECT count(*) > 0 FROM findings WHERE resource_id = $1", params=[SQL]) == [(True,)]
    assert _store(session, "SELECT count(*) FROM line_items", db=session.root / "work" / "run" / "run.duckdb") == [(18,)]


# -- no value chooses a path -------------------------------------------------------------------


def test_each_command_writes_only_what_it_was_asked_for(session):
    store = {"work/store.duckdb"}
    expected = {
        "load": store,
        "summary": set(), "audit": set(), "audit-evidence": set(),
        "report": {f"work/reports/costaudit-report.{ext}" for ext in REPORT_FORMATS},
        "sql-table": set(), "sql-csv": set(), "sql-csv-raw": set(), "sql-json": set(), "sql-pivot": set(),
        "sql-parquet": {"work/result.parquet"}, "sql-csv-out": {"work/result.csv"},
    }
    for name, paths in expected.items():
        assert session.made[name] == paths, (name, session.made[name])
        assert session.gone[name] == set(), (name, session.gone[name])
    run_id = re.search(r"^Run (\S+):", session.out["run"].output, re.MULTILINE).group(1)
    assert session.made["run"] == {"work/run/run.duckdb", "work/run/run.duckdb.lock"} | {
        f"work/run/reports/costaudit-{run_id}.{ext}" for ext in REPORT_FORMATS}
    for name, ext in (("export-csv", "csv"), ("export-raw", "csv"), ("export-parquet", "parquet")):
        folder = f"work/{name}/"
        assert session.made[name] == {folder, f"{folder}focus-1.2/", f"{folder}focus-1.2/metadata.json",
                                      f"{folder}focus-1.2/billing_period=2024-09/",
                                      f"{folder}focus-1.2/billing_period=2024-09/part-0.{ext}"}, name
    # and nothing outside the test folder that a value names
    for outside in ("/abs", "/abs/path"):
        assert not os.path.lexists(outside), outside
    everything = " ".join(_tree(session.root))
    for fragment in ("passwd", "evil", "abs", "script", "DROP", "{{", "rich"):
        assert fragment not in everything, fragment


# -- terminal output ---------------------------------------------------------------------------


def test_load_prints_provider_and_account_literally(session):
    output = session.out["load"].output
    assert f"│ {RICH} │ {DOTDOT} │ 2024-09 │ USD " in re.sub(r" +", " ", output)
    assert "1,616.07" in output and "12.34" in output


def test_summary_prints_markup_and_html_literally(session):
    output = re.sub(r" +", " ", session.out["summary"].output)
    assert f"│ 2024-09 │ {RICH} │" in output  # AI spend by provider
    assert f"│ {RICH} -> {SCRIPT} │ internet │ 30.07 │" in output  # top routes
    assert f"│ {RICH} -> {FORMULA} │ internet │ -20.05 │" in output  # a credit stays a negative amount


def test_audit_prints_every_hostile_value(session):
    output = session.out["audit-evidence"].output
    for value in ONE_LINE:
        assert f"egress_network_share {value}\n" in output, value  # the evidence lines, printed as text
    table = session.out["audit"].output  # --no-evidence: the findings table only
    for value in ONE_LINE:
        assert value in table, value


def test_audit_findings_table_prints_markup_literally(session):
    """--no-evidence: the findings table is the only place the resource ids are printed."""
    assert f"│ {RICH} " in re.sub(r" +", " ", session.out["audit"].output)


def test_run_prints_the_findings_literally(session):
    output = session.out["run"].output
    for value in ONE_LINE:
        assert value in output, value


def test_sql_table_prints_markup_literally(session):
    output = session.out["sql-table"].output
    for value in ONE_LINE:
        assert value in output, value


# -- reports (in depth: tests/test_reports_hostile.py) -----------------------------------------


def _report(session: Session, ext: str) -> Path:
    return session.root / "work" / "reports" / f"costaudit-report.{ext}"


def test_reports_render_the_bill_safely_in_every_format(session):
    html = _report(session, "html").read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert TEMPLATE in html and RICH in html  # data is never a template or markup

    markdown = _report(session, "md").read_text(encoding="utf-8")
    assert not re.search(r"(?<!\\)[<>]", markdown) and "\\[bold red\\]rich\\[/\\]" in markdown

    document = json.loads(_report(session, "json").read_text(encoding="utf-8"))
    assert set(HOSTILE) <= {f["resource_id"] for f in document["findings"]}  # exact, tab and line break too

    with _report(session, "csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for r in rows:
        for column, cell in r.items():
            if column not in ("monthly_cost_in_scope", "estimated_monthly_saving"):
                assert not cell or cell[0] not in FORMULA_TRIGGERS, (column, cell)
    assert {"'" + v for v in FORMULA_LIKE} <= {r["resource_id"] for r in rows}

    workbook = openpyxl.load_workbook(_report(session, "xlsx"))
    texts = set()
    for sheet in workbook.worksheets:
        for line in sheet.iter_rows():
            for cell in line:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts.add(cell.value)
                    assert not needs_formula_guard(cell.value) or cell.quotePrefix, (sheet.title, cell.coordinate)
    assert set(FORMULA_LIKE) <= texts  # shown as text, not altered
    with zipfile.ZipFile(_report(session, "xlsx")) as archive:
        assert not any(re.search(rb"<f[ >]", archive.read(n)) for n in archive.namelist() if n.startswith("xl/worksheets/"))


# -- costaudit sql -----------------------------------------------------------------------------


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_sql_csv_guards_formulas_by_default_and_raw_is_exact(session):
    expected = _store(session, "SELECT ResourceId, BilledCost FROM line_items ORDER BY BilledCost, ResourceId")
    guarded = _csv_rows(session.out["sql-csv"].stdout)
    raw = _csv_rows(session.out["sql-csv-raw"].stdout)
    assert guarded[0] == raw[0] == ["ResourceId", "BilledCost"]
    assert [(r[0], Decimal(r[1])) for r in raw[1:]] == expected
    assert [(r[0], Decimal(r[1])) for r in guarded[1:]] == [(spreadsheet_text(i), c) for i, c in expected]
    assert {"'" + v for v in FORMULA_LIKE} <= {r[0] for r in guarded}
    assert ["net-credit", "-20.050000000000"] in guarded  # amounts are numbers, never guarded
    assert all(not needs_formula_guard(r[0]) or r[0].startswith("'") for r in guarded[1:])
    out = session.root / "work" / "result.csv"
    assert out.read_text(encoding="utf-8") == session.out["sql-csv"].stdout


def test_sql_pivot_headers_from_data_are_guarded_too(session):
    header = _csv_rows(session.out["sql-pivot"].stdout)[0]
    assert set(header) == {spreadsheet_text(v) for v in HOSTILE}
    assert not [h for h in header if needs_formula_guard(h) and not h.startswith("'")]


def test_sql_json_and_parquet_are_exact(session):
    expected = _store(session, "SELECT ResourceId, BilledCost FROM line_items ORDER BY BilledCost, ResourceId")
    document = json.loads(session.out["sql-json"].stdout, parse_float=Decimal)
    assert [(r["ResourceId"], r["BilledCost"]) for r in document] == expected
    back = duckdb.connect().execute(f"SELECT * FROM read_parquet('{session.root / 'work' / 'result.parquet'}')").fetchall()
    assert back == expected


# -- costaudit export focus --------------------------------------------------------------------


def _export(session: Session, name: str) -> tuple[list[dict], dict]:
    dataset = session.root / "work" / name / "focus-1.2"
    with (dataset / "billing_period=2024-09" / "part-0.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((dataset / "metadata.json").read_text())


def test_export_csv_guards_text_by_default_and_raw_is_exact(session):
    guarded, guarded_meta = _export(session, "export-csv")
    raw, raw_meta = _export(session, "export-raw")
    assert len(guarded) == len(raw) == 18
    formula_like = 0
    for g, r in zip(guarded, raw, strict=True):
        assert list(g) == list(r)
        for column, value in r.items():
            if column in STORE_TEXT:
                assert g[column] == spreadsheet_text(value), (column, value)
                formula_like += needs_formula_guard(value)
            else:  # amounts, timestamps, JSON tags: unchanged
                assert g[column] == value, (column, value)
        assert json.loads(g["Tags"]) == {v: v for v in HOSTILE}
    assert formula_like > 0
    assert guarded_meta["csv_formula_guard"] == {"applied": True, "formula_like_values": formula_like}
    assert raw_meta["csv_formula_guard"] == {"applied": False, "formula_like_values": formula_like}
    assert f"{formula_like} text value(s) a spreadsheet would run as formulas" in session.out["export-csv"].output
    assert {r["ResourceId"] for r in raw} == set(HOSTILE) | {"net-credit", "net-out"}
    assert sum(Decimal(r["BilledCost"]) for r in guarded) == Decimal("1628.41")
    assert "-20.05" in {r["BilledCost"] for r in guarded}


def test_export_raw_csv_and_parquet_load_back_to_the_same_values(session, tmp_path):
    columns = "BillingAccountId, ProviderName, ResourceId, ResourceName, SubAccountName, ServiceName, RegionId, " \
              "ChargeDescription, CAST(Tags AS VARCHAR), BilledCost"
    query = f"SELECT {columns} FROM line_items ORDER BY ALL"
    original = _store(session, query)
    for name in ("export-raw", "export-parquet"):
        again = tmp_path / f"{name}.duckdb"
        result = CliRunner().invoke(main, ["--db", str(again), "load", "--quiet",
                                           str(session.root / "work" / name / "focus-1.2")], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert _store(session, query, db=again) == original, name


# -- --out paths: where the user asked, never where a value says --------------------------------


def _invoke(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def test_out_paths_with_dotdot_and_symlinks_write_exactly_where_asked(session, tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work" / "sub", tmp_path / "elsewhere"
    work.mkdir(parents=True)
    elsewhere.mkdir()
    (tmp_path / "work" / "link").symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.chdir(work)
    query = "SELECT ResourceId FROM line_items ORDER BY ALL"
    steps = [
        (("sql", query, "--out", "../outside.csv"), {"work/outside.csv"}),
        (("sql", query, "--out", "../link/through-link.csv"), {"elsewhere/through-link.csv"}),
        (("report", "--format", "md", "--out", "../report.md"), {"work/report.md"}),
        (("report", "--format", "json", "--out", "../link"), {"elsewhere/costaudit-report.json"}),
        (("export", "focus", "--out", "../exported", "--format", "csv"),
         {"work/exported/", "work/exported/focus-1.2/", "work/exported/focus-1.2/metadata.json",
          "work/exported/focus-1.2/billing_period=2024-09/", "work/exported/focus-1.2/billing_period=2024-09/part-0.csv"}),
    ]
    for args, expected in steps:
        before = _tree(tmp_path)
        result = _invoke(session.db, *args)
        assert result.exit_code == 0, (args, result.output)
        assert _tree(tmp_path) - before == expected, args
        assert before - _tree(tmp_path) == set(), args
    assert (elsewhere / "through-link.csv").read_text().splitlines()[0] == "ResourceId"


def test_export_never_follows_a_symlinked_dataset_folder(session, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "focus-1.2").symlink_to(outside, target_is_directory=True)
    result = CliRunner().invoke(main, ["--db", str(session.db), "export", "focus", "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert list(outside.iterdir()) == []


# -- the one formula guard, in Python and in SQL ------------------------------------------------


_GUARD_CON = duckdb.connect()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted({*FORMULA_TRIGGERS, " ", "\u00a0", "\u3000", "\x0b", "\u200b", "a", "1",
                                                 "'", "\\", "{"})),
               max_size=6) | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12))
def test_the_sql_guard_is_the_python_guard(text):
    got = _GUARD_CON.execute(f"SELECT {spreadsheet_text_sql('$1')}", [text]).fetchone()[0]
    assert got == spreadsheet_text(text)


@pytest.mark.parametrize("blank", ["\x0b", "\x0c", "\u2000", "\u200b", "\ufeff", "\u3000 \x0b"])
def test_a_formula_after_any_unicode_blank_is_guarded(blank):
    """Vertical tab, form feed, Unicode spaces and zero-width characters before '=' may be skipped by a
    spreadsheet: the cell is guarded, in Python and in SQL alike."""
    text = f"{blank}=HYPERLINK(\"http://evil.example\")"
    assert spreadsheet_text(text) == "'" + text
    assert _GUARD_CON.execute(f"SELECT {spreadsheet_text_sql('$1')}", [text]).fetchone()[0] == "'" + text


def test_the_sql_guard_keeps_null():
    assert _GUARD_CON.execute(f"SELECT {spreadsheet_text_sql('$1')}", [None]).fetchone()[0] is None


# -- a currency is a code ------------------------------------------------------------------------


def test_a_currency_with_markup_is_refused_in_one_line(tmp_path):
    """Once a rich MarkupError after the commit (a traceback, data loaded); now refused before it
    (also tests/test_bad_input.py::test_a_billing_currency_that_is_not_a_code_is_refused)."""
    bill = write(tmp_path / "currency.csv", [row(account="999", currency="[red]x[/]")])
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "s.duckdb"), "load", str(bill)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert "'[RED]X[/]' is not a currency code" in result.output


# -- control characters on the terminal ----------------------------------------------------------

ESCAPES = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\\x1b[8mhidden\x1b[0m\x1b]0;title\x07\u202egnp.exe"


def test_terminal_escape_sequences_from_a_bill_are_shown_not_run(cli, tmp_path):
    """An ESC sequence in a resource id or a provider name could recolour, hide or hyperlink text
    or retitle the window when printed; every command shows it as escapes instead."""
    bill = write(tmp_path / "bill.csv", [row(ResourceId=f"i-{ESCAPES}", ProviderName=f"Cloud{ESCAPES}",
                                             ServiceName=f"svc{ESCAPES}")])
    outputs = {
        "load": cli("load", str(bill)),
        "summary": cli("summary"),
        "sql": cli("sql", "SELECT ResourceId, ProviderName FROM line_items"),
        "error": cli("load", str(tmp_path / f"missing{ESCAPES}.csv")),
    }
    for name, result in outputs.items():
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in result.output, (name, result.output)
    assert "\\x1b]8;;https://evil.example" in outputs["sql"].output
    assert "\\x1b[8mhidden" in outputs["error"].output and "\\u202egnp.exe" in outputs["error"].output
    assert outputs["error"].exit_code == 1


def test_the_safe_console_escapes_plain_prints_too(capsys):
    """Evidence lines and notes are printed with markup off, not as table cells: the console
    itself escapes them."""
    from costaudit.textout import terminal_console

    terminal_console().print(f"evidence: {ESCAPES}", markup=False)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[8mhidden" in out


def test_unicode_spaces_at_the_edges_of_a_value_are_kept(cli, tmp_path, db_path):
    """Only ASCII spaces are padding: a value's own leading U+2000 or trailing U+3000 is stored (it
    is what the bill says, and dropping it would turn '\u2000=1+1' into a bare formula)."""
    import duckdb as _duckdb

    value = "\u2000=1+1\u3000"
    bill = write(tmp_path / "bill.csv", [row(ResourceId=value, ServiceName="  Compute  ")])
    assert cli("load", str(bill)).exit_code == 0
    con = _duckdb.connect(str(db_path), read_only=True)
    try:
        assert con.execute("SELECT ResourceId, ServiceName FROM line_items").fetchall() == [(value, "Compute")]
    finally:
        con.close()
