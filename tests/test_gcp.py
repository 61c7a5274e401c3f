"""Google Cloud billing export: every shape loads, reconciles to an independent sum, and maps to FOCUS.

The expected totals are computed in each test straight from the raw file with DuckDB, along a
different path from the reader: NDJSON through read_json with declared column types, Parquet
through its own typed columns, and the flattened CSV with a regex over the credits text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.loader import load_paths
from costaudit.store import connect

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gcp"
SHAPES = FIXTURES.parent / "gcp-shapes"
NDJSON = SHAPES / "detailed_export.ndjson"
PARQUET = FIXTURES / "detailed_export.parquet"
FLAT_CSV = SHAPES / "detailed_export_flat.csv"
STANDARD = SHAPES / "standard_export.ndjson.gz"
US, EU = "01A2B3-C4D5E6-F7A8B9", "0E1F2A-3B4C5D-6E7F80"
MAY, JUNE = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)


# -- independent totals straight from the raw files ----------------------------------------------

def _json_totals(path: Path) -> dict:
    sql = f"""
        SELECT billing_account_id, invoice.month, currency,
               sum(cost) + coalesce(sum(list_sum(list_transform(credits, lambda c: c.amount))), 0),
               coalesce(sum(len(credits)), 0)
        FROM read_json('{path}', format = 'newline_delimited', columns = {{
            'billing_account_id': 'VARCHAR', 'invoice': 'STRUCT(month VARCHAR)', 'currency': 'VARCHAR',
            'cost': 'DECIMAL(38,12)', 'credits': 'STRUCT(amount DECIMAL(38,12))[]'}})
        GROUP BY ALL"""
    return {(a, m, c): (t, n) for a, m, c, t, n in duckdb.sql(sql).fetchall()}


def _parquet_totals(path: Path) -> dict:
    sql = f"""
        SELECT billing_account_id, invoice.month, currency,
               sum(CAST(cost AS DECIMAL(38,12)))
               + coalesce(sum(list_sum(list_transform(credits, lambda c: CAST(c.amount AS DECIMAL(38,12))))), 0),
               coalesce(sum(len(credits)), 0)
        FROM read_parquet('{path}') GROUP BY ALL"""
    return {(a, m, c): (t, n) for a, m, c, t, n in duckdb.sql(sql).fetchall()}


def _csv_totals(path: Path) -> dict:
    # credits hold a Python repr such as [{'name': 'x', 'amount': -0.01, ...}]
    sql = f"""
        SELECT billing_account_id, "invoice.month", currency,
               sum(CAST(cost AS DECIMAL(38,12)))
               + coalesce(sum(list_sum(list_transform(
                   regexp_extract_all(credits, '''amount'': (-?[0-9.e+-]+)', 1),
                   lambda a: CAST(a AS DECIMAL(38,12))))), 0),
               coalesce(sum(len(regexp_extract_all(credits, '''amount'':'))), 0)
        FROM read_csv('{path}', all_varchar = true, header = true) GROUP BY ALL"""
    return {(a, m, c): (t, n) for a, m, c, t, n in duckdb.sql(sql).fetchall()}


def _stored(store) -> dict:
    rows = store.execute(
        """SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y%m'), BillingCurrency, sum(BilledCost),
                  count(*) FILTER (WHERE x_CreditType IS NOT NULL)
           FROM line_items GROUP BY ALL"""
    ).fetchall()
    return {(a, m, c): (t, n) for a, m, c, t, n in rows}


SHAPES = {"ndjson": (NDJSON, _json_totals), "parquet": (PARQUET, _parquet_totals), "csv": (FLAT_CSV, _csv_totals)}


@pytest.fixture(params=list(SHAPES))
def loaded(request, store):
    """A store holding one fixture shape; yields (connection, path, independent totals)."""
    path, totals = SHAPES[request.param]
    report = load_paths(store, [str(path)])
    assert {p.action for p in report.partitions} == {"loaded"}
    return store, path, totals(path)


# -- the shared koku sample ------------------------------------------------------------------------

def test_koku_sample_reconciles_exactly(store, samples_dir):
    path = samples_dir / "koku" / "gcp" / "2022-08-01_5.csv"
    report = load_paths(store, [str(path)])
    expected = _csv_totals(path)
    assert expected == {("018984-D0AAA4-940B88", "202208", "USD"): (Decimal("0.000012"), 0)}
    assert _stored(store) == expected
    [partition] = report.partitions
    assert partition.source_format == "gcp-billing-export"
    assert partition.source_total == partition.stored_total == Decimal("0.000012")
    assert partition.rows == 9
    row = store.execute(
        """SELECT ProviderName, ServiceName, ServiceCategory, ChargeCategory, BillingPeriodStart, ChargePeriodStart,
                  ChargePeriodEnd, SubAccountId, SubAccountName, ResourceId, ResourceName, ConsumedQuantity,
                  ConsumedUnit, PricingQuantity, PricingUnit, x_FromLocation, x_ToLocation, x_ServiceCode, SkuId, Tags
           FROM line_items WHERE SkuId = '6B8F-E63D-832B' ORDER BY ChargePeriodStart LIMIT 1"""
    ).fetchone()
    assert row == (
        "Google Cloud", "Compute Engine", "Compute", "Usage", datetime(2022, 8, 1, tzinfo=UTC),
        datetime(2022, 8, 1, 3, tzinfo=UTC), datetime(2022, 8, 1, 4, tzinfo=UTC), "cloud-billing-292519",
        "cm_example", "//example", "instance-1", Decimal("14871"), "Bytes", Decimal("0.00001385"), "GiB",
        "Americas", "APAC", "6F81-5844-456A", "6B8F-E63D-832B", None,
    )


# -- fixtures: every shape reconciles --------------------------------------------------------------

def test_fixture_totals_match_an_independent_sum(loaded):
    store, _path, expected = loaded
    assert set(expected) == {(US, "202405", "USD"), (US, "202406", "USD"), (EU, "202405", "EUR"), (EU, "202406", "EUR")}
    assert _stored(store) == expected
    loads = store.execute("SELECT count(*), count(DISTINCT billing_account_id) FROM loads").fetchone()
    assert loads == (4, 2)


def test_every_shape_stores_the_same_rows(tmp_path):
    # byte-second quantities exceed a double's exact range; shapes round them differently
    columns = (
        "BillingAccountId, BillingPeriodStart, ChargeCategory, ChargeClass, SkuId, ResourceId, ChargePeriodStart, "
        "BilledCost, EffectiveCost, ListCost, printf('%.12g', ConsumedQuantity::DOUBLE), PricingQuantity, PricingUnit, PricingCategory, "
        "CommitmentDiscountId, CommitmentDiscountStatus, x_CreditType, ChargeDescription, Tags::VARCHAR, "
        "x_InstanceType, ServiceCategory, InvoiceIssuerName"
    )
    seen = []
    for path in (NDJSON, PARQUET, FLAT_CSV):
        con = connect(tmp_path / f"{path.name}.duckdb")
        load_paths(con, [str(path)])
        seen.append(con.execute(f"SELECT {columns} FROM line_items ORDER BY ALL").fetchall())
        con.close()
    assert seen[0] == seen[1] == seen[2]
    assert len(seen[0]) == 89


def test_standard_export_gzip_reconciles(store):
    load_paths(store, [str(STANDARD)])
    assert _stored(store) == _json_totals(STANDARD)
    assert store.execute("SELECT count(*) FROM line_items WHERE ResourceId IS NOT NULL").fetchone() == (0,)
    assert store.execute("SELECT DISTINCT x_SourceFormat FROM line_items").fetchall() == [("gcp-billing-export",)]


# -- FOCUS columns and the decisions documented in the reader -------------------------------------

MANDATORY = (
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId", "BillingCurrency",
    "BillingPeriodStart", "BillingPeriodEnd", "ChargeCategory", "ChargeFrequency", "ChargePeriodStart",
    "ChargePeriodEnd", "InvoiceIssuerName", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "ChargeDescription", "x_SourceFormat", "x_SourceFile",
)


def test_mandatory_columns_are_filled(loaded):
    store = loaded[0]
    nulls = ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in MANDATORY)
    assert store.execute(f"SELECT {nulls} FROM line_items").fetchone() == (0,) * len(MANDATORY)
    assert store.execute(
        "SELECT count(*) FROM line_items WHERE ChargePeriodEnd <= ChargePeriodStart "
        "OR BillingPeriodEnd <> BillingPeriodStart + INTERVAL 1 MONTH"
    ).fetchone() == (0,)
    # FOCUS: quantities only where the charge is metered
    assert store.execute(
        "SELECT count(*) FROM line_items WHERE (ChargeCategory <> 'Usage' AND ConsumedQuantity IS NOT NULL)"
        " OR (ChargeCategory = 'Tax' AND PricingQuantity IS NOT NULL)"
        " OR (ChargeCategory IN ('Usage', 'Purchase') AND PricingQuantity IS NULL)"
    ).fetchone() == (0,)


def test_each_credit_is_its_own_row_on_its_usage_rows_dimensions(loaded):
    store, _path, expected = loaded
    credit_rows = store.execute("SELECT count(*) FROM line_items WHERE x_CreditType IS NOT NULL").fetchone()[0]
    assert credit_rows == sum(n for _, n in expected.values()) == 15
    orphans = store.execute(
        """SELECT count(*) FROM line_items c WHERE c.x_CreditType IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM line_items u WHERE u.x_CreditType IS NULL AND u.ChargeCategory = 'Usage'
               AND u.SkuId = c.SkuId AND u.ResourceId = c.ResourceId AND u.ChargePeriodStart = c.ChargePeriodStart
               AND u.BillingPeriodStart = c.BillingPeriodStart AND u.SubAccountId = c.SubAccountId
               AND u.Tags::VARCHAR = c.Tags::VARCHAR AND u.ServiceName = c.ServiceName)"""
    ).fetchone()
    assert orphans == (0,)
    bad_metrics = store.execute(
        """SELECT count(*) FROM line_items WHERE x_CreditType IS NOT NULL AND (ChargeCategory <> 'Credit'
             OR EffectiveCost <> BilledCost OR ListCost <> BilledCost OR ContractedCost <> BilledCost
             OR BilledCost >= 0 OR ConsumedQuantity IS NOT NULL OR PricingQuantity IS NOT NULL)"""
    ).fetchone()
    assert bad_metrics == (0,)


def test_resource_cud_marks_usage_and_credit_rows(loaded):
    store = loaded[0]
    rows = store.execute(
        """SELECT ChargeCategory, PricingCategory, BilledCost, ChargeDescription, CommitmentDiscountId,
                  CommitmentDiscountName, CommitmentDiscountCategory, CommitmentDiscountType, CommitmentDiscountStatus,
                  x_CreditType
           FROM line_items WHERE ResourceName = 'web-1' AND SkuMeter = 'N2 Instance Core running in Americas'
             AND BillingPeriodStart = ? ORDER BY ChargeCategory DESC""",
        [MAY],
    ).fetchall()
    cud = ("Committed Usage Discount: CPU", "Committed use discount: N2 CPU in us-central1", "Usage",
           "COMMITTED_USAGE_DISCOUNT", "Used")
    usage, credit = rows
    assert usage[:2] == ("Usage", "Committed") and usage[4:9] == cud and usage[9] is None
    assert credit[:2] == ("Credit", None)
    assert credit[3] == "Committed use discount: N2 CPU in us-central1"
    assert credit[4:9] == cud and credit[9] == "COMMITTED_USAGE_DISCOUNT"
    assert usage[2] == Decimal("0.252888") and credit[2] == -usage[2]  # fully covered: nets to zero


def test_spend_cud_sustained_use_and_promotion_credits(loaded):
    store = loaded[0]
    spend = store.execute(
        """SELECT DISTINCT CommitmentDiscountCategory, CommitmentDiscountType, CommitmentDiscountId, BillingCurrency
           FROM line_items WHERE x_CreditType = 'COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE'"""
    ).fetchall()
    assert spend == [("Spend", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE", "9b1e7c34-5d6f-4a8b-9c0d-1e2f3a4b5c6d", "EUR")]
    sud = store.execute(
        """SELECT count(*), count(CommitmentDiscountId), min(ChargeDescription) FROM line_items
           WHERE x_CreditType = 'SUSTAINED_USAGE_DISCOUNT'"""
    ).fetchone()
    assert sud == (5, 0, "Sustained usage discount")
    sud_parents = store.execute(
        """SELECT DISTINCT PricingCategory FROM line_items u WHERE x_CreditType IS NULL AND ChargeCategory = 'Usage'
           AND SkuMeter IN ('A2 Instance Core running in Americas') """
    ).fetchall()
    assert sud_parents == [("Standard",)]
    promo = store.execute(
        """SELECT ServiceName, ServiceCategory, ChargeDescription, sum(BilledCost) FROM line_items
           WHERE x_CreditType = 'PROMOTION' AND BillingAccountId = ? GROUP BY ALL""",
        [US],
    ).fetchall()
    assert [(s, c, d) for s, c, d, _ in promo] == [("Vertex AI", "AI and Machine Learning", "Free trial credit")]
    gemini = store.execute(
        "SELECT sum(BilledCost) FROM line_items WHERE SkuMeter LIKE 'Gemini 1.5 Pro%' AND x_CreditType IS NULL"
    ).fetchone()[0]
    assert promo[0][3] == -gemini / 2  # the promotion covers half of the Gemini token cost


def test_commitment_fees_tax_adjustments_and_late_usage(loaded):
    store = loaded[0]
    fee = store.execute(
        """SELECT ChargeCategory, ChargeFrequency, PricingCategory, CommitmentDiscountCategory, CommitmentDiscountId,
                  CommitmentDiscountStatus
           FROM line_items WHERE SkuMeter LIKE 'Commitment v1:%' AND BillingPeriodStart = ?""",
        [MAY],
    ).fetchall()
    assert fee == [("Purchase", "Recurring", "Standard", "Usage",
                    "//compute.googleapis.com/projects/web-prod/regions/us-central1/commitments/commitment-n2-1y", None)]
    spend_fee = store.execute(
        "SELECT DISTINCT ChargeCategory, CommitmentDiscountCategory FROM line_items WHERE SkuMeter LIKE 'Commitment - dollar%'"
    ).fetchall()
    assert spend_fee == [("Purchase", "Spend")]
    tax = store.execute(
        """SELECT ChargeCategory, ServiceName, ServiceCategory, PricingQuantity, PricingCategory, count(*), sum(BilledCost)
           FROM line_items WHERE x_LineItemType = 'tax' GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    assert [t[:6] for t in tax] == [("Tax", "Invoice", "Other", None, None, 4)]
    adjustments = store.execute(
        """SELECT ChargeDescription, ChargeCategory, ChargeClass, BilledCost FROM line_items
           WHERE x_LineItemType IN ('adjustment', 'rounding_error') ORDER BY BilledCost"""
    ).fetchall()
    assert adjustments == [
        ("Goodwill credit for the May 10 incident", "Credit", "Correction", Decimal("-25")),
        ("Correction of over-metered egress", "Adjustment", "Correction", Decimal("-3.5")),
        ("Rounding error", "Adjustment", None, Decimal("-0.004")),
        ("Rounding error", "Adjustment", None, Decimal("-0.004")),
        ("Same-month adjustment", "Adjustment", None, Decimal("1.25")),
    ]
    late = store.execute(
        """SELECT BillingPeriodStart, ChargePeriodStart, ChargeClass, ChargeCategory FROM line_items
           WHERE ResourceName = 'web-late' AND x_CreditType IS NULL"""
    ).fetchall()
    assert late == [(JUNE, datetime(2024, 5, 30, 10, tzinfo=UTC), None, "Usage")]


def test_tags_instance_types_transfer_and_ai_services(loaded):
    store = loaded[0]
    tags, instance = store.execute(
        "SELECT Tags, x_InstanceType FROM line_items WHERE SkuMeter = 'Nvidia H100 80GB GPU running in Americas' LIMIT 1"
    ).fetchone()
    assert json.loads(tags) == {
        "team": "ml", "env": "prod",
        "gcp-system/compute.googleapis.com/machine_spec": "a3-highgpu-8g",
        "gcp-system/compute.googleapis.com/cores": "208",
        "gcp-system/compute.googleapis.com/memory": "1490944",
        "gcp-project/cost-center": "cc-100",
        "gcp-tag/123456789012/cost-center": "cc-100",
    }
    assert instance == "a3-highgpu-8g"
    spot = store.execute("SELECT Tags, PricingCategory FROM line_items WHERE SkuMeter LIKE 'Spot%' LIMIT 1").fetchone()
    assert json.loads(spot[0])["spot"] is True and spot[1] == "Dynamic"
    gpus = store.execute(
        """SELECT DISTINCT x_InstanceType FROM line_items WHERE SkuMeter = 'Nvidia Tesla A100 GPU running in Americas'"""
    ).fetchall()
    assert gpus == [("a2-highgpu-1g",)]
    transfer = store.execute(
        """SELECT DISTINCT SkuMeter, x_FromLocation, x_ToLocation, x_FromRegionCode FROM line_items
           WHERE x_CreditType IS NULL AND (x_FromLocation IS NOT NULL OR SkuMeter LIKE '%Inter Zone%') ORDER BY ALL"""
    ).fetchall()
    assert transfer == [
        ("Network Inter Region Data Transfer Out from Americas to EMEA", "Americas", "EMEA", "us-central1"),
        ("Network Inter Region Data Transfer Out from EMEA to Americas", "EMEA", "Americas", "europe-west4"),
        ("Network Inter Region Egress from Americas to EMEA", "Americas", "EMEA", "us-central1"),
        ("Network Inter Zone Data Transfer Out", None, None, "us-central1"),
        ("Network Inter Zone Egress", None, None, "us-central1"),
        ("Network Internet Data Transfer Out from Americas to EMEA", "Americas", "EMEA", "us-central1"),
        ("Network Internet Egress from Americas to APAC", "Americas", "APAC", "us-central1"),
    ]
    services = dict(store.execute("SELECT DISTINCT ServiceName, ServiceCategory FROM line_items").fetchall())
    assert services["Vertex AI"] == services["Cloud TPU"] == "AI and Machine Learning"
    assert services["Networking"] == "Networking" and services["Cloud Storage"] == "Storage"
    assert store.execute(
        "SELECT DISTINCT PricingUnit FROM line_items WHERE SkuMeter LIKE 'Gemini%' AND x_CreditType IS NULL"
    ).fetchall() == [("1000 Count",)]


def test_eur_account_keeps_its_currency_and_usd_pricing_currency(loaded):
    store = loaded[0]
    row = store.execute(
        """SELECT BillingCurrency, PricingCurrency, BilledCost, PricingCurrencyEffectiveCost, InvoiceIssuerName
           FROM line_items WHERE BillingAccountId = ? AND SkuMeter = 'Analysis' AND x_CreditType IS NULL
             AND BillingPeriodStart = ?""",
        [EU, MAY],
    ).fetchone()
    currency, pricing_currency, billed, in_usd, issuer = row
    assert (currency, pricing_currency, issuer) == ("EUR", "USD", "Google Cloud EMEA Limited")
    assert abs(in_usd - billed / Decimal("0.92")) < Decimal("0.000001")
    assert store.execute(
        "SELECT DISTINCT BillingCurrency FROM line_items WHERE BillingAccountId = ?", [US]
    ).fetchall() == [("USD",)]
