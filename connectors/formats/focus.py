"""FOCUS files of any version (0.5, 1.0-preview, 1.0, 1.1, 1.2), including the providers' own
FOCUS exports (AWS Data Exports FOCUS tables, Azure FocusCost, Google's FOCUS view).

Older column names are read under their 1.2 names (``ChargeType`` -> ChargeCategory,
``AmortizedCost`` -> EffectiveCost, ``Provider`` -> ProviderName, ``Region`` -> RegionId ...).
Enumerated values are put in their canonical spelling (``Usage-based`` -> ``Usage-Based``).
Custom columns that name one of costaudit's ``x_`` extras are kept; other custom columns
(including the sample data's bare ``Id``) are dropped, as they are not FOCUS columns.
"""

from __future__ import annotations

from costaudit.errors import InputError
from costaudit.schema import FOCUS_COLUMNS, MONEY, QUANTITY, TS

from ..base import Cols, Format, ReadOptions, select_list
from ..sql import quote_literal

# 1.2 name -> older spellings, newest first.
ALIASES: dict[str, tuple[str, ...]] = {
    "ChargeCategory": ("ChargeType",),
    "EffectiveCost": ("AmortizedCost",),
    "ProviderName": ("Provider",),
    "PublisherName": ("Publisher",),
    "InvoiceIssuerName": ("InvoiceIssuer",),
    "ResourceId": ("ResourceID",),
    "RegionId": ("Region",),
    "ConsumedQuantity": ("UsageQuantity",),
    "ConsumedUnit": ("UsageUnit",),
    "BillingCurrency": ("BilledCurrency",),
}

# Provider-specific custom columns worth keeping, mapped to costaudit's extras.
PROVIDER_EXTRAS: dict[str, tuple[str, ...]] = {
    "x_UsageType": ("x_UsageType", "x_SkuMeterName"),
    "x_Operation": ("x_Operation",),
    "x_ServiceCode": ("x_ServiceCode", "x_ServiceId"),
    "x_SkuMeterCategory": ("x_SkuMeterCategory",),
    "x_SkuMeterSubcategory": ("x_SkuMeterSubcategory",),
    "x_SkuDescription": ("x_SkuDescription",),
    "x_ResourceGroup": ("x_ResourceGroupName",),
    "x_CostCategories": ("x_CostCategories",),
    "x_InstanceType": ("x_InstanceType",),
}

ENUMS: dict[str, tuple[str, ...]] = {
    "ChargeCategory": ("Usage", "Purchase", "Tax", "Credit", "Adjustment"),
    "ChargeClass": ("Correction",),
    "ChargeFrequency": ("One-Time", "Recurring", "Usage-Based"),
    "PricingCategory": ("Standard", "Dynamic", "Committed", "Other"),
    "CommitmentDiscountCategory": ("Spend", "Usage"),
    "CommitmentDiscountStatus": ("Used", "Unused"),
    "CapacityReservationStatus": ("Used", "Unused"),
}

_TYPES = {name: sql_type for name, sql_type, _ in FOCUS_COLUMNS}
_FOCUS_LOWER = {name.lower() for name in _TYPES} | {a.lower() for al in ALIASES.values() for a in al}


def _candidates(name: str) -> tuple[str, ...]:
    return (name, *ALIASES.get(name, ()))


def _canonical_enum(expr: str, allowed: tuple[str, ...]) -> str:
    """Map case/spacing variants to the canonical value; leave unknown values as they are."""
    whens = " ".join(
        f"WHEN lower(replace({expr}, ' ', '')) = {quote_literal(v.lower().replace(' ', ''))} THEN {quote_literal(v)}"
        for v in allowed
    )
    return f"CASE {whens} ELSE {expr} END"


