"""Paid redundancy on data that can be rebuilt: replication and geo-redundant storage on
resources tagged reproducible or scratch.

The bill shows redundancy in its descriptions (classified once per distinct description, then
joined back): replication transfer (S3 ``*ForRepl`` operations and Replication Time Control,
Google Cloud ``... Replication ...`` transfer, Azure ``Geo-Replication`` transfer), Azure
geo-redundant classes (GRS, RA-GRS, GZRS, RA-GZRS) and Cloud Storage dual- and multi-region
classes on stored volume. For a resource whose tags say its data is reproducible:

    saving = replication transfer cost + sum(geo-redundant storage cost x (1 - local price ratio))

The local price ratios are parameters (defaults: list-price ratios of 2024; Azure Hot LRS is
about half of GRS; Cloud Storage regional Standard is about 0.91 of dual-region and 0.77 of
multi-region). Costs are the resource's, in its latest billing period in the window.
"""

from __future__ import annotations

from .contract import Finding, Need, Param, Rule, RuleContext
from .sqlparts import WINDOW, billing, charge_keys, pairs_match, storage_volume_line, tag_sets

RULE = Rule(
    id="storage_redundant_scratch_data",
    title="Geo-redundancy paid for data that can be rebuilt",
    family="storage",
    severity="medium",
    why="Replication and geo-redundant classes roughly double what storage costs; for scratch or reproducible "
    "data a lost region means recomputing, not losing, the data.",
    how_to_fix="Switch the account or bucket to a locally redundant class (LRS/ZRS, regional bucket), and remove "
    "replication rules for data tagged reproducible or scratch.",
    needs=(
        Need(
            "current_line_items",
            ("Tags",),
            label="billing lines with resource tags",
            how="tag storage with its data class (e.g. data-class = scratch) and load an export that carries tags",
        ),
    ),
    parameters={
        "tag_keys": Param(("data-class", "data_class", "dataclass", "data-classification"), "tag keys naming the data class"),
        "tag_values": Param(("reproducible", "scratch", "temporary", "temp", "cache"), "data classes that can be rebuilt"),
        "grs_local_price_ratio": Param(0.5, "price of LRS/ZRS relative to GRS/GZRS (Azure)"),
        "dual_region_local_price_ratio": Param(0.91, "price of a regional bucket relative to dual-region (Cloud Storage)"),
        "multi_region_local_price_ratio": Param(0.77, "price of a regional bucket relative to multi-region (Cloud Storage)"),
    },
    references=(
        "awslabs/aws-well-architected-labs 300_CUR_Queries cost_optimization.md: S3 replication buckets",
        "cloud-carbon-footprint ReplicationFactors.ts (LRS/ZRS/GRS/GZRS, dual/multi-region)",
        "../shared/reference/rules.md section 7.1",
    ),
)

_DESCRIPTION = (
    "concat_ws(' | ', x_UsageType, x_Operation, x_SkuDescription, x_SkuMeterSubcategory, ChargeDescription)"
)

