"""Azure actual vs amortized: the mapping of every ChargeType x PricingModel combination, how a
loose file's dataset is told from its rows, tags with and without braces, and camelCase headers.

Fixtures come from fixtures/gen_azure.py; expected values are computed here from the raw CSVs.
"""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.errors import InputError
from costaudit.loader import load_paths

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "azure"
EA_ACTUAL = FIXTURES / "ea_actual.csv"
EA_AMORTIZED = FIXTURES / "ea_amortized.csv"
MCA = FIXTURES / "mca_actual_eur.csv"

# (dataset, ChargeType, PricingModel) -> ChargeCategory, ChargeClass, CommitmentDiscountStatus,
# PricingCategory, BilledCost rule, EffectiveCost rule ("cost" = the row's CostInBillingCurrency).
EXPECTED = {
    ("azure-actual", "Usage", "OnDemand"): ("Usage", None, None, "Standard", "cost", "cost"),
    ("azure-actual", "Usage", "Spot"): ("Usage", None, None, "Dynamic", "cost", "cost"),
    ("azure-actual", "Usage", "Reservation"): ("Usage", None, "Used", "Committed", "cost", "cost"),
    ("azure-actual", "Usage", "SavingsPlan"): ("Usage", None, "Used", "Committed", "cost", "cost"),
    ("azure-actual", "Purchase", "Reservation"): ("Purchase", None, None, "Standard", "cost", "zero"),
    ("azure-actual", "Purchase", "SavingsPlan"): ("Purchase", None, None, "Standard", "cost", "zero"),
    ("azure-actual", "Purchase", "OnDemand"): ("Purchase", None, None, "Standard", "cost", "cost"),
    ("azure-actual", "Refund", "Reservation"): ("Purchase", "Correction", None, "Standard", "cost", "zero"),
    ("azure-amortized", "Usage", "OnDemand"): ("Usage", None, None, "Standard", "cost", "cost"),
    ("azure-amortized", "Usage", "Spot"): ("Usage", None, None, "Dynamic", "cost", "cost"),
    ("azure-amortized", "Usage", "Reservation"): ("Usage", None, "Used", "Committed", "zero", "cost"),
    ("azure-amortized", "Usage", "SavingsPlan"): ("Usage", None, "Used", "Committed", "zero", "cost"),
    ("azure-amortized", "UnusedReservation", "Reservation"): ("Usage", None, "Unused", "Committed", "zero", "cost"),
    ("azure-amortized", "UnusedSavingsPlan", "SavingsPlan"): ("Usage", None, "Unused", "Committed", "zero", "cost"),
    ("azure-amortized", "Purchase", "OnDemand"): ("Purchase", None, None, "Standard", "cost", "cost"),
}


def raw_by_combination(path: Path) -> dict:
    sql = f"""SELECT ChargeType, PricingModel, sum(CAST(CostInBillingCurrency AS DECIMAL(38,12))), count(*)
              FROM read_csv('{path}', header = true, all_varchar = true) GROUP BY ALL"""
    return {(ct, pm): (Decimal(total), n) for ct, pm, total, n in duckdb.sql(sql).fetchall()}


@pytest.fixture
def both(store):
    report = load_paths(store, [str(EA_ACTUAL), str(EA_AMORTIZED)])
    assert {(p.source_format, p.basis) for p in report.partitions} == {
        ("azure-actual", "BilledCost"), ("azure-amortized", "EffectiveCost")}
    return store


