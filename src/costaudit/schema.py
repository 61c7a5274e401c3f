"""The store's column contract: FOCUS 1.2 columns plus costaudit's ``x_`` extras.

Names, feature levels and types follow FOCUS 1.2 (`../shared/reference/formats.md` section 1.2).
Money and quantities are DECIMAL(38,12): wide enough for any bill, exact to far below a cent.
Timestamps are TIMESTAMPTZ in UTC; period ends are exclusive, as FOCUS defines them.
"""

from __future__ import annotations

MONEY = "DECIMAL(38,12)"
QUANTITY = "DECIMAL(38,12)"
TS = "TIMESTAMPTZ"
STR = "VARCHAR"
JSON = "JSON"

# (name, DuckDB type, FOCUS feature level: M mandatory, C conditional, R recommended)
FOCUS_COLUMNS: list[tuple[str, str, str]] = [
    ("AvailabilityZone", STR, "R"),
    ("BilledCost", MONEY, "M"),
    ("BillingAccountId", STR, "M"),
    ("BillingAccountName", STR, "M"),
    ("BillingAccountType", STR, "C"),
    ("BillingCurrency", STR, "M"),
    ("BillingPeriodEnd", TS, "M"),
    ("BillingPeriodStart", TS, "M"),
    ("CapacityReservationId", STR, "C"),
    ("CapacityReservationStatus", STR, "C"),
    ("ChargeCategory", STR, "M"),
    ("ChargeClass", STR, "M"),
    ("ChargeDescription", STR, "M"),
    ("ChargeFrequency", STR, "R"),
    ("ChargePeriodEnd", TS, "M"),
    ("ChargePeriodStart", TS, "M"),
    ("CommitmentDiscountCategory", STR, "C"),
    ("CommitmentDiscountId", STR, "C"),
    ("CommitmentDiscountName", STR, "C"),
    ("CommitmentDiscountQuantity", QUANTITY, "C"),
    ("CommitmentDiscountStatus", STR, "C"),
    ("CommitmentDiscountType", STR, "C"),
    ("CommitmentDiscountUnit", STR, "C"),
    ("ConsumedQuantity", QUANTITY, "C"),
    ("ConsumedUnit", STR, "C"),
    ("ContractedCost", MONEY, "M"),
    ("ContractedUnitPrice", MONEY, "C"),
    ("EffectiveCost", MONEY, "M"),
    ("InvoiceId", STR, "R"),
    ("InvoiceIssuerName", STR, "M"),
    ("ListCost", MONEY, "M"),
    ("ListUnitPrice", MONEY, "C"),
    ("PricingCategory", STR, "C"),
    ("PricingCurrency", STR, "C"),
    ("PricingCurrencyContractedUnitPrice", MONEY, "C"),
    ("PricingCurrencyEffectiveCost", MONEY, "C"),
    ("PricingCurrencyListUnitPrice", MONEY, "C"),
    ("PricingQuantity", QUANTITY, "M"),
    ("PricingUnit", STR, "M"),
    ("ProviderName", STR, "M"),
    ("PublisherName", STR, "M"),
    ("RegionId", STR, "C"),
    ("RegionName", STR, "C"),
    ("ResourceId", STR, "C"),
    ("ResourceName", STR, "C"),
    ("ResourceType", STR, "C"),
    ("ServiceCategory", STR, "M"),
    ("ServiceName", STR, "M"),
    ("ServiceSubcategory", STR, "R"),
    ("SkuId", STR, "C"),
    ("SkuMeter", STR, "C"),
    ("SkuPriceDetails", JSON, "C"),
    ("SkuPriceId", STR, "C"),
    ("SubAccountId", STR, "C"),
    ("SubAccountName", STR, "C"),
    ("SubAccountType", STR, "C"),
    ("Tags", JSON, "C"),
]

