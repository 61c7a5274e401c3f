"""Map Azure cost-details rows to FOCUS 1.2, following Microsoft's own conversion
(finops-toolkit ``docs-mslearn/focus/convert.md``; formats.md section 6.2), with the lookups
registered by `prepare`.

Where this deliberately differs from Microsoft's table, and why:

* Quantities. In these exports ``Quantity`` counts pricing blocks of ``UnitOfMeasure`` (a row
  of 0.0004 x "10K" at 0.1 costs 0.00004: Cost = Quantity x EffectivePrice holds in the real EA
  samples). So PricingQuantity = Quantity with PricingUnit naming the block ("10000 Units"),
  ContractedCost = UnitPrice x Quantity, and ConsumedQuantity = Quantity x block size in the
  block's distinct unit. Microsoft's table divides by the block size instead, which its own
  FOCUS sample shows to be off by the block size.
* Unused commitment rows (UnusedReservation/UnusedSavingsPlan) of amortized data get BilledCost 0,
  like covered usage: their cost was invoiced by the commitment's Purchase row (FOCUS spec
  commitment-discount examples: unused rows have BilledCost 0.00 and a positive EffectiveCost).
* A commitment purchase's PricingCategory is Standard (FOCUS: Committed is for charges reduced
  by a commitment, "not the purchase of the commitment discount").
"""

from __future__ import annotations

import duckdb

from ..base import data_file, select_list
from ..sql import quote_literal
from .azure_source import MCA, Source

LOOKUP_FILES = {
    "azure_services": "azure_services.csv",
    "azure_meter_categories": "azure_meter_categories.csv",
    "azure_regions": "azure_regions.csv",
    "azure_pricing_units": "azure_pricing_units.csv",
}


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Register the Azure lookup tables (TEMP) the row mapping joins to."""
    for table, name in LOOKUP_FILES.items():
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM "
            f"read_csv({quote_literal(data_file(name))}, header = true, comment = '#', all_varchar = true)"
        )
    # A resource type or consumed service alone identifies a service only when the open data
    # gives it one service; ambiguous ones (microsoft.compute, microsoft.web/sites) fall through.
    for table, key in (("azure_services_by_type", "ResourceType"), ("azure_services_by_consumed", "ConsumedService")):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {table} AS
                SELECT {key} AS k, any_value(ServiceName) AS ServiceName, any_value(ServiceCategory) AS ServiceCategory,
                       any_value(ServiceSubcategory) AS ServiceSubcategory
                FROM azure_services WHERE {key} IS NOT NULL GROUP BY {key}
                HAVING count(DISTINCT (ServiceName, ServiceCategory, ServiceSubcategory)) = 1"""
        )


# The resource type named by a resource id ('/subscriptions/../providers/Microsoft.Compute/
# virtualMachines/vm1' -> 'microsoft.compute/virtualmachines'), worked out once per distinct id:
# the regular expression costs ~5 us a row, and a month repeats each id ~25 times.
_RESOURCE_TYPES = """
  SELECT rid, CASE WHEN rid ILIKE '%/providers/%' THEN array_to_string(list_filter(
           string_split(regexp_extract(rid, '(?i).*/providers/(.*)$', 1), '/'),
           lambda part, i: i = 1 OR i % 2 = 0), '/') END AS rtype
  FROM (SELECT DISTINCT a_rid AS rid FROM b WHERE a_rid IS NOT NULL)
"""


def _mul(a: str, b: str) -> str:
    """Exact product of a price and a quantity/rate. DECIMAL(38,12) x DECIMAL(38,12) would need
    scale 24 and overflow near 1e14; the quantity side keeps 10 decimals instead."""
    return f"(CAST({a} AS DECIMAL(38,12)) * CAST({b} AS DECIMAL(38,10)))"


def _struct(alias: str) -> str:
    return (
        f"CASE WHEN {alias}.ServiceName IS NOT NULL THEN struct_pack(n := {alias}.ServiceName, "
        f"c := {alias}.ServiceCategory, s := {alias}.ServiceSubcategory) END"
    )


def _info(key: str) -> str:
    return f"nullif(json_extract_string(a_info, {quote_literal('$.' + key)}), '')"