def test_every_charge_type_and_pricing_model(both):
    raw = {"azure-actual": raw_by_combination(EA_ACTUAL), "azure-amortized": raw_by_combination(EA_AMORTIZED)}
    seen = set()
    for dataset, combos in raw.items():
        for (ct, pm), (cost, count) in combos.items():
            key = (dataset, ct, pm)
            assert key in EXPECTED, f"fixture has an untested combination {key}"
            seen.add(key)
            category, klass, status, pricing, billed_rule, effective_rule = EXPECTED[key]
            rows = both.execute(
                """SELECT ChargeCategory, ChargeClass, CommitmentDiscountStatus, PricingCategory,
                          sum(BilledCost), sum(EffectiveCost), count(*)
                   FROM line_items WHERE x_SourceFormat = ? AND x_LineItemType = ? AND x_PricingModel = ?
                   GROUP BY ALL""",
                [dataset, ct, pm],
            ).fetchall()
            assert len(rows) == 1, f"{key}: rows of one combination map differently: {rows}"
            got = rows[0]
            assert got[:4] == (category, klass, status, pricing), key
            assert got[4] == (cost if billed_rule == "cost" else 0), f"{key} BilledCost"
            assert got[5] == (cost if effective_rule == "cost" else 0), f"{key} EffectiveCost"
            assert got[6] == count
    assert seen == set(EXPECTED), f"combinations missing from the fixtures: {set(EXPECTED) - seen}"


def test_commitments_balance_across_the_two_datasets(both):
    """FOCUS: per commitment, amortized usage (used + unused) equals what its purchases billed."""
    rows = both.execute(
        """SELECT CommitmentDiscountId, CommitmentDiscountType, strftime(BillingPeriodStart, '%Y-%m'),
                  sum(BilledCost) FILTER (WHERE x_SourceFormat = 'azure-actual' AND ChargeCategory = 'Purchase'
                                          AND ChargeClass IS NULL),
                  sum(EffectiveCost) FILTER (WHERE x_SourceFormat = 'azure-amortized' AND ChargeCategory = 'Usage')
           FROM line_items WHERE CommitmentDiscountId IS NOT NULL AND BillingAccountId = '86310001' GROUP BY ALL"""
    ).fetchall()
    assert {(r[1], r[2]) for r in rows} == {(t, m) for t in ("Reservation", "Savings Plan") for m in ("2024-01", "2024-02")}
    for _id, _type, _month, purchased, amortized in rows:
        assert purchased == amortized and purchased > 0


def test_unused_commitment_rows(both):
    unused = both.execute(
        """SELECT ResourceId = CommitmentDiscountId, ConsumedQuantity, CommitmentDiscountQuantity, CommitmentDiscountUnit,
                  CommitmentDiscountCategory, ServiceCategory
           FROM line_items WHERE CommitmentDiscountStatus = 'Unused' ORDER BY CommitmentDiscountCategory"""
    ).fetchall()
    assert unused and all(r[0] and r[1] is None for r in unused)
    assert {(r[4], r[3]) for r in unused} == {("Spend", "USD"), ("Usage", "Hours")}


def test_gpu_ai_and_transfer_rows(both):
    def one(where: str) -> tuple:
        rows = both.execute(
            f"""SELECT x_InstanceType, ServiceName, ServiceCategory, ServiceSubcategory, x_TransferType, x_FromRegionCode,
                       x_ToRegionCode, x_UsageType, PricingUnit, ConsumedUnit
                FROM line_items WHERE x_SourceFormat = 'azure-actual' AND {where} LIMIT 1"""
        ).fetchall()
        assert rows, where
        return rows[0]

    assert one("SkuMeter = 'NC24ads A100 v4'")[:3] == ("Standard_NC24ads_A100_v4", "Virtual Machines", "Compute")
    assert one("SkuMeter = 'ND96asr A100 v4 Spot'")[0] == "Standard_ND96asr_v4"
    assert one("SkuMeter LIKE 'gpt-4o 0513 Input%'")[1:4] == ("Azure AI Services", "AI and Machine Learning", "AI Platforms")
    assert one("SkuMeter LIKE 'gpt-4o 0513 Input%'")[8] == "1000 Units"
    assert one("x_ServiceCode = 'Microsoft.MachineLearningServices'")[1:3] == ("Azure Machine Learning", "AI and Machine Learning")
    inter = one("x_SkuMeterSubcategory = 'Inter-Region'")
    assert inter[4:7] == ("Inter-Region - Intra Continent Data Transfer Out", "eastus", None)
    assert one("SkuMeter = 'Data Transfer In'")[5:7] == (None, "eastus")
    assert one("SkuMeter = 'Standard Data Processed'")[1:3] == ("Azure NAT Gateway", "Networking")
    assert one("SkuMeter = 'Intra-Region Egress'")[4] == "Peering - Intra-Region Egress"
    assert one("SkuMeter = 'Hot RA-GRS Data Stored'")[8:10] == ("GB/Month", "GB/Month")
    assert one("SkuMeter = 'Geo-Replication v2 Data Transfer'")[4] == "Storage - Bandwidth - Geo-Replication v2 Data Transfer"


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


