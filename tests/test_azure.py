"""Azure cost-details exports (EA, older EA, MCA, legacy usage details): the public samples load,
reconcile to an independent sum over the raw file, and map to FOCUS the way Microsoft maps them.

Each expected total is SQL written here over the raw CSV with the column names of that schema
spelled out, not the reader's candidate lists, lookups or macros.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors.base import Cols
from costaudit.connectors.formats import all_formats, detect
from costaudit.errors import InputError
from costaudit.loader import load_paths

EA_2023 = "focus-converters/sample-anonymous-ea-export-dataset.csv"
EA_OLD = "finops-toolkit/EA_ActualCost_Small.csv"
KOKU_EA = "koku/azure/azure_version_2.csv"
KOKU_LEGACY = "koku/azure/costreport_a243c6f2-199f-4074-9a2c-40e671cf1584.csv"

# (sample, account column, period expression, currency column, cost column)
SAMPLES = {
    EA_2023: ("BillingAccountId", "strptime(BillingPeriodStartDate, '%m/%d/%Y')", "BillingCurrencyCode", "CostInBillingCurrency"),
    EA_OLD: ("BillingAccountId", "strptime(BillingPeriodStartDate, '%m/%d/%Y')", "BillingCurrency", "Cost"),
    KOKU_EA: ("BillingAccountId", "CAST(BillingPeriodStartDate AS DATE)", "BillingCurrencyCode", "CostInBillingCurrency"),
    # The legacy schema has no billing account or period: subscription and usage month stand in.
    KOKU_LEGACY: ("SubscriptionGuid", "date_trunc('month', CAST(UsageDateTime AS TIMESTAMP))", "Currency", "PreTaxCost"),
}


def raw_totals(path: Path, account: str, period: str, currency: str, cost: str) -> dict:
    sql = f"""
        SELECT {account}, strftime({period}, '%Y-%m'), {currency}, sum(CAST({cost} AS DECIMAL(38,12))), count(*)
        FROM read_csv('{path}', header = true, all_varchar = true) GROUP BY ALL"""
    return {(a, p, c): (Decimal(t), n) for a, p, c, t, n in duckdb.sql(sql).fetchall()}


def stored_totals(store, basis: str = "BilledCost") -> dict:
    rows = store.execute(
        f"""SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), BillingCurrency, sum({basis}), count(*)
            FROM line_items GROUP BY ALL"""
    ).fetchall()
    return {(a, p, c): (Decimal(t), n) for a, p, c, t, n in rows}


def rows_of(store, where: str = "TRUE") -> list[dict]:
    cursor = store.execute(f"SELECT * FROM line_items WHERE {where}")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_sample_reconciles_to_raw_sum(sample, samples_dir, store):
    path = samples_dir / sample
    report = load_paths(store, [str(path)])
    assert {p.source_format for p in report.partitions} == {"azure-actual"}
    expected = raw_totals(path, *SAMPLES[sample])
    assert stored_totals(store) == expected  # exact, to the last decimal, and every row kept
    assert all(p.difference == 0 for p in report.partitions)


def test_samples_load_together_in_one_command(samples_dir, store):
    """Four column sets in one load: each keeps its own account, period and currency columns."""
    load_paths(store, [str(samples_dir / s) for s in SAMPLES])
    expected: dict = {}
    for sample, spec in SAMPLES.items():
        expected.update(raw_totals(samples_dir / sample, *spec))
    assert stored_totals(store) == expected


def test_ea_cost_details_mapping(samples_dir, store):
    load_paths(store, [str(samples_dir / EA_2023)])
    rows = rows_of(store)
    assert len(rows) == 27
    for row in rows:
        assert row["ProviderName"] == "Microsoft" and row["InvoiceIssuerName"] == "Microsoft"
        assert row["BillingAccountType"] == "Billing Account" and row["BillingAccountName"] == "Example LTD."
        assert row["BillingPeriodStart"] == datetime(2023, 9, 1, tzinfo=UTC)
        assert row["BillingPeriodEnd"] == datetime(2023, 10, 1, tzinfo=UTC)  # 9/30/2023 + 1 day
        assert row["ChargePeriodEnd"] - row["ChargePeriodStart"] == (datetime(2023, 9, 3) - datetime(2023, 9, 2))
        assert row["ServiceCategory"] and row["ServiceName"] and row["ServiceSubcategory"]
        assert row["SubAccountType"] == "Subscription"
        assert json.loads(row["Tags"]) == {"tagA": "valueA", "tagB": "valueB", "tagC": "valueC"}
        # no SkuPriceId in cost exports, so FOCUS wants SkuPriceDetails null (SkuPriceDetails-C-004)
        assert row["SkuPriceId"] is None and row["SkuPriceDetails"] is None
        assert row["x_LineItemType"] == "Usage" and row["x_SourceFormat"] == "azure-actual"
    spot = [r for r in rows if r["x_PricingModel"] == "Spot"]
    assert spot and {r["PricingCategory"] for r in spot} == {"Dynamic"}
    peering = [r for r in rows if r["SkuMeter"] == "Intra-Region Ingress"]
    assert peering and peering[0]["x_SkuMeterCategory"] == "Virtual Network"
    assert peering[0]["x_SkuMeterSubcategory"] == "Peering" and peering[0]["x_TransferType"] == "Peering - Intra-Region Ingress"
    assert peering[0]["ConsumedUnit"] == "GB" and peering[0]["PricingUnit"] == "GB"
    # "10K" is a block of 10,000 units: PricingQuantity counts blocks, ConsumedQuantity units.
    queue = [r for r in rows if r["SkuMeter"] == "Class 2 Operations"][0]
    assert queue["PricingUnit"] == "10000 Units" and queue["PricingQuantity"] == Decimal("0.0129")
    assert queue["ConsumedQuantity"] == Decimal("129") and queue["ConsumedUnit"] == "Units"
    # EA list cost is PayGPrice x Quantity; contracted cost UnitPrice x Quantity.
    assert queue["ListCost"] == Decimal("0.0129") * Decimal("0.4") and queue["ContractedCost"] == Decimal("0.00129")


def test_older_ea_columns_reservation_and_capacity(samples_dir, store):
    load_paths(store, [str(samples_dir / EA_OLD)])
    purchase = rows_of(store, "x_LineItemType = 'Purchase'")
    assert len(purchase) == 1
    p = purchase[0]
    assert (p["ChargeCategory"], p["ChargeFrequency"], p["PricingCategory"]) == ("Purchase", "Recurring", "Standard")
    assert (p["BilledCost"], p["EffectiveCost"]) == (Decimal("3.25"), 0)  # FOCUS: prepaid purchases have no EffectiveCost
    assert p["CommitmentDiscountType"] == "Reservation" and p["CommitmentDiscountCategory"] == "Usage"
    assert p["CommitmentDiscountName"] == "VM_RI_06-21-2023_18-56" and p["CommitmentDiscountStatus"] is None
    assert p["ServiceName"] == "Azure Reservations" and p["BillingCurrency"] == "USD"
    capacity = rows_of(store, "CapacityReservationId IS NOT NULL")
    assert [r["CapacityReservationStatus"] for r in capacity] == ["Unused"]  # billed on the capacity reservation itself
    assert capacity[0]["x_InstanceType"] == "Standard_D2s_v3" and capacity[0]["x_Operation"] == "ComputeCR"
    storage = rows_of(store, "SkuMeter = 'GRS List and Create Container Operations'")[0]
    assert json.loads(storage["Tags"])["application"] == "databricks"
    assert (storage["ServiceName"], storage["ServiceCategory"]) == ("Storage Accounts", "Storage")
    assert (storage["RegionId"], storage["RegionName"]) == ("eastus2", "East US 2")


def test_koku_odd_rows_are_kept_honestly(samples_dir, store):
    load_paths(store, [str(samples_dir / KOKU_EA)])
    market = rows_of(store, "x_LineItemType = 'Purchase'")
    assert len(market) == 1
    m = market[0]
    # Azure Marketplace charges are invoiced by Microsoft: cost kept, publisher named.
    assert m["PublisherName"] == "OpenShift on Azure testing" and m["InvoiceIssuerName"] == "Microsoft"
    assert m["BilledCost"] == 0 and m["ChargeCategory"] == "Purchase" and m["ChargeFrequency"] == "Recurring"
    # "Unassigned" / "0 Unassigned" are placeholders, stored as nulls.
    assert m["RegionId"] is None and m["RegionName"] is None and m["SkuMeter"] is None
    assert m["PricingUnit"] is None and m["x_SkuMeterCategory"] is None and m["ChargeDescription"] is None
    assert m["ServiceCategory"] == "Other" and m["ServiceName"] == "Bring your own VNET"
    vm = rows_of(store, "x_InstanceType IS NOT NULL")[0]
    assert vm["x_InstanceType"] == "Standard_D4s_v3" and vm["RegionId"] == "northcentralus"
    assert vm["PricingUnit"] == "10 Hours" and vm["ConsumedQuantity"] == Decimal("220")
    # The sample's currency "MC" is not ISO 4217 but is what the file says; it is kept, not guessed.
    assert {r["BillingCurrency"] for r in rows_of(store)} == {"MC"}


def test_legacy_usage_details(samples_dir, store):
    load_paths(store, [str(samples_dir / KOKU_LEGACY)])
    rows = rows_of(store)
    assert len(rows) == 3
    for row in rows:
        assert row["BillingAccountId"] == "0039de71-ca37-4a17-a104-17665a50e7fc" == row["SubAccountId"]
        assert row["BillingAccountType"] == "Subscription"
        assert row["BillingPeriodStart"] == datetime(2019, 7, 1, tzinfo=UTC)
        assert row["RegionId"] == "eastus2" and json.loads(row["Tags"]) == {"project": "p1"}
        assert row["ChargeCategory"] == "Usage" and row["ChargeFrequency"] == "Usage-Based"
    egress = [r for r in rows if r["x_SkuMeterCategory"] == "Bandwidth"][0]
    assert egress["x_Operation"] == "DataTrOut" and egress["x_FromRegionCode"] == "eastus2"
    assert egress["ResourceType"] == "microsoft.compute/virtualmachines" and egress["ResourceName"] == "test-vm-1"


def _cols(*names: str) -> Cols:
    return Cols(types={n: "VARCHAR" for n in names})


def test_detection_never_confuses_focus_or_other_exports(samples_dir):
    ea = _cols(*(r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_csv('{samples_dir / EA_2023}')").fetchall()))
    assert detect(ea).id == "azure-actual"
    camel = _cols(*(c[0].lower() + c[1:] for c in ea.types))
    assert detect(camel).id == "azure-actual"
    # Azure's own FOCUS export and a GCP export are not Azure cost details.
    focus = _cols("BilledCost", "EffectiveCost", "BillingAccountId", "ChargePeriodStart", "x_SkuMeterCategory", "Tags")
    assert detect(focus).id == "focus"
    gcp = _cols("billing_account_id", "cost", "currency", "usage_start_time", "service.description")
    aws_header = (samples_dir / "focus-converters/sample-anonymous-aws-export-dataset.csv").open().readline()
    for other in (gcp, _cols(*aws_header.strip().split(","))):
        fmt = detect(other)
        assert fmt is None or not fmt.id.startswith("azure")
    scores = sorted(f.score(ea) for f in all_formats())
    assert scores[-1] > scores[-2]  # never a tie


def test_missing_cost_column_is_named(tmp_path, store):
    path = tmp_path / "azure.csv"
    path.write_text("BillingAccountId,Date,MeterCategory,CostInBillingCurrency,BillingCurrencyCode\n1,2024-01-02,Storage,1.0,USD\n")
    load_paths(store, [str(path)])
    path.write_text("BillingAccountId,Date,MeterCategory,CostInBillingCurrency\n1,2024-01-02,Storage,1.0\n")
    with pytest.raises(InputError, match="BillingCurrencyCode"):
        load_paths(store, [str(path)])
    path.write_text("BillingAccountId,Date,MeterCategory,CostInBillingCurrency,BillingCurrencyCode\n1,2024-01-02,Storage,abc,USD\n")
    with pytest.raises(InputError, match="'abc' is not a decimal number") as info:
        load_paths(store, [str(path)])
    assert info.value.column == "CostInBillingCurrency" and info.value.row == 1


def test_mca_without_billing_period_columns_uses_the_usage_month(tmp_path, store):
    """Older MCA (koku's camelCase set) has no billingPeriodStartDate: the month of `date` is used."""
    path = tmp_path / "mca.csv"
    path.write_text(
        "invoiceId,billingAccountId,billingProfileId,date,meterCategory,meterName,quantity,unitOfMeasure,chargeType,"
        "billingCurrency,pricingCurrency,costInBillingCurrency,costInPricingCurrency,exchangeRatePricingToBilling,"
        "paygCostInBillingCurrency,subscriptionId,InstanceName,resourceLocation,tags\n"
        "G001,acct-1,prof-1,2023-11-30,Storage,LRS Data Stored,10,1 GB/Month,Usage,GBP,USD,0.79,1.00,0.79,0.85,"
        "sub-1,/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1,uksouth,"
        '"""env"": ""test"""\n'
    )
    load_paths(store, [str(path)])
    row = rows_of(store)[0]
    assert (row["BillingAccountId"], row["BillingAccountType"], row["BillingCurrency"]) == ("prof-1", "Billing Profile", "GBP")
    assert row["BillingPeriodStart"] == datetime(2023, 11, 1, tzinfo=UTC)
    assert row["BillingPeriodEnd"] == datetime(2023, 12, 1, tzinfo=UTC)
    assert (row["PricingCurrency"], row["PricingCurrencyEffectiveCost"], row["ListCost"]) == ("USD", Decimal(1), Decimal("0.85"))
    assert (row["ResourceName"], row["ServiceName"], row["InvoiceId"]) == ("st1", "Storage Accounts", "G001")
    assert json.loads(row["Tags"]) == {"env": "test"}
