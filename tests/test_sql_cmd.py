"""`costaudit sql`: read-only, table / CSV / JSON / Parquet output, refused writes, the
interactive mode, and the README's questions run against the demo store."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from costaudit.cli import main
from costaudit.sql_cmd import _cell
from costaudit.store import connect

from .conftest import FIXTURES

# The three questions of the README (section "costaudit sql"), verified here on the demo store.
TOP_AI_EGRESS_ROUTES = """
WITH account_month AS (      -- share of AI in each sub-account's compute and AI spend, per month
  SELECT ProviderName, SubAccountId, BillingPeriodStart,
         sum(BilledCost) FILTER (WHERE ai_category IS NOT NULL)
           / nullif(sum(BilledCost) FILTER (WHERE ai_category IS NOT NULL
                                            OR ServiceCategory IN ('Compute', 'AI and Machine Learning')), 0) AS ai_share
  FROM analysis_line_items WHERE SubAccountId IS NOT NULL GROUP BY ALL),
ai_resources AS (SELECT DISTINCT ProviderName, ResourceId FROM ai_spend WHERE ResourceId IS NOT NULL)
SELECT n.BillingCurrency AS currency, n.route, n.network_class,
       sum(n.BilledCost) AS billed, sum(n.volume_gb) AS gb,
       round(sum(n.BilledCost) / nullif(sum(n.volume_gb), 0), 4) AS per_gb
FROM network_transfer n
LEFT JOIN account_month a USING (ProviderName, SubAccountId, BillingPeriodStart)
WHERE n.network_class <> 'inbound'
  AND (a.ai_share >= 0.5     -- an AI workload's account that month, or the AI resource itself
       OR EXISTS (SELECT 1 FROM ai_resources r WHERE r.ProviderName = n.ProviderName AND r.ResourceId = n.ResourceId))
GROUP BY currency, n.route, n.network_class
QUALIFY row_number() OVER (PARTITION BY currency ORDER BY billed DESC) <= 10
ORDER BY currency, billed DESC;
"""
AI_SHARE_BY_MONTH = """
SELECT strftime(BillingPeriodStart, '%Y-%m') AS month, ProviderName AS provider, BillingCurrency AS currency,
       sum(BilledCost) AS billed,
       coalesce(sum(BilledCost) FILTER (WHERE ai_category IS NOT NULL), 0) AS ai_billed,
       round(100 * ai_billed / nullif(billed, 0), 1) AS ai_percent
FROM analysis_line_items
GROUP BY ALL
ORDER BY month, provider, currency;
"""
BIGGEST_OPEN_FINDINGS = """
SELECT f.currency, f.estimated_monthly_saving AS saving, f.severity, f.rule_id, f.resource_id,
       coalesce(c.change, 'new') AS since_previous_run, f.summary