TAG_HEADER = ["BillingAccountId", "BillingPeriodStartDate", "Date", "MeterCategory", "CostInBillingCurrency",
              "BillingCurrencyCode", "ChargeType", "Tags"]


def test_tags_with_and_without_braces(tmp_path, store):
    path = _write(tmp_path / "tags.csv", TAG_HEADER, [
        ["9", "01/01/2024", "01/02/2024", "Storage", "1", "USD", "Usage", '"env": "prod","cost-center": "42"'],
        ["9", "01/01/2024", "01/02/2024", "Storage", "2", "USD", "Usage", '{"env": "dev"}'],
        ["9", "01/01/2024", "01/02/2024", "Storage", "3", "USD", "Usage", ""],
        ["9", "01/01/2024", "01/02/2024", "Storage", "4", "USD", "Usage", "{}"],
    ])
    load_paths(store, [str(path)])
    tags = [t for (t,) in store.execute("SELECT Tags FROM line_items ORDER BY BilledCost").fetchall()]
    assert [json.loads(t) if t else None for t in tags] == [{"env": "prod", "cost-center": "42"}, {"env": "dev"}, None, None]
    assert store.execute("SELECT bool_and(json_type(Tags) = 'OBJECT') FROM line_items WHERE Tags IS NOT NULL").fetchone()[0]


def test_malformed_tags_name_the_row(tmp_path, store):
    path = _write(tmp_path / "tags.csv", TAG_HEADER, [
        ["9", "01/01/2024", "01/02/2024", "Storage", "1", "USD", "Usage", '"env": "prod"'],
        ["9", "01/01/2024", "01/02/2024", "Storage", "2", "USD", "Usage", '"env": '],
    ])
    with pytest.raises(InputError, match="not a JSON object") as info:
        load_paths(store, [str(path)])
    assert (info.value.row, info.value.column) == (2, "Tags")


def test_mca_camel_case_in_eur(store):
    report = load_paths(store, [str(MCA)])
    raw = duckdb.sql(
        f"""SELECT billingProfileId, strftime(CAST(billingPeriodStartDate AS DATE), '%Y-%m'), billingCurrency,
                   sum(CAST(costInBillingCurrency AS DECIMAL(38,12))), sum(CAST(costInPricingCurrency AS DECIMAL(38,12)))
            FROM read_csv('{MCA}', header = true, all_varchar = true) GROUP BY ALL"""
    ).fetchall()
    stored = store.execute(
        """SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), BillingCurrency, sum(BilledCost),
                  sum(PricingCurrencyEffectiveCost) FROM line_items GROUP BY ALL"""
    ).fetchall()
    assert sorted(stored) == sorted(raw) and len(raw) == 2
    assert {p.currency for p in report.partitions} == {"EUR"}
    row = store.execute(
        """SELECT BillingAccountType, BillingAccountName, PricingCurrency, InvoiceId, ListCost, ContractedCost,
                  ContractedUnitPrice, PricingCurrencyContractedUnitPrice, PricingCurrencyListUnitPrice
           FROM line_items WHERE SkuMeter = 'D2s v5' AND BillingPeriodStart = '2024-01-01'"""
    ).fetchone()
    assert row[:4] == ("Billing Profile", "Contoso Europe", "USD", "E0600000123")
    # List cost is the export's paygCostInBillingCurrency; contracted cost unitPrice x quantity x rate (EUR).
    assert row[4] == Decimal("65.71008") and row[5] == Decimal("744") * Decimal("0.0912") * Decimal("0.92")
    assert row[6] == Decimal("0.0912") * Decimal("0.92") and row[7:] == (Decimal("0.0912"), Decimal("0.096"))
    kinds = dict(store.execute("SELECT x_LineItemType, ChargeCategory FROM line_items").fetchall())
    assert kinds == {"Usage": "Usage", "Purchase": "Purchase", "Tax": "Tax", "Credit": "Credit", "RoundingAdjustment": "Adjustment"}
    tax = store.execute("SELECT PricingCategory, PricingQuantity, PricingUnit FROM line_items WHERE ChargeCategory = 'Tax'").fetchall()
    assert set(tax) == {(None, None, None)}


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_header_casing_does_not_matter(case, tmp_path, store):
    lines = EA_ACTUAL.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    path = tmp_path / "cased.csv"
    path.write_text(case(lines[0]) + "".join(lines[1:]), encoding="utf-8")
    load_paths(store, [str(path)])
    expected = duckdb.sql(
        f"SELECT sum(CAST(CostInBillingCurrency AS DECIMAL(38,12))) FROM read_csv('{EA_ACTUAL}', header = true, all_varchar = true)"
    ).fetchall()[0][0]
    assert store.execute("SELECT sum(BilledCost) FROM line_items").fetchone()[0] == expected
    assert store.execute("SELECT count(DISTINCT CommitmentDiscountType) FROM line_items").fetchone()[0] == 2


