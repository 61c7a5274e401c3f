"""The SQL views analysis publishes. Their names and columns are a public interface (README).

- `analysis_line_items`: every current line item with its classification (the base of the others);
- `ai_spend`: line items that are AI spend, with category, workload, accelerator, token
  direction and model, and the reason;
- `network_transfer`: line items that move data, with class, source and destination region,
  route label, volume in GB and the reason;
- `analysis_totals`, `ai_spend_totals`, `network_transfer_totals`: the same three over
  `analysis_charge_totals`, the current line items summed per month, resource, tags and charge
  key (a month of 10^7 hourly lines is a few 10^5 such rows). The rules read these: what a rule
  computes is a sum per resource and month, and summing first is the same sum.

Rows are joined to their classified key on the charge key the store keeps on every row
(``x_ChargeKey``, an integer): the views never copy line_items, and never hash a row's text.
"""

from __future__ import annotations

import duckdb

from costaudit.connectors.sql import quote_ident, quote_literal

from .schema import KEY_COLUMNS, VOLUME_TYPE


def tag_path(key: str) -> str:
    """A JSON path for one tag key, e.g. $."team"."""
    return quote_literal(f'$."{key}"')


# The charge totals: every line item column a rule reads that is not part of the charge key (the
# key's columns are the same on every line of a key and come from analysis_charge_keys), summed
# amounts, and the charge period's bounds.
TOTALS_GROUP = ("x_ChargeKey", "x_LoadId", "BillingAccountId", "SubAccountId", "SubAccountName", "BillingCurrency",
                "BillingPeriodStart", "ResourceId", "ResourceName", "Tags")
TOTALS_SUMS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity", "PricingQuantity")


def totals_sql(current: str, parts: int = 1, part: int = 0) -> str:
    """The SELECT of `analysis_charge_totals` over the line items passing `current`, or of its
    `part`-th of `parts` shares (split by resource id: a resource's rows all fall in one share).
    Sums of the store's DECIMAL(38,12) stay DECIMAL(38,12): exact, as every rule's own sum was."""
    group = ", ".join(quote_ident(c) for c in TOTALS_GROUP)
    sums = ", ".join(f"CAST(sum({quote_ident(c)}) AS DECIMAL(38,12)) AS {quote_ident(c)}" for c in TOTALS_SUMS)
    share = f" AND hash(ResourceId) % {int(parts)} = {int(part)}" if parts > 1 else ""
    return f"""
        SELECT {group}, min(ChargePeriodStart) AS ChargePeriodStart, max(ChargePeriodEnd) AS ChargePeriodEnd,
               {sums}, count(*) AS line_item_rows
        FROM line_items WHERE {current}{share}
        GROUP BY ALL"""


def _totals_source() -> str:
    """`analysis_charge_totals` rows with their charge key's columns, shaped like line items."""
    keys = ", ".join(f"k.{quote_ident(c)}" for c in KEY_COLUMNS)
    return f"(SELECT t.*, {keys} FROM analysis_charge_totals t JOIN analysis_charge_keys k ON k.charge_key = t.x_ChargeKey)"