FROM latest_findings f LEFT JOIN findings_changes c USING (fingerprint)
WHERE f.status = 'open'
QUALIFY row_number() OVER (PARTITION BY f.currency ORDER BY f.estimated_monthly_saving DESC NULLS LAST) <= 5
ORDER BY f.currency, saving DESC NULLS LAST;
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Every fixture room, the demo metrics and inventories, the analysis and two audit runs."""
    from costaudit.analysis import ensure_analysis
    from costaudit.connectors.imports_inventory import import_inventory
    from costaudit.connectors.imports_metrics import import_metrics
    from costaudit.loader import load_paths
    from costaudit.rules.runner import run_audit

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    con = connect(path)
    for room in ("aws", "azure", "gcp", "focus"):
        load_paths(con, [str(FIXTURES / room)])
    import_metrics(con, [str(FIXTURES / "metrics")])
    import_inventory(con, [str(FIXTURES / "inventory")])
    ensure_analysis(con)
    run_audit(con, since="2024-01", until="2024-11")
    run_audit(con, since="2024-01", until="2024-11")
    con.close()
    return path


def _sql(store: Path, *args: str, input: str | None = None):
    result = CliRunner().invoke(main, ["--db", str(store), "sql", *args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _direct(store: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(query).fetchall()
    finally:
        con.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TOTALS = "SELECT BillingCurrency AS currency, sum(BilledCost) AS billed, count(*) AS n FROM focus_line_items GROUP BY 1 ORDER BY 1"


def test_table_output(demo):
    result = _sql(demo, TOTALS)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("currency" in line and "billed" in line for line in lines)
    for currency, billed, n in _direct(demo, TOTALS):
        row = next(line for line in lines if f" {currency} " in line)
        assert f" {_cell(billed)} " in row and f" {n} " in row  # exact amounts, not rounded
    assert lines[-1] == f"({len(_direct(demo, TOTALS))} rows)"


def test_table_output_is_capped(demo):
    result = _sql(demo, "SELECT range AS i FROM range(50)", "--max-rows", "5")
    assert result.exit_code == 0
    assert "(first 5 rows shown; --max-rows N" in result.stdout
    assert [line.strip("│ ") for line in result.stdout.splitlines() if line.startswith("│")] == ["0", "1", "2", "3", "4"]


def test_csv_is_exact(demo):
    result = _sql(demo, TOTALS, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = _direct(demo, TOTALS)
    assert [(r["currency"], Decimal(r["billed"]), int(r["n"])) for r in rows] == expected


def test_json_is_exact(demo):
    query = ("SELECT fingerprint, rule_id, estimated_monthly_saving AS saving, billing_period FROM latest_findings "
             "WHERE status = 'open' ORDER BY fingerprint")
    result = _sql(demo, query, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout, parse_float=Decimal)
    expected = _direct(demo, query)
    assert len(rows) == len(expected) > 0
    for row, (fingerprint, rule_id, saving, period) in zip(rows, expected, strict=True):
        assert (row["fingerprint"], row["rule_id"]) == (fingerprint, rule_id)
        assert row["saving"] == saving  # exact, not a float
        assert (row["billing_period"] is None) == (period is None)
        if period is not None:
            assert row["billing_period"].startswith(f"{period:%Y-%m-%d %H:%M:%S}") and row["billing_period"].endswith("+00")


@pytest.mark.parametrize(("name", "options"), [("routes.parquet", ()), ("routes.data", ("--format", "parquet")),
                                               ("routes.csv", ()), ("routes.json", ())])
def test_out_files(demo, tmp_path, name, options):
    query = "SELECT route, network_class, BillingCurrency, sum(BilledCost) AS billed FROM network_transfer GROUP BY ALL ORDER BY ALL"
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / name
    result = _sql(demo, query, "--out", str(target), *options)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert [p.name for p in folder.iterdir()] == [name], "nothing but the output file is written"
    expected = _direct(demo, query)
    reader = {".csv": "read_csv", ".json": "read_json"}.get(target.suffix, "read_parquet")
    types = ", types = {'billed': 'DECIMAL(38,12)'}" if reader == "read_csv" else ""
    back = duckdb.connect().execute(
        f"SELECT route, network_class, BillingCurrency, CAST(billed AS DECIMAL(38,12)) FROM {reader}('{target}'{types})"
    ).fetchall()
    assert back == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("SELECT 1", "--format", "parquet"), "--format parquet needs --out FILE"),
        (("SELECT 1", "--out", "{tmp}/missing/x.csv"), "does not exist"),
        (("SELECT 1", "--format", "csv", "--out", "{store}"), "that is the store"),
        (("SELECT 1", "--out", "{tmp}/x.txt"), "say the format with --format"),
        (("SELECT 1", "--format", "table", "--out", "{tmp}/x.csv"), "--out writes csv, json or parquet"),
        (("--out", "{tmp}/x.csv"), "--out needs a QUERY"),
        (("",), "no SQL statement given"),
    ],
)
def test_usage_errors(demo, tmp_path, args, message):
    store = tmp_path / "copy.duckdb"
    shutil.copyfile(demo, store)
    args = tuple(a.format(tmp=tmp_path, store=store) for a in args)
    result = _sql(store, *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("INSERT INTO loads SELECT * FROM loads", "read-only: INSERT statements cannot change the store"),
        ("DELETE FROM line_items", "read-only: DELETE statements cannot change the store"),
        ("UPDATE runs SET status = 'failed'", "read-only: UPDATE statements cannot change the store"),
        ("DROP VIEW ai_spend", "read-only: DROP statements cannot change the store"),
        ("CREATE TABLE t AS SELECT 1 AS x", "read-only: CREATE statements cannot change the store"),
        ("COPY loads TO '{tmp}/leak.csv'", "refused a COPY statement"),
        ("EXPORT DATABASE '{tmp}/dump'", "refused a EXPORT statement"),
        ("ATTACH '{tmp}/other.duckdb' AS other", "refused a ATTACH statement"),
        ("INSTALL httpfs", "refused a LOAD statement"),
        ("SELECT 1; DELETE FROM loads", "read-only: DELETE statements"),
    ],
)
def test_writes_are_refused(demo, tmp_path, statement, message):
    before = _digest(demo)
    result = _sql(demo, statement.format(tmp=tmp_path))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: costaudit sql is read-only") and message in result.stderr
    assert result.stderr.count("\n") <= 2  # one message (rich may wrap it), no traceback
    assert not any(tmp_path.iterdir()), "a refused statement writes no file"
    assert _digest(demo) == before


def test_temporary_objects_and_session_settings_are_allowed(demo):
    result = _sql(demo, "SET threads = 1; CREATE TEMP VIEW v AS SELECT 41 + 1 AS answer; SELECT * FROM v",
                  "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["answer", "42"]


def test_query_errors_are_one_line(demo, tmp_path):
    result = _sql(demo, "SELECT * FROM latest_finding")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Catalog Error: Table with name latest_finding does not exist")
    assert 'Did you mean "latest_findings"' in result.stderr
    empty = tmp_path / "empty.duckdb"
    connect(empty).close()
    result = _sql(empty, "SELECT * FROM ai_spend")
    assert result.exit_code == 1 and "appear after the first costaudit run, audit or summary" in result.stderr
    result = _sql(tmp_path / "none.duckdb", "SELECT 1")
    assert result.exit_code == 1 and "no store here yet" in result.stderr


def test_script_from_stdin(demo):
    result = _sql(demo, "-", "--format", "csv", input="SELECT 1 AS a;\nSELECT 2 AS b;\n")
    assert result.exit_code == 0
    assert result.stdout.split() == ["a", "1", "b", "2"]


def test_interactive_mode(demo):
    script = (
        "SELECT count(*) AS runs\n"
        "  FROM runs;\n"
        ".tables\n"
        "\n"
        "INSERT INTO runs SELECT * FROM runs;\n"
        "SELECT 'still here' AS status;\n"
        "SELECT 'no semicolon at the end' AS last\n"
    )
    result = _sql(demo, "--format", "csv", input=script)
    assert result.exit_code == 1, "one statement failed"
    assert "runs\n2\n" in result.stdout
    assert "focus_line_items" in result.stdout and "latest_findings" in result.stdout
    assert "status\nstill here\n" in result.stdout and "last\nno semicolon at the end\n" in result.stdout
    assert "costaudit sql is read-only: INSERT statements" in result.stderr
    assert "costaudit>" not in result.stdout + result.stderr, "no prompt when stdin is not a terminal"
    clean = _sql(demo, input="SELECT 42 AS answer;\n.quit\nSELECT 1/0;\n")
    assert clean.exit_code == 0 and "42" in clean.stdout


def test_readme_questions(demo):
    """The README's SQL answers run on the demo store and agree with direct sums."""
    routes = json.loads(_sql(demo, TOP_AI_EGRESS_ROUTES, "--format", "json").stdout, parse_float=Decimal)
    assert routes and {r["currency"] for r in routes} == {"EUR", "USD"}
    assert all(r["network_class"] != "inbound" for r in routes)
    for currency in ("EUR", "USD"):
        billed = [r["billed"] for r in routes if r["currency"] == currency]
        assert billed == sorted(billed, reverse=True) and len(billed) <= 10
    # The biggest USD route of AI workloads is the internet egress of the demo's GPU accounts.
    assert routes[[r["currency"] for r in routes].index("USD")]["network_class"] == "internet"

    months = json.loads(_sql(demo, AI_SHARE_BY_MONTH, "--format", "json").stdout, parse_float=Decimal)
    total = {(c, Decimal(b)) for c, b in _direct(
        demo, "SELECT BillingCurrency, sum(BilledCost) FROM current_line_items GROUP BY 1")}
    ai_total = {(c, Decimal(b)) for c, b in _direct(demo, "SELECT BillingCurrency, sum(BilledCost) FROM ai_spend GROUP BY 1")}
    per_currency: dict[str, Decimal] = {}
    ai_per_currency: dict[str, Decimal] = {}
    for row in months:
        per_currency[row["currency"]] = per_currency.get(row["currency"], Decimal(0)) + row["billed"]
        ai_per_currency[row["currency"]] = ai_per_currency.get(row["currency"], Decimal(0)) + row["ai_billed"]
    assert set(per_currency.items()) == total
    assert {(c, t) for c, t in ai_per_currency.items() if t} == ai_total

    findings = json.loads(_sql(demo, BIGGEST_OPEN_FINDINGS, "--format", "json").stdout, parse_float=Decimal)
    assert findings and all(f["since_previous_run"] == "unchanged" for f in findings)  # two identical runs
    top = _direct(demo, "SELECT currency, max(estimated_monthly_saving) FROM latest_findings WHERE status = 'open' "
                        "AND currency IS NOT NULL GROUP BY 1 ORDER BY 1")
    assert [(f["currency"], f["saving"]) for f in findings if f is next(
        g for g in findings if g["currency"] == f["currency"])] == top