# -- which dataset a loose file is -----------------------------------------------------------

def test_amortized_file_is_recognised_by_its_rows(tmp_path, store):
    copy = shutil.copy(EA_AMORTIZED, tmp_path / "export.csv")  # no name hint either
    report = load_paths(store, [str(copy)])
    assert {(p.source_format, p.source_export, p.basis) for p in report.partitions} == {
        ("azure-amortized", "azure-amortized", "EffectiveCost")}


def test_without_commitment_rows_the_default_is_actual(tmp_path, store):
    """Rows without commitments are identical in both datasets; read as the invoice view."""
    run = next(FIXTURES.glob("exports/northwind-amortized/**/part_0_0001.csv"))
    report = load_paths(store, [str(shutil.copy(run, tmp_path / "part.csv"))])
    assert {p.source_format for p in report.partitions} == {"azure-actual"}


def test_file_mixing_actual_and_amortized_rows_is_refused(tmp_path, store):
    actual = EA_ACTUAL.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    amortized = EA_AMORTIZED.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "mixed.csv"
    path.write_text("".join(actual) + "".join(amortized[1:]), encoding="utf-8")
    with pytest.raises(InputError, match="both actual rows .* and amortized rows"):
        load_paths(store, [str(path)])


def test_two_runs_of_one_month_without_manifest_are_refused(tmp_path, store):
    first = shutil.copy(EA_ACTUAL, tmp_path / "a.csv")
    second = shutil.copy(EA_ACTUAL, tmp_path / "b.csv")
    with pytest.raises(InputError, match="both this file and .* billing account 86310001, month 2024-01"):
        load_paths(store, [str(first), str(second)])
    assert store.execute("SELECT count(*) FROM line_items").fetchone()[0] == 0


def _raw_total(path: Path, account: str) -> dict[str, Decimal]:
    """CostInBillingCurrency per billing month of one account, straight from the CSV."""
    sql = f"""SELECT strftime(strptime(BillingPeriodStartDate, '%m/%d/%Y'), '%Y-%m'),
                     sum(CAST(CostInBillingCurrency AS DECIMAL(38,12)))
              FROM read_csv('{path}', header = true, all_varchar = true)
              WHERE BillingAccountId = '{account}' GROUP BY ALL"""
    return {month: Decimal(total) for month, total in duckdb.sql(sql).fetchall()}