def _base_view_sql(tag_keys: tuple[str, ...], name: str = "analysis_line_items",
                   source: str = "current_line_items") -> str:
    tag_joins = []
    tag_reasons = []
    for index, key in enumerate(tag_keys):
        alias = f"tag{index}"
        tag_joins.append(
            f"LEFT JOIN analysis_ai_tags {alias} ON k.link_eligible AND {alias}.tag_key = {quote_literal(key)}"
            f" AND {alias}.tag_value = json_extract_string(li.Tags, {tag_path(key)})"
        )
        tag_reasons.append(f"{alias}.reason")
    link_reason = "coalesce(" + ", ".join(["res.reason", "acc.reason", *tag_reasons]) + ")"
    link_rule = (
        "CASE WHEN res.reason IS NOT NULL THEN 'link:resource' WHEN acc.reason IS NOT NULL THEN 'link:account' "
        + ("WHEN " + " OR ".join(f"{r} IS NOT NULL" for r in tag_reasons) + " THEN 'link:tag' " if tag_reasons else "")
        + "END"
    )
    return f"""
        CREATE OR REPLACE VIEW {name} AS
        SELECT
          li.*,
          k.key_id AS analysis_key_id,
          CASE WHEN k.ai_category IS NOT NULL THEN k.ai_category
               WHEN {link_reason} IS NOT NULL THEN 'ai_data' END AS ai_category,
          CASE WHEN k.ai_category IS NOT NULL THEN k.ai_rule ELSE {link_rule} END AS ai_rule,
          CASE WHEN k.ai_category IS NOT NULL THEN k.ai_reason ELSE {link_reason} END AS ai_reason,
          k.ai_workload,
          k.accelerator_model,
          k.accelerator_count,
          k.token_direction,
          k.ai_model,
          k.network_class,
          k.network_rule,
          k.network_reason,
          k.source_region,
          k.destination_region,
          CASE WHEN k.network_class IS NOT NULL
               THEN coalesce(k.source_region, '?') || ' -> ' || coalesce(k.destination_region, '?') END AS route,
          CAST(CASE k.volume_basis
                 WHEN 'PricingQuantity' THEN li.PricingQuantity * k.volume_factor
                 WHEN 'ConsumedQuantity' THEN li.ConsumedQuantity * k.volume_factor END AS {VOLUME_TYPE}) AS volume_gb,
          k.storage_class
        FROM {source} li
        LEFT JOIN analysis_charge_keys k ON li.x_ChargeKey = k.charge_key
        LEFT JOIN analysis_ai_resources res ON k.link_eligible AND res.ResourceId = li.ResourceId
        LEFT JOIN analysis_ai_accounts acc
          ON k.link_eligible AND acc.ProviderName = li.ProviderName AND acc.SubAccountId = li.SubAccountId
        {' '.join(tag_joins)}
    """


_COMMON = [
    "BillingPeriodStart", "ChargePeriodStart", "ChargePeriodEnd", "ProviderName", "BillingAccountId", "SubAccountId",
    "SubAccountName", "ServiceName", "x_UsageType", "x_Operation", "ResourceId", "ResourceName", "RegionId",
    "ChargeCategory", "ChargeDescription",
]
_MONEY = ["ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit", "BilledCost", "EffectiveCost",
          "BillingCurrency", "x_LoadId", "analysis_key_id"]
AI_SPEND_COLUMNS = [*_COMMON, "x_InstanceType", "ai_category", "ai_workload", "accelerator_model",
                    "accelerator_count", "token_direction", "ai_model", "ai_rule", "ai_reason", *_MONEY]
NETWORK_COLUMNS = [*_COMMON, "network_class", "source_region", "destination_region", "route", "volume_gb",
                   "network_rule", "network_reason", "ai_category", *_MONEY]


def create_views(con: duckdb.DuckDBPyConnection, tag_keys: tuple[str, ...]) -> None:
    """(Re)create the analysis views for the tag keys of the current configuration."""
    con.execute(_base_view_sql(tag_keys))
    con.execute(_base_view_sql(tag_keys, "analysis_totals", _totals_source()))
    ai_columns = ", ".join(quote_ident(c) for c in AI_SPEND_COLUMNS)
    network_columns = ", ".join(quote_ident(c) for c in NETWORK_COLUMNS)
    for suffix, base, rows in (("", "analysis_line_items", ""), ("_totals", "analysis_totals", ", line_item_rows")):
        con.execute(f"CREATE OR REPLACE VIEW ai_spend{suffix} AS SELECT {ai_columns}{rows} FROM {base} "
                    "WHERE ai_category IS NOT NULL")
        con.execute(f"CREATE OR REPLACE VIEW network_transfer{suffix} AS SELECT {network_columns}{rows} FROM {base} "
                    "WHERE network_class IS NOT NULL")
