"""Cross-cloud transfer, where the data shows it: data leaving one cloud for another.

Bills rarely say that internet egress went to another cloud, so this rule reports it only where
the loaded data shows it:

1. **Inventories**: internet transfer (``network_class = 'internet'``) billed on a storage
   location (bucket or Azure storage account) whose objects - same hash kind, content hash and
   size - also sit in another provider's storage, copied there before the end of that month and
   not before they were in this location. The egress is (at least partly) the copy.
2. **Named destinations**: a transfer line whose destination (from the taxonomy, including a
   user's own rules in costaudit.toml) names another provider, or whose usage type or description
   says "cross-cloud" (e.g. Cross-Cloud Interconnect transfer).

One finding per source resource (or, without a resource id, per sub-account and usage type) in
its latest month in the window:

    inventories:        saving = egress cost x min(1, GB copied to other clouds / GB of egress)
    named destinations: saving = transfer cost

assuming the copy is kept in sync every month (a pipeline that re-copies or re-reads the data);
keeping the data and its consumers in one cloud, or syncing only the changes, removes it. A
one-off copy does not recur: then only the duplicate storage remains (storage_duplicate_content).
"""

from __future__ import annotations

from .contract import Finding, Rule, RuleContext
from .egress_common import CHARGES, NETWORK_NEED, cents, latest_period, rate_per_gb, resource_key, window
from .sqlparts import provider_key, same_resource_pairs

RULE = Rule(
    id="egress_cross_cloud",
    title="Cross-cloud transfer",
    family="egress",
    severity="medium",
    why="Data moved between clouds pays internet egress at the source on every copy or read; pipelines that "
    "keep datasets in sync across clouds pay it every month.",
    how_to_fix="Keep a dataset and the jobs that read it in one cloud; if a second cloud needs it, sync only the "
    "changes (or compress them), schedule the copy less often, or use a private interconnect with a lower "
    "per-GB rate.",
    needs=(NETWORK_NEED,),
    parameters={},
    references=(
        "../shared/reference/rules.md sections 3-4 (egress identifiers) and 7.2 (content hashes in inventories)",
        "AWS Storage Blog: Managing duplicate objects in Amazon S3 (ETag + size over S3 Inventory)",
        "Google Cloud: Cross-Cloud Interconnect pricing",
    ),
)

# Which provider a destination names, as a provider key (matches sqlparts.provider_key).
_NAMED = """CASE
  WHEN regexp_matches({x}, '(?i)\\b(aws|amazon)\\b') THEN 'aws'
  WHEN regexp_matches({x}, '(?i)\\b(azure|microsoft)\\b') THEN 'azure'
  WHEN regexp_matches({x}, '(?i)\\b(gcp|google)\\b') THEN 'gcp'
  WHEN regexp_matches({x}, '(?i)\\b(oracle|oci)\\b') THEN 'oracle' END"""