# costaudit's own columns. Readers fill what their source has; the store fills the load columns.
EXTRA_COLUMNS: list[tuple[str, str, str]] = [
    ("x_UsageType", STR, "AWS usage type, Google SKU description, Azure meter name"),
    ("x_Operation", STR, "AWS operation; Azure/Google equivalent where stated"),
    ("x_InstanceType", STR, "instance type, VM size or machine type"),
    ("x_ServiceCode", STR, "provider service code: AWS product code, Google service id, Azure consumed service"),
    ("x_ProductFamily", STR, "AWS product family; Azure meter category"),
    ("x_SkuMeterCategory", STR, "Azure meter category"),
    ("x_SkuMeterSubcategory", STR, "Azure meter subcategory"),
    ("x_SkuDescription", STR, "Google SKU description; Azure product name"),
    ("x_FromLocation", STR, "transfer source location (AWS product/fromLocation)"),
    ("x_ToLocation", STR, "transfer destination location (AWS product/toLocation)"),
    ("x_FromRegionCode", STR, "transfer source region code"),
    ("x_ToRegionCode", STR, "transfer destination region code"),
    ("x_TransferType", STR, "AWS product/transferType"),
    ("x_LineItemType", STR, "the source's own charge type: AWS LineItemType, Azure ChargeType, Google cost_type"),
    ("x_PricingModel", STR, "the source's pricing model or purchase option"),
    ("x_CreditType", STR, "Google credit type on Credit rows split from a usage row"),
    ("x_CostCategories", JSON, "AWS cost categories"),
    ("x_ResourceGroup", STR, "Azure resource group"),
    ("x_OriginalValues", JSON, "values a FOCUS conversion rule dropped or replaced, as the source stated them: column -> value"),
    ("x_ConformanceAdjustments", STR, "ids of the FOCUS conversion rules that changed the row, comma-separated"),
    ("x_SourceFormat", STR, "detected source format id, e.g. aws-cur"),
    ("x_SourceFile", STR, "file the row came from"),
    ("x_LoadId", STR, "id of the ledger entry (loads.load_id) that brought the row"),
]

# Columns every reader must produce (the store adds x_LoadId).
READER_COLUMNS: list[tuple[str, str]] = [(n, t) for n, t, _ in FOCUS_COLUMNS] + [
    (n, t) for n, t, _ in EXTRA_COLUMNS if n != "x_LoadId"
]
# What was charged, as opposed to who, when and how much: the columns the taxonomy reads. A month
# has tens of millions of rows but a few thousand distinct charge keys, so analysis classifies
# keys, not rows. Changing this list changes which rows share a key (analysis.taxonomy.MATCH_FIELDS
# must stay in step).
CHARGE_KEY_COLUMNS: tuple[str, ...] = (
    "ProviderName", "ServiceName", "ServiceCategory", "ServiceSubcategory", "x_ServiceCode", "x_UsageType",
    "x_Operation", "x_InstanceType", "x_ProductFamily", "x_SkuMeterCategory", "x_SkuMeterSubcategory",
    "x_SkuDescription", "ChargeDescription", "SkuMeter", "ChargeCategory", "ConsumedUnit", "PricingUnit",
    "RegionId", "x_FromRegionCode", "x_ToRegionCode",
)
# The store keeps DuckDB's hash of a row's charge key beside the row (computed once, at load), so
# joining 10^7 rows to their classified key is an integer join instead of hashing twenty text
# columns of every row in every query. Rows are only ever hashed by one DuckDB: the store records
# a probe of the hash function and recomputes the column when a new DuckDB hashes differently.
CHARGE_KEY = ("x_ChargeKey", "UBIGINT", "DuckDB hash() of the row's CHARGE_KEY_COLUMNS (analysis joins rows to keys on it)")


def charge_key_sql(alias: str | None = None) -> str:
    """The SQL computing a row's charge key from its columns."""
    prefix = f"{alias}." if alias else ""
    return "hash(" + ", ".join(f'{prefix}"{c}"' for c in CHARGE_KEY_COLUMNS) + ")"


LINE_ITEM_COLUMNS: list[tuple[str, str]] = [(n, t) for n, t, _ in FOCUS_COLUMNS] + [
    (n, t) for n, t, _ in EXTRA_COLUMNS
] + [CHARGE_KEY[:2]]
FOCUS_NAMES = [n for n, _, _ in FOCUS_COLUMNS]
MONEY_COLUMNS = [n for n, t, _ in FOCUS_COLUMNS if t == MONEY]

CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
CHARGE_FREQUENCIES = ("One-Time", "Recurring", "Usage-Based")
PRICING_CATEGORIES = ("Standard", "Dynamic", "Committed", "Other")