SQL = f"""
WITH classified AS MATERIALIZED (  -- each charge key of the store once (`charge_keys`)
  SELECT charge_key,
    CASE
      WHEN regexp_matches({_DESCRIPTION}, '(?i)(ForRepl|S3RTC|ReplicationTime|replication)')
           AND (ServiceCategory = 'Storage' OR regexp_matches(coalesce(ServiceName, ''), '(?i)(storage|s3)'))
        THEN 'replication transfer'
      WHEN NOT {storage_volume_line()} THEN NULL
      WHEN regexp_matches({_DESCRIPTION}, '(?i)(^|[^a-z])(ra-)?g(z)?rs([^a-z]|$)') THEN 'geo-redundant (GRS/GZRS)'
      WHEN regexp_matches({_DESCRIPTION}, '(?i)dual[- ]region') THEN 'dual-region'
      WHEN regexp_matches({_DESCRIPTION}, '(?i)multi[- ]region') THEN 'multi-region'
    END AS redundancy
  FROM $KEYS
),
rebuildable AS (  -- distinct tag sets (parsed once each, `tag_sets`) that mark data as rebuildable, and the tag
  SELECT tags_text,
         list_filter(pairs, lambda p: list_contains(
           flatten(list_transform($tag_keys, lambda k: list_transform($tag_values, lambda v: lower(k) || '=' || lower(v)))), p)
         )[1] AS matched_tag
  FROM $TAG_SETS
  WHERE {pairs_match('pairs', 'tag_keys', 'tag_values')}
),
lines AS (
  SELECT li.ProviderName AS provider, li.BillingAccountId AS account, li.SubAccountId AS sub_account,
         li.RegionId AS region, li.BillingCurrency AS currency, li.BillingPeriodStart AS period,
         coalesce(li.ResourceId, li.SubAccountId || ':' || coalesce(li.x_SkuDescription, li.x_UsageType)) AS resource_id,
         li.ResourceId IS NULL AS no_resource_id, c.redundancy, CAST(li.$COST AS DECIMAL(38,12)) AS cost,
         t.matched_tag
  FROM $BILLING li
  JOIN rebuildable t ON t.tags_text = CAST(li.Tags AS VARCHAR)
  JOIN classified c ON c.redundancy IS NOT NULL AND c.charge_key = li.x_ChargeKey
  WHERE {WINDOW.replace('BillingPeriodStart', 'li.BillingPeriodStart')} AND li.ChargeCategory IN ('Usage', 'Credit')
),
latest AS (
  SELECT * FROM lines
  QUALIFY period = max(period) OVER (PARTITION BY provider, account, resource_id)
),
per_resource AS (
  SELECT provider, account, resource_id, currency, period, any_value(sub_account) AS sub_account,
         max(region) AS region, bool_or(no_resource_id) AS no_resource_id, min(matched_tag) AS matched_tag,
         CAST(sum(cost) AS DECIMAL(38,12)) AS cost,
         CAST(coalesce(sum(cost) FILTER (WHERE redundancy = 'replication transfer'), 0) AS DECIMAL(38,12)) AS replication,
         CAST(coalesce(sum(cost) FILTER (WHERE redundancy = 'geo-redundant (GRS/GZRS)'), 0) AS DECIMAL(38,12)) AS grs,
         CAST(coalesce(sum(cost) FILTER (WHERE redundancy = 'dual-region'), 0) AS DECIMAL(38,12)) AS dual_region,
         CAST(coalesce(sum(cost) FILTER (WHERE redundancy = 'multi-region'), 0) AS DECIMAL(38,12)) AS multi_region
  FROM latest GROUP BY provider, account, resource_id, currency, period
)
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       CAST(round(replication
                  + grs * (1 - CAST($grs_local_price_ratio AS DECIMAL(18,6)))
                  + dual_region * (1 - CAST($dual_region_local_price_ratio AS DECIMAL(18,6)))
                  + multi_region * (1 - CAST($multi_region_local_price_ratio AS DECIMAL(18,6))), 2) AS DECIMAL(38,12))
         AS estimated_monthly_saving,
       printf('replication %s + GRS %s x (1 - %g) + dual-region %s x (1 - %g) + multi-region %s x (1 - %g); '
              'ratios are list-price ratios of locally redundant to geo-redundant storage (parameters); cost basis %s',
              round(replication, 2)::VARCHAR, round(grs, 2)::VARCHAR, $grs_local_price_ratio, round(dual_region, 2)::VARCHAR,
              $dual_region_local_price_ratio, round(multi_region, 2)::VARCHAR, $multi_region_local_price_ratio, $cost_basis)
         AS estimate_method,
       json_object(
         'tag', matched_tag, 'replication_transfer_cost', round(replication, 2),
         'geo_redundant_storage_cost', round(grs, 2), 'dual_region_storage_cost', round(dual_region, 2),
         'multi_region_storage_cost', round(multi_region, 2), 'redundancy_cost_in_scope', round(cost, 2),
         'no_resource_id_in_bill', no_resource_id
       ) AS evidence,
       printf('tagged %s, pays %s for redundancy (%s)', matched_tag, round(cost, 2)::VARCHAR,
              concat_ws(', ', CASE WHEN replication <> 0 THEN 'replication transfer' END,
                        CASE WHEN grs <> 0 THEN 'GRS/GZRS storage' END,
                        CASE WHEN dual_region <> 0 THEN 'dual-region storage' END,
                        CASE WHEN multi_region <> 0 THEN 'multi-region storage' END)) AS summary,
       'open' AS status
FROM per_resource
WHERE cost > 0
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Resources tagged reproducible or scratch that pay for replication or geo-redundancy."""
    return ctx.findings(
        SQL.replace("$COST", ctx.cost).replace("$BILLING", billing(ctx)).replace("$TAG_SETS", tag_sets(ctx)).replace("$KEYS", charge_keys(ctx))
    )
