"""Google Cloud billing export: detection by columns, bad input, and fixture determinism."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors.base import Cols
from costaudit.connectors.files import describe, sniff
from costaudit.connectors.formats import detect
from costaudit.connectors.formats.gcp import GcpBillingExportFormat
from costaudit.errors import InputError
from costaudit.loader import load_paths
from costaudit.store import connect

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GCP = FIXTURES / "gcp"
SHAPES = FIXTURES / "gcp-shapes"
GCP_FORMAT = GcpBillingExportFormat()


def _cols(path: Path) -> Cols:
    con = duckdb.connect()
    try:
        return describe(con, [sniff(path)])
    finally:
        con.close()


# -- detection --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name", ["gcp-shapes/detailed_export.ndjson", "gcp/detailed_export.parquet", "gcp-shapes/detailed_export_flat.csv",
             "gcp-shapes/standard_export.ndjson.gz"]
)
def test_fixtures_are_detected_as_google_cloud(name):
    cols = _cols(FIXTURES / name)
    fmt = detect(cols)
    assert fmt is not None and fmt.id == "gcp-billing-export"
    assert GCP_FORMAT.score(cols) > 100


def test_nested_columns_are_single_struct_columns():
    nested = _cols(GCP / "detailed_export.parquet")
    assert nested.types["service"].startswith("STRUCT(")
    assert "service.description" not in nested.types
    assert GCP_FORMAT.version(nested) == "detailed-nested"
    flat = _cols(SHAPES / "detailed_export_flat.csv")
    assert "service.description" in flat.types and GCP_FORMAT.version(flat) == "detailed-flattened"
    assert GCP_FORMAT.version(_cols(SHAPES / "standard_export.ndjson.gz")) == "standard-nested"


def test_koku_sample_is_detected(samples_dir):
    cols = _cols(samples_dir / "koku" / "gcp" / "2022-08-01_5.csv")
    assert detect(cols).id == "gcp-billing-export"


@pytest.mark.parametrize(
    "relative",
    [
        "focus-sample-data/focus_sample.csv",
        "focus-converters/sample-anonymous-aws-export-dataset.csv",
        "focus-converters/sample-anonymous-ea-export-dataset.csv",
        "koku/aws/test_cur.csv",
        "koku/azure/azure_version_2.csv",
    ],
)
def test_other_providers_and_focus_are_not_google(samples_dir, relative):
    cols = _cols(samples_dir / relative)
    assert GCP_FORMAT.score(cols) == 0
    fmt = detect(cols)
    assert fmt is None or fmt.id != "gcp-billing-export"


def test_google_focus_view_is_focus_not_native():
    # Google's own FOCUS BigQuery view: FOCUS names plus x_ extras, no native columns
    names = ["BillingAccountId", "BilledCost", "EffectiveCost", "ServiceName", "ChargeCategory", "BillingCurrency",
             "BillingPeriodStart", "x_Credits", "x_CostType", "x_ServiceId", "x_Project", "Tags"]
    cols = Cols(types={n: "VARCHAR" for n in names})
    assert GCP_FORMAT.score(cols) == 0
    assert detect(cols).id == "focus"


def test_a_partial_google_header_still_needs_the_signature():
    assert GCP_FORMAT.score(Cols(types={"billing_account_id": "VARCHAR", "cost": "VARCHAR"})) == 0
    cols = Cols(types={"billing_account_id": "VARCHAR", "cost": "VARCHAR", "service.description": "VARCHAR"})
    assert GCP_FORMAT.score(cols) >= 100


# -- bad input --------------------------------------------------------------------------------------

def _first_rows(count: int = 3) -> list[dict]:
    lines = (SHAPES / "detailed_export.ndjson").read_text().splitlines()[:count]
    return [json.loads(line) for line in lines]


def _write_ndjson(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _write_flat(tmp_path: Path, column: str, value: str, row: int = 2) -> Path:
    import csv

    with (SHAPES / "detailed_export_flat.csv").open() as handle:
        records = list(csv.reader(handle))[:4]
    records[row][records[0].index(column)] = value
    path = tmp_path / "flat.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(records)
    return path


def _fails(store, path: Path, *expected: str) -> str:
    with pytest.raises(InputError) as info:
        load_paths(store, [str(path)])
    message = str(info.value)
    for text in expected:
        assert text in message, message
    assert store.execute("SELECT count(*) FROM line_items").fetchone() == (0,)
    return message


def test_non_numeric_credit_amount_in_json_is_named(store, tmp_path):
    rows = _first_rows()
    rows[1]["credits"] = [{"name": "Sustained Usage Discount", "amount": "abc", "type": "SUSTAINED_USAGE_DISCOUNT"}]
    path = _write_ndjson(tmp_path / "bad.ndjson", rows)
    message = _fails(store, path, "bad.ndjson", "row 2", "column 'credits'", "'abc'", "is not a decimal number")
    assert "Traceback" not in message


def test_non_numeric_credit_amount_in_parquet_is_impossible_but_missing_amount_field_is_named(store, tmp_path):
    rows = _first_rows()
    for row in rows:
        row["credits"] = [{"name": c.get("name"), "type": c.get("type")} for c in row["credits"]] or [{"name": "x"}]
    path = _write_ndjson(tmp_path / "no_amount.ndjson", rows)
    _fails(store, path, "no_amount.ndjson", "credits", "no 'amount' field")


def test_non_numeric_credit_amount_in_flat_csv_is_named(store, tmp_path):
    path = _write_flat(tmp_path, "credits", "[{'name': 'FreeTrial:1', 'amount': 'n/a', 'type': 'PROMOTION'}]")
    _fails(store, path, "flat.csv", "credits", "'n/a'", "is not a decimal number")


def test_unreadable_credit_text_in_flat_csv_is_named(store, tmp_path):
    path = _write_flat(tmp_path, "credits", "FreeTrial -0.5")
    _fails(store, path, "flat.csv", "credits", "is not a list")


def test_non_numeric_cost_in_flat_csv_names_row_and_column(store, tmp_path):
    path = _write_flat(tmp_path, "cost", "12,50", row=3)
    message = _fails(store, path, "flat.csv", "row 3", "column 'cost'", "'12,50' is not a decimal number")
    assert message.count("\n") == 0


def test_non_numeric_nested_usage_amount_is_named(store, tmp_path):
    rows = _first_rows()
    rows[2]["usage"]["amount"] = "lots"
    path = _write_ndjson(tmp_path / "usage.ndjson", rows)
    _fails(store, path, "usage.ndjson", "usage.amount", "lots")


def test_bad_invoice_month_is_named(store, tmp_path):
    rows = _first_rows()
    rows[0]["invoice"]["month"] = "May 2024"
    path = _write_ndjson(tmp_path / "month.ndjson", rows)
    _fails(store, path, "month.ndjson", "invoice.month", "May 2024")


@pytest.mark.parametrize("field", ["invoice", "billing_account_id", "cost"])
def test_missing_required_column_is_named(store, tmp_path, field):
    rows = _first_rows()
    for row in rows:
        row.pop(field)
    path = _write_ndjson(tmp_path / "missing.ndjson", rows)
    expected = "invoice.month" if field == "invoice" else field
    if field == "billing_account_id" or field == "cost":
        # without its signature columns the file is not recognised at all
        with pytest.raises(InputError) as info:
            load_paths(store, [str(path)])
        assert "missing.ndjson" in str(info.value)
        return
    _fails(store, path, "missing.ndjson", f"missing required column '{expected}'")


def test_missing_currency_asks_for_it_and_default_currency_works(store, tmp_path):
    from costaudit.connectors.base import ReadOptions

    rows = _first_rows()
    for row in rows:
        row.pop("currency")
    path = _write_ndjson(tmp_path / "nocur.ndjson", rows)
    _fails(store, path, "nocur.ndjson", "'currency'", "--currency")
    report = load_paths(store, [str(path)], opts=ReadOptions(default_currency="USD"))
    assert [p.currency for p in report.partitions] == ["USD"]




def test_whole_fixture_folder_loads_in_one_command(tmp_path):
    con = connect(tmp_path / "all.duckdb")
    try:
        report = load_paths(con, [str(GCP)])
        # four shapes of the same invoices: later deliveries replace earlier ones, totals still reconcile
        assert {p.billing_account_id for p in report.partitions} == {"01A2B3-C4D5E6-F7A8B9", "0E1F2A-3B4C5D-6E7F80"}
        assert all(p.source_total == p.stored_total for p in report.partitions)
    finally:
        con.close()


# -- loosely typed and hand-flattened exports --------------------------------------------------------

def test_json_with_numbers_as_strings_and_integer_invoice_month(store, tmp_path):
    base = {"billing_account_id": "X1", "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
            "sku": {"id": "K1", "description": "N2 Instance Core running in Americas"}, "currency": "USD",
            "invoice": {"month": 202401}, "project": {"id": "p1", "number": "123456789012"},
            "usage_start_time": "2024-01-02T00:00:00Z", "usage_end_time": "2024-01-02T01:00:00Z",
            "cost_type": "regular", "labels": [], "system_labels": []}
    rows = [
        {**base, "cost": "1.10", "usage": {"amount": "3600", "unit": "seconds", "amount_in_pricing_units": "1",
                                           "pricing_unit": "hour"},
         "credits": [{"name": "SUD", "amount": "-0.10", "type": "SUSTAINED_USAGE_DISCOUNT"}]},
        {**base, "cost": "2.20", "usage": {"amount": "7200", "unit": "seconds", "amount_in_pricing_units": "2",
                                           "pricing_unit": "hour"}, "credits": None},
    ]
    path = _write_ndjson(tmp_path / "strings.ndjson", rows)
    report = load_paths(store, [str(path)])
    [partition] = report.partitions
    assert partition.source_total == partition.stored_total
    assert str(partition.source_total.normalize()) == "3.2"
    assert partition.billing_period_start.strftime("%Y-%m-%d") == "2024-01-01"
    quantities = store.execute(
        "SELECT ConsumedQuantity, PricingQuantity, PricingUnit FROM line_items WHERE ChargeCategory = 'Usage' ORDER BY 1"
    ).fetchall()
    assert [(int(c), int(p), u) for c, p, u in quantities] == [(3600, 1, "Hours"), (7200, 2, "Hours")]


def test_python_repr_quirks_in_flat_csv(store, tmp_path):
    credits = ("[{'name': None, 'amount': -1e-05, 'full_name': None, 'id': 'c-1', 'type': 'FREE_TIER'}, "
               "{'name': 'x', 'amount': -0.25, 'full_name': \"Bob's credit, with a comma\", 'id': 'c-2', "
               "'type': 'PROMOTION'}]")
    labels = "[{'key': 'env', 'value': 'prod'}, {'key': 'keep', 'value': ''}, {'key': 'env', 'value': 'dup'}]"
    import csv

    path = tmp_path / "quirks.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["billing_account_id", "service.description", "sku.description", "cost", "currency",
                         "invoice.month", "credits", "labels"])
        writer.writerow(["X2", "Gemini API", "Gemini 1.5 Pro Input Tokens", "1.5", "USD", "202402", credits, labels])
    report = load_paths(store, [str(path)])
    [partition] = report.partitions
    assert partition.source_total == partition.stored_total
    assert str(partition.source_total.normalize()) == "1.24999"
    rows = store.execute(
        "SELECT ChargeDescription, BilledCost, x_CreditType, Tags, ServiceCategory, ServiceSubcategory "
        "FROM line_items ORDER BY BilledCost"
    ).fetchall()
    assert [(d, str(c.normalize()), t) for d, c, t, *_ in rows] == [
        ("Bob's credit, with a comma", "-0.25", "PROMOTION"),
        ("c-1", "-0.00001", "FREE_TIER"),
        ("Gemini 1.5 Pro Input Tokens", "1.5", None),
    ]
    assert json.loads(rows[0][3]) == {"env": "prod", "keep": True}
    assert rows[0][4:] == ("AI and Machine Learning", "Generative AI")


def test_type_parser_walks_nested_duckdb_types():
    from costaudit.connectors.formats.gcp_fields import parse_type

    credits = parse_type('STRUCT("name" VARCHAR, amount JSON, "type" VARCHAR, "we""ird" DECIMAL(38,9))[]')
    assert credits.kind == "list" and credits.element.kind == "struct"
    assert [n for n, _ in credits.element.fields] == ["name", "amount", "type", 'we"ird']
    assert credits.element.field("AMOUNT")[1].name == "JSON"
    assert credits.element.field('we"ird')[1].is_numeric
    project = parse_type("STRUCT(id VARCHAR, labels STRUCT(\"key\" VARCHAR, \"value\" VARCHAR)[], n BIGINT)")
    assert project.field("labels")[1].element.field("value")[1].name == "VARCHAR"
    assert parse_type("TIMESTAMP WITH TIME ZONE").is_time
    assert parse_type("MAP(VARCHAR, INTEGER)").kind == "map"
    assert parse_type("INTEGER[3][]").element.element.name == "INTEGER"


def test_records_typed_json_are_walked_by_path(store, tmp_path):
    rows = _first_rows(2)
    rows[0]["location"] = {"region": "us-central1", "zone": "us-central1-a"}
    rows[1]["location"] = "somewhere"  # a string where a record is expected: read_json types the column JSON
    path = _write_ndjson(tmp_path / "mixed.ndjson", rows)
    load_paths(store, [str(path)])
    regions = store.execute("SELECT DISTINCT RegionId FROM line_items ORDER BY 1 NULLS LAST").fetchall()
    assert regions == [("us-central1",), (None,)]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("billing_account_id", None, "is missing"),
        ("billing_account_id", [], "not a billing account id"),
        ("billing_account_id", True, "not a billing account id"),
        ("cost", None, "is missing"),
    ],
)
def test_a_row_without_account_or_cost_is_refused(store, tmp_path, field, value, expected):
    """A row that names no billing account or states no cost cannot be put on an invoice: it is
    refused, naming the row, rather than filed under 'unknown' or counted as 0."""
    rows = _first_rows()
    rows[1][field] = value
    path = _write_ndjson(tmp_path / "odd.ndjson", rows)
    _fails(store, path, "odd.ndjson", "row 2", f"column '{field}'", expected)