class FocusFormat(Format):
    id = "focus"
    provider = None
    basis = "BilledCost"
    export_family = "focus"
    title = "FOCUS dataset"

    def score(self, cols: Cols) -> int:
        present = len(cols.lower_names() & _FOCUS_LOWER)
        if present < 2:
            return 0
        # A native export never carries these FOCUS names together with its own cost columns.
        return 10 + present

    def version(self, cols: Cols) -> str:
        if cols.has("InvoiceId", "PricingCurrency", "BillingAccountType", "SubAccountType"):
            return "1.2"
        if cols.has("ServiceSubcategory", "SkuMeter", "SkuPriceDetails", "CommitmentDiscountQuantity"):
            return "1.1"
        if cols.has("ChargeClass", "ConsumedQuantity", "RegionId"):
            return "1.0"
        if cols.has("ChargeType", "AmortizedCost"):
            return "0.5"
        return "1.0-preview"

    def check(self, cols: Cols, opts: ReadOptions) -> None:
        cols.require("BilledCost")
        self.currency(cols, opts.default_currency)
        if not cols.has("BillingPeriodStart", "ChargePeriodStart"):
            raise InputError(cols.source, "missing required column 'BillingPeriodStart'", column="BillingPeriodStart")

    def currency(self, cols: Cols, default_currency: str | None) -> str:
        if cols.has(*_candidates("BillingCurrency")):
            return cols.str(*_candidates("BillingCurrency"))
        if default_currency:
            return quote_literal(default_currency)
        raise InputError(
            cols.source,
            "missing required column 'BillingCurrency' (pass --currency CODE when the export states its currency elsewhere)",
            column="BillingCurrency",
        )

    def keys(self, cols: Cols, default_currency: str | None) -> dict[str, str]:
        """Partition keys shared by the rows and the source totals."""
        provider = f"coalesce({cols.str('ProviderName', 'Provider')}, {cols.str('InvoiceIssuerName', 'InvoiceIssuer')}, {cols.str('PublisherName', 'Publisher')}, 'Unknown')"
        account = f"coalesce({cols.str('BillingAccountId')}, 'unknown')"
        if cols.has("BillingPeriodStart"):
            period = cols.ts("BillingPeriodStart")
        else:
            period = f"CAST(date_trunc('month', {cols.ts('ChargePeriodStart')}) AS TIMESTAMPTZ)"
        return {
            "ProviderName": provider,
            "BillingAccountId": account,
            "BillingPeriodStart": period,
            "BillingCurrency": self.currency(cols, default_currency),
        }

    def select_sql(self, cols: Cols, opts: ReadOptions) -> str:
        default_currency = opts.default_currency
        values: dict[str, str] = {}
        for name, sql_type, _ in FOCUS_COLUMNS:
            candidates = _candidates(name)
            if not cols.has(*candidates):
                continue
            if sql_type == MONEY:
                values[name] = cols.money(*candidates)
            elif sql_type == QUANTITY:
                values[name] = cols.qty(*candidates)
            elif sql_type == TS:
                values[name] = cols.ts(*candidates)
            elif name in ("Tags", "SkuPriceDetails"):
                values[name] = f"ca_braced_json({cols.str(*candidates)})"
            else:
                values[name] = cols.str(*candidates)
            if name in ENUMS:
                values[name] = _canonical_enum(values[name], ENUMS[name])
        values.update(self.keys(cols, default_currency))
        if not cols.has("BillingPeriodEnd"):
            values["BillingPeriodEnd"] = f"({values['BillingPeriodStart']} + INTERVAL 1 MONTH)"
        if not cols.has("ChargePeriodStart"):
            values["ChargePeriodStart"] = values["BillingPeriodStart"]
        if not cols.has("ChargePeriodEnd"):
            values["ChargePeriodEnd"] = values.get("BillingPeriodEnd", f"({values['BillingPeriodStart']} + INTERVAL 1 MONTH)")
        billed = values["BilledCost"]
        # FOCUS: the other cost metrics are never null; where a file omits them they equal the
        # billed cost (spec: "derived from related charges or = BilledCost").
        for metric in ("EffectiveCost", "ListCost", "ContractedCost"):
            values[metric] = f"coalesce({values[metric]}, {billed})" if metric in values else billed
        if "ChargeCategory" not in values:
            values["ChargeCategory"] = "'Usage'"
        for extra, sources in PROVIDER_EXTRAS.items():
            if cols.has(*sources):
                values[extra] = cols.str(*sources)
        values["x_SourceFormat"] = quote_literal(f"focus-{self.version(cols)}")
        values["x_SourceFile"] = "x__file"
        return f"SELECT\n  {select_list(values)}\nFROM raw"

    def source_totals_sql(self, cols: Cols, opts: ReadOptions) -> str:
        keys = self.keys(cols, opts.default_currency)
        return f"""
            SELECT {keys['ProviderName']} AS provider,
                   {keys['BillingAccountId']} AS billing_account_id,
                   {keys['BillingPeriodStart']} AS billing_period_start,
                   {keys['BillingCurrency']} AS currency,
                   sum({cols.money('BilledCost')}) AS total
            FROM raw
            GROUP BY ALL
        """

    def parsed_columns(self, cols: Cols) -> list[tuple[str, str]]:
        checks: list[tuple[str, str] | None] = []
        for name, sql_type, _ in FOCUS_COLUMNS:
            candidates = _candidates(name)
            kind = {MONEY: "money", QUANTITY: "qty", TS: "ts"}.get(sql_type)
            if kind:
                checks.append(cols.parsed(kind, *candidates))
            elif name in ("Tags", "SkuPriceDetails"):
                checks.append(cols.parsed("json", *candidates))
        return [c for c in checks if c is not None]


FORMATS = [FocusFormat()]
