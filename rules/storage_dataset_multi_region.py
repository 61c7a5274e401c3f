"""One dataset billed in several regions (or clouds).

Stored-volume lines are grouped into datasets by a dataset tag (``dataset`` by default) or, for
object storage, by the bucket or account name itself. A dataset whose storage is billed in two
or more (provider, region) places in one billing period has a primary copy there (the place with
the largest storage cost) and further copies; each further copy is a finding, once, for the
latest period in the window in which it was one:

    saving = that copy's storage cost (deleting it; requests and transfer to read the primary
             from elsewhere are not included)

Copies kept on purpose (latency, disaster recovery) are what suppressions are for. When copies
bill in different currencies, the primary is still the larger amount as stated (no conversion):
that only decides which copy is called primary; amounts of different currencies are never added.
"""

from __future__ import annotations

from .contract import Finding, Need, Param, Rule, RuleContext
from .sqlparts import WINDOW, billing, charge_keys, provider_key, storage_volume_line, tag_value

RULE = Rule(
    id="storage_dataset_multi_region",
    title="One dataset stored in several regions",
    family="storage",
    severity="low",
    why="A dataset copied to a second region or cloud for a one-off job keeps billing there long after the "
    "job; each copy costs as much as the original.",
    how_to_fix="Keep one primary copy and read it remotely, or replace the copy with a cache or a replication "
    "rule scoped to what is needed; delete copies nobody reads.",
    needs=(
        Need(
            "current_line_items",
            ("RegionId", "ResourceId"),
            where="ServiceCategory = 'Storage'",
            label="storage lines with regions and resource ids",
            how="load an export with resource-level storage charges",
        ),
    ),
    parameters={
        "dataset_tag_keys": Param(("dataset", "data-set", "dataset_id"), "tag keys that name a dataset"),
        "match_object_storage_names": Param(
            True, "treat object storage buckets/accounts of the same name in several regions as one dataset"
        ),
    },
    references=(
        "../shared/reference/rules.md section 7.1 (parallel storage of one dataset in two regions is a heuristic)",
        "awslabs/aws-well-architected-labs 300_CUR_Queries cost_optimization.md: S3 Bucket Trends",
    ),
)

_OBJECT_STORAGE = "(?i)(simple storage service|cloud storage|storage accounts|blob|^s3$)"

SQL = f"""
WITH storage_keys AS MATERIALIZED (  -- storage volume charges, classified once per charge key (`charge_keys`)
  SELECT charge_key, regexp_matches(coalesce(ServiceName, ''), '{_OBJECT_STORAGE}') AS object_storage
  FROM $KEYS
  WHERE ServiceCategory = 'Storage' AND {storage_volume_line()} AND RegionId IS NOT NULL
    AND ChargeCategory IN ('Usage', 'Credit')
),
storage AS (
  SELECT li.ProviderName AS provider, li.BillingAccountId AS account, li.SubAccountId AS sub_account,
         lower(li.RegionId) AS region, li.ResourceId AS resource_id, li.BillingCurrency AS currency,
         li.BillingPeriodStart AS period, CAST(li.$COST AS DECIMAL(38,12)) AS cost,
         {tag_value('li.Tags', 'dataset_tag_keys')} AS tagged_dataset,
         CASE WHEN $match_object_storage_names AND k.object_storage
              THEN regexp_extract(lower(li.ResourceId), '[^/:]+$') END AS named_dataset
  FROM $BILLING li JOIN storage_keys k ON k.charge_key = li.x_ChargeKey
  WHERE {WINDOW.replace('BillingPeriodStart', 'li.BillingPeriodStart')} AND li.ResourceId IS NOT NULL
),
labelled AS (
  SELECT *, coalesce(tagged_dataset, named_dataset) AS dataset,
         CASE WHEN tagged_dataset IS NOT NULL THEN 'tag' ELSE 'resource name' END AS matched_by
  FROM storage WHERE coalesce(tagged_dataset, named_dataset) IS NOT NULL
),
copies AS (
  SELECT dataset, period, provider, {provider_key('provider')} AS pkey, region, resource_id, account, currency,
         any_value(sub_account) AS sub_account, min(matched_by) AS matched_by, CAST(sum(cost) AS DECIMAL(38,12)) AS cost
  FROM labelled GROUP BY dataset, period, provider, region, resource_id, account, currency
),
spread AS (  -- datasets billed in two or more places in one billing period
  SELECT dataset, period, list(DISTINCT provider || ' ' || region ORDER BY provider || ' ' || region) AS places
  FROM copies GROUP BY dataset, period HAVING count(DISTINCT pkey || '/' || region) >= 2
),
ranked AS (
  SELECT c.*, s.places,
         row_number() OVER (PARTITION BY c.dataset, c.period ORDER BY c.cost DESC, c.provider, c.region, c.resource_id)
           AS copy_rank
  FROM copies c JOIN spread s USING (dataset, period)
),
primary_copy AS (
  SELECT dataset, period, pkey AS primary_pkey, provider AS primary_provider, region AS primary_region,
         resource_id AS primary_resource, cost AS primary_cost, currency AS primary_currency
  FROM ranked WHERE copy_rank = 1
),
further AS (  -- each further copy once: in the latest period it was one
  SELECT r.*, pc.primary_provider, pc.primary_region, pc.primary_resource, pc.primary_cost, pc.primary_currency
  FROM ranked r JOIN primary_copy pc USING (dataset, period)
  WHERE r.copy_rank > 1 AND r.cost > 0 AND NOT (r.pkey = pc.primary_pkey AND r.region = pc.primary_region)
  QUALIFY row_number() OVER (PARTITION BY r.provider, r.account, r.resource_id ORDER BY r.period DESC, r.cost DESC) = 1
)
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       CAST(round(cost, 2) AS DECIMAL(38,12)) AS estimated_monthly_saving,
       'deleting this copy removes its storage cost in scope (requests and transfer to read the primary copy '
         || 'from elsewhere are not included); cost basis ' || $cost_basis AS estimate_method,
       json_object(
         'dataset', dataset, 'matched_by', matched_by, 'copy_storage_cost', round(cost, 2),
         'primary_copy', primary_resource, 'primary_region', primary_provider || ' ' || primary_region,
         'primary_storage_cost', round(primary_cost, 2), 'primary_currency', primary_currency,
         'stored_in', places
       ) AS evidence,
       printf('dataset %s (by %s) is also stored in %s %s (primary: %s in %s %s)', dataset, matched_by,
              provider, region, primary_resource, primary_provider, primary_region) AS summary,
       'open' AS status
FROM further
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Further copies of datasets billed in more than one region."""
    return ctx.findings(SQL.replace("$COST", ctx.cost).replace("$BILLING", billing(ctx)).replace("$KEYS", charge_keys(ctx)))