def select_sql(src: Source, amortized: bool, format_id: str) -> str:
    """The SELECT producing READER_COLUMNS for an actual (amortized=False) or amortized export."""
    base = ",\n    ".join(f"{expr} AS {alias}" for alias, expr in src.base_columns().items())
    mca = src.dialect == MCA
    rate = "a_rate"
    # Row classes (see formats.md 6.2). In actual data covered usage costs 0 and purchases carry
    # the commitment's price; in amortized data purchases are absent and covered/unused usage
    # carries the amortized price.
    flags = """
        coalesce(a_ct IN ('unusedreservation', 'unusedsavingsplan'), FALSE) AS f_unused,
        coalesce(a_ct = 'usage' AND a_pm IN ('reservation', 'savingsplan'), FALSE) AS f_commit_usage,
        coalesce(a_ct IN ('purchase', 'refund') AND a_pm IN ('reservation', 'savingsplan'), FALSE) AS f_commit_purchase,
        coalesce(lower(a_publisher_type) = 'marketplace', FALSE) AS f_marketplace,
        CASE
          WHEN a_ct IS NULL OR a_ct IN ('usage', 'unusedreservation', 'unusedsavingsplan') THEN 'Usage'
          WHEN a_ct IN ('purchase', 'refund') THEN 'Purchase'
          WHEN a_ct = 'credit' THEN 'Credit'
          WHEN a_ct = 'tax' THEN 'Tax'
          ELSE 'Adjustment'
        END AS f_category,
        lower(coalesce(a_rtype_col, rt.rtype)) AS f_rtype,
        nullif(a_benefit_id, '') AS f_cd_id"""
    billed = "CASE WHEN f_commit_usage OR f_unused THEN 0 ELSE a_cost END" if amortized else "a_cost"
    effective = "CASE WHEN f_commit_purchase THEN 0 ELSE a_cost END"
    block = "CAST(u.PricingBlockSize AS DECIMAL(38,0))"
    unit_price = "CASE WHEN a_unit_price <> 0 AND a_qty IS NOT NULL THEN a_unit_price END"
    payg_price = "CASE WHEN a_payg_price <> 0 AND a_qty IS NOT NULL THEN a_payg_price END"
    if mca:
        contracted_unit = f"{_mul(unit_price, rate)}"
        list_unit = f"{_mul(payg_price, rate)}"
        contracted = f"coalesce({_mul(_mul(unit_price, 'a_qty'), rate)}, a_cost)"
        listed = (
            f"coalesce(CASE WHEN a_payg_cost <> 0 OR a_cost = 0 THEN a_payg_cost END, "
            f"{_mul(_mul(payg_price, 'a_qty'), rate)}, {contracted})"
        )
        pricing_currency = "coalesce(a_pricing_currency, a_currency)"
        pricing_effective = (
            "CASE WHEN f_commit_purchase THEN 0 ELSE coalesce(a_cost_pricing, "
            "CASE WHEN a_rate <> 0 THEN CAST(a_cost AS DECIMAL(38,12)) / a_rate END, a_cost) END"
        )
    else:
        contracted_unit = unit_price
        list_unit = payg_price
        contracted = f"coalesce({_mul(unit_price, 'a_qty')}, a_cost)"
        listed = f"coalesce({_mul(payg_price, 'a_qty')}, {contracted})"
        pricing_currency = "a_currency"
        pricing_effective = effective
    cd_category = """CASE WHEN f_cd_id IS NULL THEN NULL
          WHEN f_cd_id ILIKE '%/microsoft.capacity/%' THEN 'Usage'
          WHEN f_cd_id ILIKE '%/microsoft.billingbenefits/%' THEN 'Spend'
          WHEN a_pm = 'reservation' OR a_ct = 'unusedreservation' THEN 'Usage'
          WHEN a_pm = 'savingsplan' OR a_ct = 'unusedsavingsplan' THEN 'Spend' END"""
    # Spend-based usage draws its amortized cost from the plan; actual data shows it at 0, so the
    # amount drawn is unknown there (null rather than a false 0).
    spend_known = "TRUE" if amortized else "FALSE"
    cd_status = "CASE WHEN f_cd_id IS NULL THEN NULL WHEN f_unused THEN 'Unused' WHEN f_category = 'Usage' THEN 'Used' END"
    consumed = "f_category = 'Usage' AND NOT f_unused"
    distinct_unit = "coalesce(u.DistinctUnits, a_uom)"
    transfer = """(a_meter_cat = 'Bandwidth' OR a_meter_sub ILIKE '%peering%' OR a_meter_name ILIKE '%data transfer%'
          OR a_meter_name ILIKE '%data processed%' OR a_meter_sub ILIKE '%geo-replication%')"""
    inbound = "(a_meter_name ILIKE '%transfer in%' OR a_meter_name ILIKE '%ingress%')"
    region_id = "coalesce(r1.RegionId, CASE WHEN a_location IS NOT NULL THEN lower(replace(a_location, ' ', '')) END, r2.RegionId)"
    region_name = "coalesce(r1.RegionName, a_location, r2.RegionName)"
    service = (
        f"coalesce({_struct('s1')}, {_struct('s2')}, {_struct('s3')}, {_struct('m')}, "
        "CASE WHEN f_marketplace THEN struct_pack(n := coalesce(a_product, a_plan, a_publisher, 'Azure Marketplace'), "
        "c := 'Other', s := 'Other (Other)') END, "
        "struct_pack(n := coalesce(a_meter_cat, a_consumed, a_product, 'Unknown'), c := 'Other', s := 'Other (Other)'))"
    )
    values = {
        "AvailabilityZone": "a_az",
        "BilledCost": billed,
        "BillingAccountId": "a_account",
        "BillingAccountName": "a_account_name",
        "BillingAccountType": src.account_type(),
        "BillingCurrency": "a_currency",
        "BillingPeriodEnd": "a_period_end",
        "BillingPeriodStart": "a_period",
        "CapacityReservationId": _info("VMCapacityReservationId"),
        "CapacityReservationStatus": f"""CASE WHEN {_info('VMCapacityReservationId')} IS NULL THEN NULL
          WHEN f_rtype = 'microsoft.compute/capacityreservationgroups/capacityreservations' THEN 'Unused' ELSE 'Used' END""",
        "ChargeCategory": "f_category",
        "ChargeClass": "CASE WHEN a_ct = 'refund' THEN 'Correction' END",
        "ChargeDescription": "coalesce(a_product, nullif(concat_ws(' - ', a_meter_cat, a_meter_sub, a_meter_name), ''))",
        "ChargeFrequency": """CASE
          WHEN a_freq = 'recurring' THEN 'Recurring'
          WHEN a_freq = 'usagebased' AND f_category <> 'Purchase' THEN 'Usage-Based'
          WHEN a_freq = 'onetime' OR f_category <> 'Usage' THEN 'One-Time'
          ELSE 'Usage-Based' END""",
        "ChargePeriodEnd": "(coalesce(a_date, a_period) + INTERVAL 1 DAY)",
        "ChargePeriodStart": "coalesce(a_date, a_period)",
        "CommitmentDiscountCategory": cd_category,
        "CommitmentDiscountId": "f_cd_id",
        "CommitmentDiscountName": "CASE WHEN f_cd_id IS NOT NULL THEN a_benefit_name END",
        "CommitmentDiscountQuantity": f"""CASE WHEN f_cd_id IS NULL OR f_category NOT IN ('Usage', 'Purchase') THEN NULL
          WHEN ({cd_category}) = 'Spend' THEN CASE WHEN f_category = 'Purchase' THEN coalesce(a_cost_pricing, a_cost)
                                             WHEN {spend_known} THEN {pricing_effective} END
          ELSE a_qty END""",
        "CommitmentDiscountStatus": cd_status,
        "CommitmentDiscountType": f"""CASE ({cd_category}) WHEN 'Usage' THEN 'Reservation' WHEN 'Spend' THEN 'Savings Plan' END""",
        "CommitmentDiscountUnit": f"""CASE WHEN f_cd_id IS NULL OR f_category NOT IN ('Usage', 'Purchase') THEN NULL
          WHEN ({cd_category}) = 'Spend' THEN {pricing_currency} ELSE {distinct_unit} END""",
        "ConsumedQuantity": f"CASE WHEN {consumed} THEN CAST(a_qty AS DECIMAL(38,12)) * coalesce({block}, 1) END",
        "ConsumedUnit": f"CASE WHEN {consumed} THEN {distinct_unit} END",
        "ContractedCost": contracted,
        "ContractedUnitPrice": contracted_unit,
        "EffectiveCost": effective,
        "InvoiceId": "a_invoice",
        "InvoiceIssuerName": "coalesce(a_partner, 'Microsoft')",
        "ListCost": listed,
        "ListUnitPrice": list_unit,
        "PricingCategory": """CASE
          WHEN f_category = 'Tax' THEN NULL
          WHEN f_unused OR f_commit_usage THEN 'Committed'
          WHEN f_commit_purchase THEN 'Standard'
          WHEN a_pm = 'spot' THEN 'Dynamic'
          WHEN a_pm = 'ondemand' THEN 'Standard'
          WHEN a_pm IS NULL AND f_category IN ('Usage', 'Purchase') THEN 'Standard'
          WHEN a_pm IS NULL THEN NULL
          ELSE 'Other' END""",
        "PricingCurrency": pricing_currency,
        "PricingCurrencyContractedUnitPrice": unit_price,
        "PricingCurrencyEffectiveCost": pricing_effective,
        "PricingCurrencyListUnitPrice": payg_price,
        "PricingQuantity": "CASE WHEN f_category = 'Tax' THEN NULL ELSE a_qty END",
        "PricingUnit": """CASE WHEN f_category = 'Tax' THEN NULL
          WHEN u.DistinctUnits IS NULL THEN a_uom
          WHEN u.PricingBlockSize = '1' THEN u.DistinctUnits
          ELSE u.PricingBlockSize || ' ' || u.DistinctUnits END""",
        "ProviderName": "'Microsoft'",
        "PublisherName": "coalesce(a_publisher, 'Microsoft')",
        "RegionId": region_id,
        "RegionName": region_name,
        "ResourceId": "CASE WHEN f_unused THEN coalesce(a_rid, f_cd_id) ELSE a_rid END",
        "ResourceName": "coalesce(a_rname, list_filter(string_split(a_rid, '/'), lambda part: part <> '')[-1])",
        "ResourceType": "f_rtype",
        "ServiceCategory": "svc.c",
        "ServiceName": "svc.n",
        "ServiceSubcategory": "svc.s",
        "SkuId": "a_sku_id",
        "SkuMeter": "a_meter_name",
        # Microsoft fills SkuPriceDetails from AdditionalInfo, but cost exports have no SkuPriceId
        # and FOCUS 1.2 requires SkuPriceDetails to be null when SkuPriceId is (SkuPriceDetails-C-004);
        # the VM size from AdditionalInfo is kept in x_InstanceType and x_Operation.
        "SubAccountId": "a_sub_id",
        "SubAccountName": "a_sub_name",
        "SubAccountType": "CASE WHEN a_sub_id IS NOT NULL THEN 'Subscription' END",
        "Tags": "a_tags",
        "x_UsageType": "a_meter_name",
        "x_Operation": _info("UsageType"),
        "x_InstanceType": _info("ServiceType"),
        "x_ServiceCode": "a_consumed",
        "x_ProductFamily": "a_meter_cat",
        "x_SkuMeterCategory": "a_meter_cat",
        "x_SkuMeterSubcategory": "a_meter_sub",
        "x_SkuDescription": "a_product",
        # Azure names only the resource's end of a transfer: its region is the source of
        # outbound meters and the destination of inbound ones.
        "x_FromLocation": f"CASE WHEN {transfer} AND NOT {inbound} THEN {region_name} END",
        "x_FromRegionCode": f"CASE WHEN {transfer} AND NOT {inbound} THEN {region_id} END",
        "x_ToLocation": f"CASE WHEN {transfer} AND {inbound} THEN {region_name} END",
        "x_ToRegionCode": f"CASE WHEN {transfer} AND {inbound} THEN {region_id} END",
        "x_TransferType": f"CASE WHEN {transfer} THEN nullif(concat_ws(' - ', a_meter_sub, a_meter_name), '') END",
        "x_LineItemType": "a_ct_raw",
        "x_PricingModel": "a_pm_raw",
        "x_ResourceGroup": "a_rgroup",
        "x_SourceFormat": quote_literal(format_id),
        "x_SourceFile": "a_file",
    }
    return f"""
WITH b AS (
  SELECT
    {base}
  FROM raw
), c AS (
  SELECT b.*, {flags}
  FROM b
  LEFT JOIN ({_RESOURCE_TYPES}) rt ON rt.rid = b.a_rid
), j AS (
  SELECT c.*, {service} AS svc
  FROM c
  LEFT JOIN azure_services s1 ON s1.ConsumedService = lower(c.a_consumed) AND s1.ResourceType = c.f_rtype
  LEFT JOIN azure_services_by_type s2 ON s2.k = c.f_rtype
  LEFT JOIN azure_services_by_consumed s3 ON s3.k = lower(c.a_consumed)
  LEFT JOIN azure_meter_categories m ON lower(m.MeterCategory) = lower(c.a_meter_cat)
)
SELECT
  {select_list(values)}
FROM j
LEFT JOIN azure_regions r1 ON r1.OriginalValue = lower(j.a_location)
LEFT JOIN azure_regions r2 ON r2.OriginalValue = lower(j.a_meter_region)
LEFT JOIN azure_pricing_units u ON u.UnitOfMeasure = j.a_uom
"""