SQL = f"""
WITH objects AS (
  SELECT {provider_key('provider')} AS pkey, provider, coalesce(storage_account, bucket) AS billing_name, location,
         object_key, hash_kind, content_hash, size_bytes, last_modified
  FROM storage_objects
  WHERE coalesce(is_latest, true) AND content_hash IS NOT NULL AND size_bytes > 0
),
egress AS (  -- internet transfer billed on a resource, per month
  SELECT ProviderName AS provider, BillingAccountId AS account, ResourceId AS resource_id, BillingCurrency AS currency,
         BillingPeriodStart AS period, {provider_key('ProviderName')} AS pkey, any_value(SubAccountId) AS sub_account,
         max(RegionId) AS region, string_agg(DISTINCT route, ', ' ORDER BY route) AS routes,
         sum(volume_gb) AS gb, CAST(sum($COST) AS DECIMAL(38,12)) AS cost
  FROM network_transfer_totals
  WHERE {window()} AND network_class = 'internet' AND {CHARGES} AND ResourceId IS NOT NULL
  GROUP BY ALL
),
billed_names AS (  -- (billed resource id, inventoried name) pairs that name the same bucket or account
  SELECT * FROM {same_resource_pairs('SELECT resource_id AS id FROM egress', 'SELECT billing_name AS id FROM objects')}
),
sources AS (  -- the objects of each billed location
  SELECT e.provider, e.account, e.resource_id, e.currency, e.period, e.pkey, o.location, o.object_key,
         o.hash_kind, o.content_hash, o.size_bytes, o.last_modified
  FROM egress e JOIN billed_names n ON n.left_id = e.resource_id
  JOIN objects o ON o.billing_name = n.right_id AND o.pkey = e.pkey
),
copied AS (  -- those found in another provider's storage, copied before the month ended
  SELECT s.provider, s.account, s.resource_id, s.currency, s.period, s.location, s.object_key,
         any_value(s.size_bytes) AS size_bytes, list(DISTINCT d.provider || ' ' || d.location) AS destinations,
         max(d.last_modified) AS copied_at
  FROM sources s JOIN objects d
    ON d.hash_kind = s.hash_kind AND d.content_hash = s.content_hash AND d.size_bytes = s.size_bytes
   AND d.pkey <> s.pkey
   AND (d.last_modified IS NULL OR d.last_modified < s.period + INTERVAL 1 MONTH)
   AND (d.last_modified IS NULL OR s.last_modified IS NULL OR d.last_modified >= s.last_modified)
  GROUP BY ALL
),
by_inventory AS (
  SELECT e.provider, e.account, e.resource_id, e.currency, e.period, e.sub_account, e.region, e.routes, e.gb, e.cost,
         false AS no_resource_id, 'inventories: objects copied to another cloud' AS shown_by,
         count(*) AS objects_copied, sum(c.size_bytes) / 1e9 AS copied_gb,
         list_sort(list_distinct(flatten(list(c.destinations)))) AS destinations,
         strftime(max(c.copied_at), '%Y-%m-%d') AS last_copy, list(c.object_key ORDER BY c.size_bytes DESC)[1:3] AS examples
  FROM egress e JOIN copied c USING (provider, account, resource_id, currency, period)
  GROUP BY ALL
),
named AS (  -- transfer whose destination names another provider, or that says cross-cloud
  SELECT ProviderName AS provider, BillingAccountId AS account, {resource_key()} AS resource_id,
         BillingCurrency AS currency, BillingPeriodStart AS period, SubAccountId AS sub_account, RegionId AS region,
         ResourceId IS NULL AS no_resource_id, route, volume_gb, CAST($COST AS DECIMAL(38,12)) AS cost,
         coalesce({_NAMED.format(x="coalesce(destination_region, '')")},
                  CASE WHEN regexp_matches(concat_ws(' ', x_UsageType, ChargeDescription), '(?i)cross[- ]cloud')
                       THEN 'another cloud' END) AS named_cloud,
         {provider_key('ProviderName')} AS pkey
  FROM network_transfer_totals
  WHERE {window()} AND {CHARGES} AND network_class NOT IN ('inbound', 'intra_zone')
),
by_name AS (
  SELECT provider, account, resource_id, currency, period, any_value(sub_account) AS sub_account, max(region) AS region,
         string_agg(DISTINCT route, ', ' ORDER BY route) AS routes, sum(volume_gb) AS gb,
         CAST(sum(cost) AS DECIMAL(38,12)) AS cost, bool_or(no_resource_id) AS no_resource_id,
         'transfer naming another cloud' AS shown_by, NULL::BIGINT AS objects_copied, NULL::DOUBLE AS copied_gb,
         list_sort(list_distinct(list(named_cloud))) AS destinations, NULL AS last_copy, NULL::VARCHAR[] AS examples
  FROM named WHERE named_cloud IS NOT NULL AND named_cloud <> pkey
  GROUP BY provider, account, resource_id, currency, period
),
candidates AS (
  SELECT * FROM by_inventory
  UNION ALL BY NAME
  SELECT * FROM by_name WHERE (provider, account, resource_id) NOT IN (SELECT provider, account, resource_id FROM by_inventory)
),
latest AS ({latest_period('candidates')}),
priced AS (
  SELECT *, CASE WHEN copied_gb IS NULL THEN 1.0
                 ELSE least(1.0, copied_gb / nullif(CAST(gb AS DOUBLE), 0)) END AS attributed_share
  FROM latest WHERE cost > 0
)
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       {cents('cost * CAST(coalesce(attributed_share, 0) AS DECIMAL(18,6))')} AS estimated_monthly_saving,
       CASE WHEN copied_gb IS NOT NULL THEN printf(
              'egress %s %s x min(1, %s GB copied to other clouds / %s GB of egress) = share %.4f, assuming the copy '
              'is re-synced every month (a one-off copy does not recur); cost basis %s',
              round(cost, 2)::VARCHAR, currency, round(copied_gb, 1)::VARCHAR, round(gb, 1)::VARCHAR,
              attributed_share, $cost_basis)
            ELSE printf('keeping data and consumer in one cloud removes this transfer: saving = its cost %s %s; '
                        'cost basis %s', round(cost, 2)::VARCHAR, currency, $cost_basis) END AS estimate_method,
       json_object(
         'shown_by', shown_by, 'routes', routes, 'egress_gb', round(gb, 1), 'egress_cost', round(cost, 2),
         'rate_per_gb', {rate_per_gb('cost', 'gb')}, 'destinations', destinations,
         'objects_copied', objects_copied, 'copied_gb', round(copied_gb, 1), 'last_copy', last_copy,
         'examples', examples, 'attributed_share', round(attributed_share, 4), 'no_resource_id_in_bill', no_resource_id
       ) AS evidence,
       printf('%s GB left %s for another cloud (%s) in %s, %s %s: keep data and consumers in one cloud',
              round(coalesce(least(CAST(gb AS DOUBLE), copied_gb), CAST(gb AS DOUBLE)), 0)::VARCHAR, provider,
              array_to_string(destinations, ', '), strftime(period, '%Y-%m'), round(cost, 2)::VARCHAR, currency) AS summary,
       'open' AS status
FROM priced
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Transfer to another cloud, shown by inventories or by a destination naming another provider."""
    return ctx.findings(SQL.replace("$COST", ctx.cost))
