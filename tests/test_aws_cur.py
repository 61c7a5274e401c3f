"""AWS CUR 1 (slash and Athena), CUR 2.0 and detection: real samples and the bundled fixtures.

Every load is checked against a sum written here, straight over the raw file with DuckDB, so
the reader's own source-total SQL is not what proves it right.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors.files import describe, sniff
from costaudit.connectors.formats import detect
from costaudit.connectors.formats.aws_cur import athena_name
from costaudit.connectors.sql import install_macros
from costaudit.errors import InputError
from costaudit.loader import load_paths

from .conftest import FIXTURES, REPO

AWS = FIXTURES / "aws"
SAMPLE_CUR = "focus-converters/sample-anonymous-aws-export-dataset.csv"
CENT = Decimal("0.01")


def _csv(path: Path, extra: str = "") -> str:
    return f"read_csv('{path}', header = true, all_varchar = true{extra})"


def _stored(store, source_format: str | None = None) -> dict[tuple, Decimal]:
    where = f"WHERE x_SourceFormat = '{source_format}'" if source_format else ""
    rows = store.execute(
        f"""SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), BillingCurrency, sum(BilledCost)
            FROM line_items {where} GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:3]): r[3] for r in rows}


def _independent(sql: str) -> dict[tuple, Decimal]:
    """(payer, YYYY-MM, currency) -> sum, from a query written in the test over the raw file."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return {tuple(r[:3]): r[3] for r in con.execute(sql).fetchall()}


def _assert_same(stored: dict, expected: dict) -> None:
    assert stored.keys() == expected.keys()
    for key, total in expected.items():
        assert abs(stored[key] - total) <= CENT, (key, stored[key], total)


def _cur1_sum(relation: str) -> str:
    return f"""
        SELECT "bill/PayerAccountId", strftime(CAST("bill/BillingPeriodStartDate" AS TIMESTAMPTZ), '%Y-%m'),
               "lineItem/CurrencyCode", sum(CAST("lineItem/UnblendedCost" AS DECIMAL(38, 12)))
        FROM {relation} GROUP BY ALL"""


# -- real samples -----------------------------------------------------------------------------

@pytest.mark.parametrize("sample", [SAMPLE_CUR, "koku/aws/2023-06-01.csv"])
def test_sample_cur_reconciles_with_an_independent_sum(samples_dir, store, sample):
    path = samples_dir / sample
    report = load_paths(store, [str(path)])
    assert {p.source_format for p in report.partitions} == {"aws-cur"}
    assert all(abs(p.difference) <= CENT for p in report.partitions)
    _assert_same(_stored(store), _independent(_cur1_sum(_csv(path))))
    raw_rows = duckdb.sql(f"SELECT count(*) FROM {_csv(path)}").fetchall()[0][0]
    assert store.execute("SELECT count(*) FROM line_items").fetchall()[0][0] == raw_rows


def test_sample_totals_are_the_known_invoice_totals(samples_dir, store):
    load_paths(store, [str(samples_dir / SAMPLE_CUR), str(samples_dir / "koku/aws/2023-06-01.csv")])
    assert _stored(store) == {
        ("123412340534", "2023-11", "USD"): Decimal("1.682308697400"),
        ("0099999999999", "2023-06", "NOK"): Decimal("30.000000000000"),
    }


def test_malformed_header_cell_still_loads_with_savings_plan_amortisation(samples_dir, store):
    # koku's 2023-06-01.csv has the merged header `pricing/OfferingClasspricing/PurchaseOption`.
    load_paths(store, [str(samples_dir / "koku/aws/2023-06-01.csv")])
    rows = store.execute(
        "SELECT BilledCost, EffectiveCost, ListCost, PricingCategory, CommitmentDiscountStatus, ServiceName,"
        " RegionName, x_CostCategories->>'cost_env' FROM line_items"
    ).fetchall()
    assert rows == [
        (Decimal(10), Decimal("0.1"), Decimal(10), "Committed", None, "Amazon Elastic Compute Cloud",
         "US West (N. California)", "prod")
    ] * 3


def test_koku_cur_with_short_rows_loads(samples_dir, store):
    path = samples_dir / "koku/aws/test_cur.csv"
    load_paths(store, [str(path)])
    _assert_same(_stored(store), _independent(_cur1_sum(_csv(path, ", null_padding = true"))))


def test_sample_data_transfer_and_tax_rows_are_mapped(samples_dir, store):
    load_paths(store, [str(samples_dir / SAMPLE_CUR)])
    transfer = store.execute(
        "SELECT ServiceName, ServiceCategory, RegionId, RegionName, x_FromRegionCode, x_ToRegionCode, x_TransferType,"
        " PricingUnit, SkuPriceId IS NOT NULL FROM line_items WHERE x_UsageType = 'USE1-EUC1-AWS-Out-Bytes' LIMIT 1"
    ).fetchall()
    assert transfer == [("Amazon Simple Storage Service", "Storage", "us-east-1", "US East (N. Virginia)",
                         "us-east-1", "eu-central-1", "InterRegion Outbound", "GB", True)]
    tax = store.execute(
        "SELECT DISTINCT ChargeCategory, PricingCategory, PricingQuantity, ChargeFrequency, InvoiceIssuerName, PublisherName"
        " FROM line_items WHERE x_LineItemType = 'Tax'"
    ).fetchall()
    assert tax == [("Tax", None, None, "Recurring", "Amazon Web Services Canada, Inc.", "Amazon Web Services Canada, Inc.")]
    assert store.execute("SELECT count(*) FROM line_items WHERE ServiceCategory IS NULL OR ServiceName IS NULL").fetchall() == [(0,)]
    # FOCUS SkuMeter: the usage type, whenever a SKU is stated (as AWS's own FOCUS export fills it)
    assert store.execute("SELECT count(*) FROM line_items WHERE SkuId IS NOT NULL AND SkuMeter IS DISTINCT FROM x_UsageType").fetchall() == [(0,)]


# -- commitment amortisation on the fixtures ----------------------------------------------------

def _fixture_rows(store, month: str):
    return store.execute(
        f"""SELECT x_LineItemType, x_UsageType, BilledCost, EffectiveCost, ListCost, ContractedCost, ChargeCategory,
                   ChargeFrequency, PricingCategory, CommitmentDiscountCategory, CommitmentDiscountType,
                   CommitmentDiscountStatus, CommitmentDiscountId IS NOT NULL, ChargeClass
            FROM line_items WHERE strftime(BillingPeriodStart, '%Y-%m') = '{month}' ORDER BY ALL"""
    ).fetchall()


def test_effective_cost_per_line_item_type(store):
    load_paths(store, [str(AWS / "cur1")])
    got = {(r[0], r[1]): r[2:] for r in _fixture_rows(store, "2024-01")}
    D = Decimal
    expect = {
        # type, usage type: billed, effective, list, contracted, category, frequency, pricing, cd category, cd type, status, has id, class
        ("Usage", "BoxUsage:p4d.24xlarge"): (D("786.5424"), D("786.5424"), D("786.5424"), D("786.5424"),
                                             "Usage", "Usage-Based", "Standard", None, None, None, False, None),
        ("SavingsPlanCoveredUsage", "BoxUsage:p5.48xlarge"): (D("983.2"), D("600"), D("983.2"), D("983.2"),
                                                              "Usage", "Usage-Based", "Committed", "Spend", "Savings Plan", "Used", True, None),
        ("SavingsPlanNegation", "BoxUsage:p5.48xlarge"): (D("-983.2"), D(0), D(0), D(0),
                                                          "Usage", "Usage-Based", "Committed", "Spend", "Savings Plan", "Used", True, None),
        ("SavingsPlanCoveredUsage", "BoxUsage:g5.xlarge"): (D("100.6"), D("62"), D("100.6"), D("100.6"),
                                                            "Usage", "Usage-Based", "Committed", "Spend", "Savings Plan", "Used", True, None),
        ("SavingsPlanRecurringFee", "ComputeSP:1yrNoUpfront"): (D(700), D(38), D(700), D(700),
                                                                "Purchase", "Recurring", "Standard", "Spend", "Savings Plan", "Unused", True, None),
        ("SavingsPlanUpfrontFee", "ComputeSP:3yrPartialUpfront"): (D(1200), D(0), D(1200), D(1200),
                                                                   "Purchase", "One-Time", "Standard", "Spend", "Savings Plan", None, True, None),
        ("DiscountedUsage", "BoxUsage:inf2.xlarge"): (D(0), D(100), D("151.6"), D("151.6"),
                                                      "Usage", "Usage-Based", "Committed", "Usage", "Reserved Instance", "Used", True, None),
        ("DiscountedUsage", "BoxUsage:trn1.32xlarge"): (D(0), D(800), D("1075"), D("1075"),
                                                        "Usage", "Usage-Based", "Committed", "Usage", "Reserved Instance", "Used", True, None),
        ("RIFee", "USE1-HeavyUsage:inf2.xlarge"): (D(60), D(10), D(60), D(60),
                                                   "Purchase", "Recurring", "Standard", "Usage", "Reserved Instance", "Unused", True, None),
        ("RIFee", "USE1-HeavyUsage:trn1.32xlarge"): (D(500), D(0), D(500), D(500),
                                                     "Purchase", "Recurring", "Standard", "Usage", "Reserved Instance", None, True, None),
        ("Fee", "USE1-HeavyUsage:trn1.32xlarge"): (D(3000), D(0), D(3000), D(3000),
                                                   "Purchase", "One-Time", "Standard", "Usage", "Reserved Instance", None, True, None),
        ("Usage", "SpotUsage:g5.2xlarge"): (D("19.2"), D("19.2"), D("19.2"), D("19.2"),
                                            "Usage", "Usage-Based", "Dynamic", None, None, None, False, None),
        ("Credit", None): (D(-50), D(-50), D(-50), D(-50), "Credit", "One-Time", "Other", None, None, None, False, None),
    }
    for key, values in expect.items():
        assert got[key] == values, key
    tax = got[("Tax", None)]
    assert tax[0] == tax[1] == tax[2] and tax[4] == "Tax" and tax[6] is None
    # FOCUS: per commitment, amortised usage plus unused equals the commitment (700 for the SP).
    sp = store.execute(
        """SELECT sum(EffectiveCost) FROM line_items WHERE CommitmentDiscountType = 'Savings Plan'
           AND strftime(BillingPeriodStart, '%Y-%m') = '2024-01' AND x_LineItemType <> 'SavingsPlanUpfrontFee'"""
    ).fetchall()[0][0]
    assert sp == Decimal(700)


def test_refund_of_an_earlier_month_is_a_correction(store):
    load_paths(store, [str(AWS / "cur1")])
    rows = store.execute(
        "SELECT ChargeCategory, ChargeClass, BilledCost, EffectiveCost FROM line_items WHERE x_LineItemType = 'Refund'"
    ).fetchall()
    assert rows == [("Credit", "Correction", Decimal(-15), Decimal(-15))]


def test_gpu_ai_and_transfer_rows_keep_their_extras(store):
    load_paths(store, [str(AWS / "cur1")])
    rows = dict(
        (r[0], r[1:]) for r in store.execute(
            """SELECT x_UsageType, ServiceName, ServiceCategory, ServiceSubcategory, x_InstanceType, PricingUnit,
                      x_TransferType, x_ToRegionCode, Tags->>'team'
               FROM line_items WHERE strftime(BillingPeriodStart, '%Y-%m') = '2024-02' AND x_LineItemType = 'Usage'"""
        ).fetchall()
    )
    assert rows["USE1-Claude3Sonnet-output-tokens"] == ("Amazon Bedrock", "AI and Machine Learning", "Generative AI",
                                                       None, "1000 Tokens", None, None, "ml")
    assert rows["USE1-Train:ml.p4d.24xlarge"][:4] == ("Amazon SageMaker", "AI and Machine Learning", "Machine Learning",
                                                     "ml.p4d.24xlarge")
    assert rows["USE1-EUW1-AWS-Out-Bytes"][5:7] == ("InterRegion Outbound", "eu-west-1")
    assert rows["USE1-DataTransfer-Out-Bytes"][5] == "AWS Outbound"
    assert rows["USE1-DataTransfer-Regional-Bytes"][5] == "IntraRegion"
    assert rows["USE1-NatGateway-Bytes"][4] == "GB"
    assert rows["USE1-TimedStorage-ByteHrs"][4] == "GB-Months"
    tags = store.execute("SELECT DISTINCT Tags FROM line_items WHERE x_UsageType = 'USE1-NatGateway-Hours'").fetchall()
    assert tags == [('{"aws:createdBy":"IAMUser:AIDAEXAMPLE:deploy","team":"web"}',)]


# -- Athena flavour ----------------------------------------------------------------------------

def _athena_sum(relation: str) -> str:
    return f"""
        SELECT bill_payer_account_id, strftime(CAST(bill_billing_period_start_date AS TIMESTAMPTZ), '%Y-%m'),
               line_item_currency_code, sum(CAST(line_item_unblended_cost AS DECIMAL(38, 12)))
        FROM {relation} GROUP BY ALL"""


def test_athena_parquet_and_csv_load_the_same(store, tmp_path):
    parquet = f"read_parquet('{AWS}/athena/**/*.parquet')"
    report = load_paths(store, [str(AWS / "athena")])
    assert {p.source_format for p in report.partitions} == {"aws-cur-athena"}
    expected = _independent(_athena_sum(parquet))
    assert set(expected) == {("999988887777", "2024-01", "EUR"), ("999988887777", "2024-02", "EUR")}
    _assert_same(_stored(store), expected)
    from_parquet = store.execute(
        "SELECT x_LineItemType, x_UsageType, BilledCost, EffectiveCost, Tags, x_CostCategories FROM line_items ORDER BY ALL"
    ).fetchall()

    csv_path = tmp_path / "athena.csv"
    duckdb.sql(f"COPY (SELECT * FROM {parquet}) TO '{csv_path}' (HEADER)")
    store.execute("DELETE FROM line_items")
    store.execute("DELETE FROM loads")
    report = load_paths(store, [str(csv_path)])
    assert {p.source_format for p in report.partitions} == {"aws-cur-athena"}
    _assert_same(_stored(store), _independent(_athena_sum(_csv(csv_path))))
    from_csv = store.execute(
        "SELECT x_LineItemType, x_UsageType, BilledCost, EffectiveCost, Tags, x_CostCategories FROM line_items ORDER BY ALL"
    ).fetchall()
    assert from_csv == from_parquet


def test_athena_tags_and_cost_categories(store):
    load_paths(store, [str(AWS / "athena")])
    rows = store.execute(
        "SELECT DISTINCT Tags, x_CostCategories FROM line_items WHERE x_UsageType = 'EUW1-NatGateway-Bytes'"
    ).fetchall()
    assert rows == [('{"aws:createdBy":"IAMUser:AIDAEXAMPLE:deploy","team":"web"}', '{"cost_center":"CC-200"}')]


# -- detection ----------------------------------------------------------------------------------

def _detected(path: Path) -> str:
    con = duckdb.connect()
    install_macros(con)
    fmt = detect(describe(con, [sniff(path)]))
    return fmt.id if fmt else "none"


def test_detection_tells_every_aws_flavour_apart(samples_dir):
    assert _detected(samples_dir / SAMPLE_CUR) == "aws-cur"
    assert _detected(samples_dir / "koku/aws/2023-06-01.csv") == "aws-cur"
    assert _detected(next((AWS / "cur1").rglob("*.csv.gz"))) == "aws-cur"
    assert _detected(next((AWS / "athena").rglob("*.parquet"))) == "aws-cur-athena"
    assert _detected(next((AWS / "data-exports/acme-cur2").rglob("*.parquet"))) == "aws-cur2"
    assert _detected(next((AWS / "data-exports/emea-cur2-csv").rglob("*.csv.gz"))) == "aws-cur2"
    assert _detected(next((AWS / "data-exports/acme-focus").rglob("*.parquet"))) == "focus"
    assert _detected(samples_dir / "focus-sample-data/focus_sample.csv") == "focus"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("", "aws-cur-athena"), ("year,month,", "aws-cur-athena"), ("resource_tags_user_team,", "aws-cur-athena"),
     ("product,", "aws-cur2"), ("resource_tags,", "aws-cur2"), ("bill_payer_account_name,", "aws-cur2"),
     ("line_item_usage_account_name,", "aws-cur2")],
)
def test_snake_case_cur1_and_cur2_do_not_collide(tmp_path, extra, expected):
    path = tmp_path / "x.csv"
    header = f"{extra}bill_payer_account_id,line_item_line_item_type,line_item_unblended_cost,line_item_currency_code"
    path.write_text(header + "\n" + ",".join(["x"] * len(header.split(","))) + "\n")
    assert _detected(path) == expected


# -- names, tags, data files ----------------------------------------------------------------------

def test_athena_names_follow_aws_spelling():
    assert athena_name("savingsPlan/SavingsPlanARN") == "savings_plan_savings_plan_a_r_n"
    assert athena_name("reservation/ReservationARN") == "reservation_reservation_a_r_n"
    assert athena_name("lineItem/LineItemType") == "line_item_line_item_type"
    assert athena_name("pricing/publicOnDemandCost") == "pricing_public_on_demand_cost"
    assert athena_name("product/servicecode") == "product_servicecode"
    assert athena_name("reservation/UnusedAmortizedUpfrontFeeForBillingPeriod") == (
        "reservation_unused_amortized_upfront_fee_for_billing_period")


def test_service_mapping_is_unique_and_uses_focus_categories():
    con = duckdb.connect()
    path = REPO / "src/costaudit/data/aws_services.csv"
    rows = con.execute(f"SELECT * FROM read_csv('{path}', header = true, comment = '#', all_varchar = true)").fetchall()
    codes = [r[0] for r in rows]
    assert len(codes) == len(set(codes)) and len(codes) > 150
    assert all(r[1] and r[2] and r[3] for r in rows)
    reference = REPO.parent / "shared/reference/open-data/focus-spec/ServiceSubcategory.csv"
    if reference.exists():
        allowed = set(con.execute(f"SELECT ServiceCategory, ServiceSubcategory FROM read_csv('{reference}')").fetchall())
        assert {(r[2], r[3]) for r in rows} <= allowed
    for name in ("aws_regions.csv", "aws_units.csv"):
        keys = con.execute(f"SELECT * FROM read_csv('{REPO}/src/costaudit/data/{name}', comment = '#')").fetchall()
        assert len({k[0] for k in keys}) == len(keys)


def test_missing_payer_column_is_named(store, tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text("lineItem/LineItemType,lineItem/UnblendedCost,lineItem/CurrencyCode\nUsage,1.5,USD\n")
    with pytest.raises(InputError) as err:
        load_paths(store, [str(path)])
    assert err.value.column == "bill/PayerAccountId"


def test_unparsable_cost_names_row_and_column(store, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/CurrencyCode\n"
        "1,2024-01-01T00:00:00Z,Usage,1.5,USD\n1,2024-01-01T00:00:00Z,Usage,12 USD,USD\n"
    )
    with pytest.raises(InputError) as err:
        load_paths(store, [str(path)])
    assert (err.value.row, err.value.column) == (2, "lineItem/UnblendedCost")
