"""The CUR -> FOCUS 1.2 mapping as SQL, shared by every CUR flavour (``aws_cur``, ``aws_cur2``).

`select_sql` reads ``raw`` in three steps: first-level helpers straight from the raw columns
(line item type, billed cost, commitment ARNs, unused commitment, public on-demand cost...),
second-level values from those (charge category, commitment id, effective cost), then the FOCUS
columns, joined to the lookup tables of services, regions and units registered by
`register_lookups`. Cost rules follow focus_converters' AWS configuration (formats.md 6.1); where
it leaves a choice open, the choice and its reason are written beside the SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from ..base import ReadOptions, data_file, month_start, next_month, select_list
from ..sql import quote_ident, quote_literal

if TYPE_CHECKING:
    from .aws_cur import CurColumns

PROVIDER = "AWS"
DEFAULT_ISSUER = "Amazon Web Services, Inc."

PURCHASES = ("Fee", "RIFee", "SavingsPlanUpfrontFee", "SavingsPlanRecurringFee")
# Rows that only offset other rows: their usage is already counted on the row they discount.
OFFSETS = ("SavingsPlanNegation", "Discount", "EdpDiscount", "BundledDiscount", "PrivateRateDiscount")
COVERED = ("DiscountedUsage", "SavingsPlanCoveredUsage")


def _in(expr: str, values: tuple[str, ...]) -> str:
    return f"{expr} IN ({', '.join(quote_literal(v) for v in values)})"


def partition_keys(src: CurColumns, opts: ReadOptions) -> dict[str, str]:
    """Partition-key SQL shared verbatim by the rows and the source totals."""
    if src.has("lineItem/CurrencyCode"):
        currency = src.str("lineItem/CurrencyCode")
        if opts.default_currency:
            currency = f"coalesce({currency}, {quote_literal(opts.default_currency)})"
    else:
        currency = quote_literal(opts.default_currency or "")
    period = month_start(f"coalesce({src.ts('bill/BillingPeriodStartDate')}, {src.ts('lineItem/UsageStartDate')})")
    return {
        "account": f"coalesce({src.str('bill/PayerAccountId')}, 'unknown')",
        "period": period,
        "currency": currency,
    }


def _helpers(src: CurColumns, opts: ReadOptions) -> dict[str, str]:
    """First-level per-row values, computed once from the raw columns."""
    keys = partition_keys(src, opts)
    interval = src.str("identity/TimeInterval")
    region = (
        f"coalesce({src.str('product/regionCode')}, {src.str('product/region')}, "
        f"NULLIF(regexp_extract({src.str('lineItem/AvailabilityZone')}, '^([a-z]{{2}}(-[a-z]+)+-[0-9]+)', 1), ''))"
    )
    lt = src.str("lineItem/LineItemType")
    return {
        "ca__lt": lt,
        "ca__bill_type": src.str("bill/BillType"),
        "ca__account": keys["account"],
        "ca__period": keys["period"],
        "ca__currency": keys["currency"],
        "ca__unblended": f"coalesce({src.money('lineItem/UnblendedCost')}, 0)",
        # Invoice basis: net unblended cost (after discounts) where AWS gives it, else unblended.
        "ca__billed": f"coalesce({src.money('lineItem/NetUnblendedCost')}, {src.money('lineItem/UnblendedCost')}, 0)",
        "ca__amount": src.qty("lineItem/UsageAmount"),
        "ca__sp_arn": src.str("savingsPlan/SavingsPlanARN", "savingsPlan/SavingsPlanArn"),
        "ca__ri_arn": src.str("reservation/ReservationARN", "reservation/ReservationArn"),
        # Unused commitment of the period, carried on the recurring-fee rows.
        "ca__unused": (
            f"CASE {lt} WHEN 'RIFee' THEN coalesce({src.money('reservation/UnusedAmortizedUpfrontFeeForBillingPeriod')}, 0)"
            f" + coalesce({src.money('reservation/UnusedRecurringFee')}, 0)"
            f" WHEN 'SavingsPlanRecurringFee' THEN coalesce({src.money('savingsPlan/TotalCommitmentToDate')}, 0)"
            f" - coalesce({src.money('savingsPlan/UsedCommitment')}, 0) END"
        ),
        "ca__sp_effective": f"coalesce({src.money('savingsPlan/NetSavingsPlanEffectiveCost')}, {src.money('savingsPlan/SavingsPlanEffectiveCost')})",
        "ca__ri_effective": f"coalesce({src.money('reservation/NetEffectiveCost')}, {src.money('reservation/EffectiveCost')})",
        "ca__od_rate": src.money("pricing/publicOnDemandRate"),
        "ca__od_cost": (
            f"coalesce({src.money('pricing/publicOnDemandCost')}, "
            f"{src.money('pricing/publicOnDemandRate')} * {src.qty('lineItem/UsageAmount')})"
        ),
        "ca__rate": f"coalesce({src.money('lineItem/NetUnblendedRate')}, {src.money('lineItem/UnblendedRate')})",
        "ca__start": f"coalesce({src.ts('lineItem/UsageStartDate')}, ca_ts(split_part({interval}, '/', 1)))",
        "ca__end": f"coalesce({src.ts('lineItem/UsageEndDate')}, ca_ts(NULLIF(split_part({interval}, '/', 2), '')))",
        "ca__code": f"coalesce({src.str('lineItem/ProductCode')}, {src.str('product/servicecode')})",
        "ca__region": f"NULLIF(lower({region}), '')",
        "ca__unit": src.str("pricing/unit"),
        "ca__usage_type": src.str("lineItem/UsageType"),
        "ca__term": src.str("pricing/term"),
        "ca__purchase_option": src.str("pricing/PurchaseOption"),
    }


def _derived() -> dict[str, str]:
    """Second-level values, from the first-level ones (names only, no raw columns)."""
    effective = (
        "CASE ca__lt"
        " WHEN 'SavingsPlanCoveredUsage' THEN coalesce(ca__sp_effective, ca__billed)"
        " WHEN 'SavingsPlanRecurringFee' THEN coalesce(ca__unused, 0)"
        " WHEN 'SavingsPlanNegation' THEN 0"
        " WHEN 'SavingsPlanUpfrontFee' THEN 0"
        " WHEN 'DiscountedUsage' THEN coalesce(ca__ri_effective, ca__billed)"
        " WHEN 'RIFee' THEN coalesce(ca__unused, 0)"
        " WHEN 'Fee' THEN CASE WHEN ca__ri_arn IS NOT NULL THEN 0 ELSE ca__billed END"
        # Everything else (on-demand usage, tax, credits, discounts) is not amortised: the
        # effective cost is what is billed, net of negotiated discounts where AWS gives the net.
        " ELSE ca__billed END"
    )
    category = (
        f"CASE WHEN ca__lt = 'Tax' THEN 'Tax' WHEN {_in('ca__lt', PURCHASES)} THEN 'Purchase'"
        " WHEN ca__lt IN ('Credit', 'Refund') THEN 'Credit' ELSE 'Usage' END"
    )
    commitment = (
        "CASE WHEN starts_with(ca__lt, 'SavingsPlan') THEN ca__sp_arn"
        " WHEN ca__lt IN ('DiscountedUsage', 'RIFee', 'Fee') THEN ca__ri_arn END"
    )
    return {"ca__effective": effective, "ca__category": category, "ca__cid": commitment}


def _values(src: CurColumns, format_id: str) -> dict[str, str]:
    """FOCUS column -> SQL over the second-level relation (raw columns + ca__ helpers)."""
    lt = "ca__lt"
    consumed = f"CASE WHEN ca__category <> 'Usage' THEN NULL WHEN {_in(lt, OFFSETS)} THEN 0 ELSE ca__amount END"
    pricing_qty = "CASE WHEN ca__category IN ('Tax', 'Credit') THEN NULL ELSE ca__amount END"
    unit = "coalesce(ca__unit_focus, ca__unit, 'Units')"
    status = (
        f"CASE WHEN ca__cid IS NULL THEN NULL WHEN {_in(lt, COVERED + ('SavingsPlanNegation',))} THEN 'Used'"
        " WHEN ca__lt IN ('RIFee', 'SavingsPlanRecurringFee') AND ca__unused > 0 THEN 'Unused' END"
    )
    spot = "(ca__term = 'Spot' OR ca__usage_type LIKE '%SpotUsage%' OR ca__purchase_option ILIKE '%spot%')"
    location = src.str("product/location")
    payer_name, account_name = src.account_names()
    return {
        "BilledCost": "ca__billed",
        "EffectiveCost": "ca__effective",
        # List: AWS's public on-demand cost. Offset rows (SP negation, discounts) have no list
        # price of their own (the row they offset carries it); tax, credits and purchases are
        # not priced per unit, so FOCUS wants their billed cost.
        "ListCost": (
            f"CASE WHEN {_in(lt, OFFSETS)} THEN 0 WHEN ca__category IN ('Tax', 'Credit', 'Purchase') THEN ca__billed"
            " ELSE coalesce(ca__od_cost, ca__billed) END"
        ),
        "ListUnitPrice": f"CASE WHEN ca__category = 'Usage' AND NOT ({_in(lt, OFFSETS)}) THEN ca__od_rate END",
        # Contracted = the customer's own rate before commitment discounts. We chose the billed
        # amount (UnblendedCost, or NetUnblendedCost where AWS gives it, which already holds the
        # negotiated EDP/private-rate discounts) rather than rate * amount, whose rounding differs
        # from the invoice. RI-covered usage shows 0 unblended, so its pre-commitment price is
        # the public on-demand cost; SP negations are commitment savings, not contracted cost.
        "ContractedCost": (
            "CASE WHEN ca__lt = 'SavingsPlanNegation' THEN 0"
            " WHEN ca__lt = 'DiscountedUsage' THEN coalesce(ca__od_cost, ca__effective) ELSE ca__billed END"
        ),
        "ContractedUnitPrice": (
            "CASE WHEN ca__lt = 'DiscountedUsage' THEN ca__od_rate"
            " WHEN ca__lt IN ('Usage', 'SavingsPlanCoveredUsage') THEN ca__rate END"
        ),
        "BillingAccountId": "ca__account",
        "BillingAccountName": payer_name,
        "BillingCurrency": "ca__currency",
        "BillingPeriodStart": "ca__period",
        "BillingPeriodEnd": f"coalesce({src.ts('bill/BillingPeriodEndDate')}, {next_month('ca__period')})",
        "ChargePeriodStart": "coalesce(ca__start, ca__period)",
        "ChargePeriodEnd": f"coalesce(ca__end, {next_month('ca__period')})",
        "ChargeCategory": "ca__category",
        # A refund for usage before this billing period corrects an invoice already issued.
        "ChargeClass": "CASE WHEN (ca__lt = 'Refund' OR ca__bill_type = 'Refund') AND ca__start < ca__period THEN 'Correction' END",
        "ChargeDescription": src.str("lineItem/LineItemDescription"),
        "ChargeFrequency": (
            "CASE WHEN ca__lt IN ('RIFee', 'SavingsPlanRecurringFee') THEN 'Recurring'"
            " WHEN ca__lt IN ('Fee', 'Tax') THEN CASE WHEN ca__bill_type IN ('Purchase', 'Refund') THEN 'One-Time' ELSE 'Recurring' END"
            " WHEN ca__lt IN ('SavingsPlanUpfrontFee', 'Credit', 'Refund') THEN 'One-Time' ELSE 'Usage-Based' END"
        ),
        "PricingCategory": (
            "CASE WHEN ca__category = 'Tax' THEN NULL WHEN ca__category = 'Credit' THEN 'Other'"
            f" WHEN {_in(lt, COVERED + ('SavingsPlanNegation',))} THEN 'Committed'"
            " WHEN ca__category = 'Purchase' THEN 'Standard'"
            f" WHEN {spot} THEN 'Dynamic' WHEN ca__term = 'Reserved' THEN 'Committed' ELSE 'Standard' END"
        ),
        "CommitmentDiscountId": "ca__cid",
        "CommitmentDiscountCategory": (
            "CASE WHEN ca__cid IS NULL THEN NULL WHEN starts_with(ca__lt, 'SavingsPlan') THEN 'Spend' ELSE 'Usage' END"
        ),
        "CommitmentDiscountType": (
            "CASE WHEN ca__cid IS NULL THEN NULL WHEN starts_with(ca__lt, 'SavingsPlan') THEN 'Savings Plan'"
            " ELSE 'Reserved Instance' END"
        ),
        "CommitmentDiscountStatus": status,
        "ConsumedQuantity": consumed,
        "ConsumedUnit": f"CASE WHEN ({consumed}) IS NOT NULL THEN {unit} END",
        "PricingQuantity": pricing_qty,
        "PricingUnit": f"CASE WHEN ({pricing_qty}) IS NOT NULL THEN {unit} END",
        "PricingCurrency": f"coalesce({src.str('pricing/currency')}, {src.str('lineItem/CurrencyCode')})",
        "InvoiceId": src.str("bill/InvoiceId"),
        "InvoiceIssuerName": f"coalesce({src.str('bill/InvoicingEntity')}, {quote_literal(DEFAULT_ISSUER)})",
        # The seller: AWS's legal entity, or the Marketplace vendor on Marketplace rows.
        "PublisherName": f"coalesce({src.str('lineItem/LegalEntity')}, {src.str('bill/InvoicingEntity')}, {quote_literal(DEFAULT_ISSUER)})",
        "ProviderName": quote_literal(PROVIDER),
        "RegionId": "ca__region",
        "RegionName": (
            f"CASE WHEN ca__region IS NOT NULL THEN coalesce(ca__region_name, "
            f"CASE WHEN {src.str('product/locationType')} = 'AWS Region' AND {location} <> 'Any' THEN {location} END, ca__region) END"
        ),
        "AvailabilityZone": src.str("lineItem/AvailabilityZone"),
        # Unused commitment belongs to the commitment itself (FOCUS: ResourceId = commitment id).
        "ResourceId": f"coalesce({src.str('lineItem/ResourceId')}, CASE WHEN ({status}) = 'Unused' THEN ca__cid END)",
        "ServiceName": f"coalesce(ca__svc_name, {src.str('product/ProductName')}, ca__code, 'AWS')",
        "ServiceCategory": "coalesce(ca__svc_category, 'Other')",
        "ServiceSubcategory": "CASE WHEN ca__svc_category IS NULL THEN 'Other (Other)' ELSE ca__svc_subcategory END",
        "SkuId": src.str("product/sku"),
        "SkuPriceId": src.str("pricing/RateCode", "pricing/RateId"),
        # As AWS's own FOCUS 1.2 export does: the usage type is the meter of the SKU.
        "SkuMeter": "ca__usage_type",
        "SubAccountId": src.str("lineItem/UsageAccountId"),
        "SubAccountName": account_name,
        "Tags": src.tags(),
        "x_UsageType": "ca__usage_type",
        "x_Operation": src.str("lineItem/Operation"),
        "x_InstanceType": src.str("product/instanceType"),
        "x_ServiceCode": "ca__code",
        "x_ProductFamily": src.str("product/productFamily"),
        "x_FromLocation": src.str("product/fromLocation"),
        "x_ToLocation": src.str("product/toLocation"),
        "x_FromRegionCode": src.str("product/fromRegionCode"),
        "x_ToRegionCode": src.str("product/toRegionCode"),
        "x_TransferType": src.str("product/transferType"),
        "x_LineItemType": "ca__lt",
        "x_PricingModel": "coalesce(ca__term, ca__purchase_option)",
        "x_CostCategories": src.cost_categories(),
        "x_SourceFormat": quote_literal(format_id),
        "x_SourceFile": "x__file",
    }


def select_sql(src: CurColumns, opts: ReadOptions, format_id: str) -> str:
    """The full normalising SELECT over ``raw`` for any CUR flavour."""
    level1 = ",\n    ".join(f"{expr} AS {name}" for name, expr in _helpers(src, opts).items())
    level2 = ",\n    ".join(f"{expr} AS {name}" for name, expr in _derived().items())
    rows = "raw"
    if memos := src.memos():
        joins = " ".join(
            f"LEFT JOIN (SELECT k, {expr} AS v FROM (SELECT DISTINCT {column} AS k FROM raw)) m{i} ON raw.{column} = m{i}.k"
            for i, (_alias, column, expr) in enumerate(memos)
        )
        picked = ", ".join(f"m{i}.v AS {quote_ident(alias)}" for i, (alias, _c, _e) in enumerate(memos))
        rows = f"(SELECT raw.*, {picked} FROM raw {joins}) raw"
    return f"""
