"""The Azure fixture folder as one load: every file lands in its own export partition, each
partition reconciles with a sum written here over the raw files, and a second load changes nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb

from costaudit.loader import load_paths

ROOM = Path(__file__).resolve().parent.parent / "fixtures" / "azure"
LATEST_MTD = sorted((ROOM / "exports" / "northwind-mtd").glob("*/20240320T041002/*/part_*.csv"))
AMORTIZED_RUN = sorted((ROOM / "exports" / "northwind-amortized").glob("*/*/*/part_*.csv"))
EA_PERIOD = "strftime(strptime(BillingPeriodStartDate, '%m/%d/%Y'), '%Y-%m')"


def _sum(export: str, files: list[Path], account: str, period: str, currency: str, cost: str) -> dict:
    paths = ", ".join(f"'{p}'" for p in files)
    sql = f"""SELECT {account}, {period}, {currency}, sum(CAST({cost} AS DECIMAL(38,12)))
              FROM read_csv([{paths}], header = true, all_varchar = true) GROUP BY ALL"""
    return {(export, a, p, c): Decimal(t) for a, p, c, t in duckdb.sql(sql).fetchall()}


def expected_totals() -> dict:
    ea = ("BillingAccountId", EA_PERIOD, "BillingCurrencyCode", "CostInBillingCurrency")
    totals = {}
    totals |= _sum("azure-actual", [ROOM / "ea_actual.csv"], *ea)
    totals |= _sum("azure-amortized", [ROOM / "ea_amortized.csv"], *ea)
    totals |= _sum("azure/northwind-mtd", LATEST_MTD, *ea)
    totals |= _sum("azure/northwind-amortized", AMORTIZED_RUN, *ea)
    totals |= _sum("azure-actual", [ROOM / "mca_actual_eur.csv"], "billingProfileId",
                   "strftime(CAST(billingPeriodStartDate AS DATE), '%Y-%m')", "billingCurrency", "costInBillingCurrency")
    totals |= _sum("focus", [ROOM / "focus" / "focuscost_1.2.csv"], "BillingAccountId",
                   "strftime(CAST(BillingPeriodStart AS TIMESTAMP), '%Y-%m')", "BillingCurrency", "BilledCost")
    return totals


def test_whole_room_reconciles_and_reloads_unchanged(store):
    report = load_paths(store, [str(ROOM)])
    assert not report.skipped_files
    stored = store.execute(
        """SELECT l.source_export, li.BillingAccountId, strftime(li.BillingPeriodStart, '%Y-%m'), li.BillingCurrency,
                  sum(CASE l.basis WHEN 'EffectiveCost' THEN li.EffectiveCost ELSE li.BilledCost END)
           FROM line_items li JOIN loads l ON l.load_id = li.x_LoadId GROUP BY ALL"""
    ).fetchall()
    assert {(e, a, p, c): t for e, a, p, c, t in stored} == expected_totals()
    assert {p.currency for p in report.partitions} == {"USD", "EUR"}
    assert len({p.billing_account_id for p in report.partitions if p.source_format.startswith("azure")}) >= 2
    again = load_paths(store, [str(ROOM)])
    assert not again.changed


def test_every_row_has_the_mandatory_focus_columns(store):
    load_paths(store, [str(ROOM)])
    mandatory = ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingAccountId", "BillingCurrency",
                 "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
                 "ChargeFrequency", "InvoiceIssuerName", "ProviderName", "PublisherName", "ServiceCategory",
                 "ServiceName", "x_SourceFormat", "x_SourceFile"]
    nulls = ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in mandatory)
    counts = store.execute(f"SELECT {nulls} FROM line_items WHERE x_SourceFormat LIKE 'azure%'").fetchone()
    assert dict(zip(mandatory, counts, strict=True)) == dict.fromkeys(mandatory, 0)
    bad_ends = store.execute(
        """SELECT count(*) FROM line_items WHERE x_SourceFormat LIKE 'azure%'
           AND (BillingPeriodEnd <> BillingPeriodStart + INTERVAL 1 MONTH OR ChargePeriodEnd <= ChargePeriodStart
                OR ChargePeriodStart < BillingPeriodStart OR ChargePeriodStart >= BillingPeriodEnd)"""
    ).fetchone()[0]
    assert bad_ends == 0
    enums = store.execute(
        """SELECT list(DISTINCT ChargeCategory), list(DISTINCT ChargeFrequency), list(DISTINCT PricingCategory),
                  list(DISTINCT ServiceCategory)
           FROM line_items WHERE x_SourceFormat LIKE 'azure%'"""
    ).fetchone()
    assert set(enums[0]) <= {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
    assert set(enums[1]) <= {"One-Time", "Recurring", "Usage-Based"}
    assert set(enums[2]) <= {"Standard", "Dynamic", "Committed", "Other", None}
    # FOCUS: PricingCategory is null for tax, set for every usage or purchase, optional otherwise.
    assert set(store.execute(
        """SELECT list(DISTINCT ChargeCategory) FROM line_items
           WHERE x_SourceFormat LIKE 'azure%' AND PricingCategory IS NULL"""
    ).fetchone()[0]) == {"Tax", "Credit", "Adjustment"}
    assert store.execute(
        "SELECT count(*) FROM line_items WHERE x_SourceFormat LIKE 'azure%' AND ChargeCategory = 'Tax' AND PricingCategory IS NOT NULL"
    ).fetchone()[0] == 0
    assert "Other" in enums[3] and None not in enums[3]