@pytest.mark.parametrize("order", [(EA_ACTUAL, EA_AMORTIZED), (EA_AMORTIZED, EA_ACTUAL)], ids=["amortized-last", "actual-last"])
def test_an_actual_and_an_amortized_export_of_one_bill_are_read_together(store, order, tmp_path):
    """Microsoft's FOCUS conversion (formats.md 6.2): the amortized rows plus the actual rows of
    commitment purchases and refunds. BilledCost is then the invoice (the actual export's total)
    and EffectiveCost the amortized total, whichever of the two was loaded last."""
    from costaudit.analysis import run_analysis
    from costaudit.analysis.config import AnalysisConfig

    for path in order:
        load_paths(store, [str(path)])
    invoice, amortized = _raw_total(EA_ACTUAL, "86310001"), _raw_total(EA_AMORTIZED, "86310001")
    read = {month: (billed, effective) for month, billed, effective in store.execute(
        """SELECT strftime(BillingPeriodStart, '%Y-%m'), sum(BilledCost), sum(EffectiveCost)
           FROM current_line_items WHERE BillingAccountId = '86310001' GROUP BY ALL""").fetchall()}
    assert read == {month: (invoice[month], amortized[month]) for month in invoice}
    # Each export alone is one of the two costs short, which is what this reading repairs.
    alone = dict(store.execute(
        """SELECT x_SourceFormat, sum(BilledCost) FROM line_items WHERE BillingAccountId = '86310001'
           AND strftime(BillingPeriodStart, '%Y-%m') = '2024-01' GROUP BY ALL""").fetchall())
    assert alone["azure-amortized"] < invoice["2024-01"] == alone["azure-actual"]
    # Of the actual export, exactly its commitment purchases and refunds are read.
    [(extra,)] = store.execute(
        """SELECT count(*) FROM current_line_items WHERE x_SourceFormat = 'azure-actual'
           AND NOT (lower(x_LineItemType) IN ('purchase', 'refund')
                    AND lower(x_PricingModel) IN ('reservation', 'savingsplan'))""").fetchall()
    assert extra == 0
    scopes = store.execute("SELECT DISTINCT source_format, row_scope FROM current_loads ORDER BY 1").fetchall()
    assert scopes == [("azure-actual", "commitment purchases"), ("azure-amortized", "all")]
    # The analysis sums the same rows, once each.
    run_analysis(store, AnalysisConfig())
    lines = store.execute("SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM current_line_items").fetchone()
    totals = store.execute(
        "SELECT sum(line_item_rows), sum(BilledCost), sum(EffectiveCost) FROM analysis_charge_totals").fetchone()
    assert totals == lines


def test_a_later_export_of_another_kind_shadows_both_azure_datasets(store, tmp_path):
    """The pairing is only between the two Azure datasets: a FOCUS export of the same bill loaded
    after them is read alone, as any later export of a bill is; the other bills keep the pair."""
    from .focus_rows import row, write

    load_paths(store, [str(EA_ACTUAL), str(EA_AMORTIZED)])
    focus = write(tmp_path / "focus.csv", [row(account="86310001", period="2024-01", cost="7.50",
                                             ProviderName="Microsoft", PublisherName="Microsoft",
                                             InvoiceIssuerName="Microsoft")])
    load_paths(store, [str(focus)])
    january = store.execute(
        """SELECT source_format, row_scope FROM current_loads
           WHERE billing_account_id = '86310001' AND strftime(billing_period_start, '%Y-%m') = '2024-01'""").fetchall()
    assert january == [("focus", "all")]
    [(billed,)] = store.execute(
        """SELECT sum(BilledCost) FROM current_line_items
           WHERE BillingAccountId = '86310001' AND strftime(BillingPeriodStart, '%Y-%m') = '2024-01'""").fetchall()
    assert billed == Decimal("7.50")
    february = store.execute(
        """SELECT source_format, row_scope FROM current_loads
           WHERE billing_account_id = '86310001' AND strftime(billing_period_start, '%Y-%m') = '2024-02'
           ORDER BY 1""").fetchall()
    assert february == [("azure-actual", "commitment purchases"), ("azure-amortized", "all")]


def test_the_store_names_the_azure_formats_as_the_connector_does():
    from costaudit.connectors.formats import azure
    from costaudit.store import AZURE_ACTUAL, AZURE_AMORTIZED

    assert (AZURE_ACTUAL, AZURE_AMORTIZED) == (azure.ACTUAL_ID, azure.AMORTIZED_ID)