SELECT
  {select_list(_values(src, format_id))}
FROM (
  SELECT b1.*,
    {level2}
  FROM (
    SELECT raw.*,
    {level1}
    FROM {rows}
  ) b1
) b2
LEFT JOIN ca_aws_services ON ca__svc_code = b2.ca__code
LEFT JOIN ca_aws_regions ON ca__region_code = b2.ca__region
LEFT JOIN ca_aws_units ON ca__unit_aws = b2.ca__unit
"""


def source_totals_sql(src: CurColumns, opts: ReadOptions) -> str:
    """The invoice total per payer, billing period and currency, straight from raw columns.

    AWS invoices the net unblended cost (after EDP and private-rate discounts) where the report
    carries it, else the unblended cost; written here on its own, not through the row mapping.
    """
    keys = partition_keys(src, opts)
    net, unblended = src.money("lineItem/NetUnblendedCost"), src.money("lineItem/UnblendedCost")
    return f"""
        SELECT {quote_literal(PROVIDER)} AS provider,
               {keys['account']} AS billing_account_id,
               {keys['period']} AS billing_period_start,
               {keys['currency']} AS currency,
               sum(CASE WHEN {net} IS NOT NULL THEN {net} ELSE {unblended} END) AS total
        FROM raw
        GROUP BY ALL
    """


def register_lookups(con: duckdb.DuckDBPyConnection) -> None:
    """TEMP lookup tables joined by `select_sql` (services, regions, units)."""
    tables = {
        "ca_aws_services": ("aws_services.csv", "product_code AS ca__svc_code, service_name AS ca__svc_name, "
                            "service_category AS ca__svc_category, service_subcategory AS ca__svc_subcategory"),
        "ca_aws_regions": ("aws_regions.csv", "region_code AS ca__region_code, region_name AS ca__region_name"),
        "ca_aws_units": ("aws_units.csv", "aws_unit AS ca__unit_aws, focus_unit AS ca__unit_focus"),
    }
    for table, (file_name, columns) in tables.items():
        path = quote_literal(data_file(file_name))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS SELECT {columns} "
            f"FROM read_csv({path}, header = true, comment = '#', all_varchar = true)"
        )
