"""Cross-region transfer that feeds compute in another region: co-locate data and compute.

An inter-region transfer line (``network_class = 'inter_region'``) whose destination region has
compute or AI usage in the same billing account and month is taken as data read by that compute
- for example GPU training in eu-west-1 reading a bucket in us-east-1. The destination comes from
the bill (AWS ``USE1-EUW1-AWS-Out-Bytes``, CUR ``product/toRegionCode``); Google Cloud names only
the destination continent ("... from Americas to EMEA"), which matches compute in any region of
that continent (reported as such). Azure bandwidth meters do not name the destination, so Azure
transfer is not matched here (egress_network_share still weighs it against compute).

For each source resource (the bucket or instance the line names; without a resource id, the
sub-account and route) whose matched transfer passes ``min_monthly_gb`` or ``min_monthly_cost``
and whose destination compute costs at least ``min_destination_compute_cost`` that month:

    saving = the matched inter-region transfer cost (moving the job to the data, or keeping a copy
             of the data beside the job, removes it)

The one-time copy and the storage of a second copy are not netted: both are usually far smaller
than a month of repeated reads, and the evidence gives the GB so the copy can be priced.
"""

from __future__ import annotations

from .contract import Finding, Param, Rule, RuleContext
from .egress_common import ANALYSIS_NEED, CHARGES, NETWORK_NEED, cents, latest_period, rate_per_gb, window

RULE = Rule(
    id="egress_cross_region_compute",
    title="Cross-region transfer feeding compute in another region",
    family="egress",
    severity="medium",
    why="Compute that reads its data from another region pays inter-region transfer on every read; training "
    "jobs that stream a dataset each epoch pay it many times over.",
    how_to_fix="Run the job in the data's region, or keep a copy of the data (a replica bucket, a cache) in the "
    "compute's region; for repeated reads a one-time copy costs far less than the transfer.",
    needs=(NETWORK_NEED, ANALYSIS_NEED),
    parameters={
        "min_monthly_gb": Param(100.0, "report sources sending at least this many GB a month to a compute region"),
        "min_monthly_cost": Param(20.0, "... or paying at least this much (bill currency) for it in a month"),
        "min_destination_compute_cost": Param(
            50.0, "the destination region must have at least this much compute and AI usage (bill currency) that month"
        ),
    },
    references=(
        "AWS CUR user guide 'Understanding data transfer charges': <Src>-<Dst>-AWS-Out-Bytes billed at the source",
        "aws-samples/aws-cudos-framework-deployment CUDOS 'DataTransfer Type' #3 (Region to Region)",
        "infracost / Cyclenerd GCP SKUs 'Network Inter Region Data Transfer Out from <Src> to <Dst>'",
        "../shared/reference/rules.md sections 3 and 4",
    ),
)

# Continent names in Google Cloud SKU descriptions, and the region names they cover.
_CONTINENTS = """(VALUES
  ('americas', '^(us|northamerica|southamerica)-'), ('northern america', '^(us|northamerica)-'),
  ('north america', '^(us|northamerica)-'), ('south america', '^southamerica-'),
  ('emea', '^(europe|me|africa)-'), ('europe', '^europe-'), ('middle east', '^me-'), ('africa', '^africa-'),
  ('apac', '^(asia|australia)-'), ('asia', '^asia-'), ('asia pacific', '^(asia|australia)-'),
  ('australia', '^australia-'), ('oceania', '^australia-')) AS k(continent, region_pattern)"""

SQL = f"""
WITH transfer_lines AS (
  SELECT ProviderName AS provider, BillingAccountId AS account,
         SubAccountId AS sub_account, BillingCurrency AS currency, BillingPeriodStart AS period, ResourceId,
         coalesce(ResourceId, coalesce(SubAccountId, BillingAccountId) || ':' || route) AS resource_id,
         lower(source_region) AS source_region, lower(destination_region) AS destination_region, route,
         coalesce(x_UsageType, ChargeDescription) AS usage_type, ServiceName, volume_gb,
         CAST($COST AS DECIMAL(38,12)) AS cost
  FROM network_transfer_totals
  WHERE {window()} AND network_class = 'inter_region' AND {CHARGES} AND destination_region IS NOT NULL
),
transfer AS (  -- one row per resource, route and usage type a month (not per hourly line) before the join
  SELECT row_number() OVER () AS tid, *
  FROM (SELECT provider, account, sub_account, currency, period, ResourceId, resource_id, source_region,
               destination_region, route, usage_type, ServiceName, sum(volume_gb) AS volume_gb,
               CAST(sum(cost) AS DECIMAL(38,12)) AS cost
        FROM transfer_lines GROUP BY ALL)
),
compute_lines AS (  -- compute and AI usage by region, with the resources that make it
  SELECT ProviderName AS provider, BillingAccountId AS account, BillingCurrency AS currency,
         BillingPeriodStart AS period, lower(RegionId) AS region, ResourceId, SubAccountId,
         max(accelerator_model) AS accelerator_model, max(ai_workload) AS ai_workload,
         CAST(sum($COST) AS DECIMAL(38,12)) AS cost
  FROM analysis_totals
  WHERE {window()} AND ChargeCategory = 'Usage' AND network_class IS NULL AND RegionId IS NOT NULL
    AND (ServiceCategory IN ('Compute', 'AI and Machine Learning') OR ai_category IN ('accelerated_compute', 'ai_platform'))
  GROUP BY ALL
),
compute AS (
  SELECT provider, account, currency, period, region, CAST(sum(cost) AS DECIMAL(38,12)) AS compute_cost,
         string_agg(DISTINCT accelerator_model, ', ' ORDER BY accelerator_model) AS accelerators,
         string_agg(DISTINCT ai_workload, ', ' ORDER BY ai_workload) AS workloads,
         list(ResourceId ORDER BY cost DESC) FILTER (WHERE ResourceId IS NOT NULL)[1:3] AS top_resources,
         list(DISTINCT SubAccountId) AS sub_accounts
  FROM compute_lines GROUP BY ALL
),
matched AS (  -- each transfer line once, with every compute region its destination covers
  SELECT t.tid, t.provider, t.account, t.resource_id, t.currency, t.period, t.sub_account, t.ResourceId, t.route,
         t.source_region, t.usage_type, t.ServiceName, t.volume_gb, t.cost,
         bool_and(c.region = t.destination_region) AS exact_region,
         string_agg(c.region, ', ' ORDER BY c.region) AS compute_regions,
         CAST(sum(c.compute_cost) AS DECIMAL(38,12)) AS compute_cost,
         string_agg(c.accelerators, ', ') AS accelerators, string_agg(c.workloads, ', ') AS workloads,
         flatten(list(c.top_resources))[1:3] AS top_resources,
         bool_or(list_contains(c.sub_accounts, t.sub_account)) AS same_sub_account
  FROM transfer t
  LEFT JOIN {_CONTINENTS} ON k.continent = t.destination_region
  JOIN compute c ON c.provider = t.provider AND c.account = t.account AND c.currency = t.currency
   AND c.period = t.period AND c.region <> coalesce(t.source_region, '')
   AND (c.region = t.destination_region OR regexp_matches(c.region, k.region_pattern))
  GROUP BY ALL
),
per_month AS (
  SELECT provider, account, resource_id, currency, period, any_value(sub_account) AS sub_account,
         max(source_region) AS region, bool_or(ResourceId IS NULL) AS no_resource_id,
         string_agg(DISTINCT route, ', ' ORDER BY route) AS routes,
         string_agg(DISTINCT usage_type, ', ' ORDER BY usage_type) AS usage_types, max(ServiceName) AS service,
         bool_and(exact_region) AS exact_region, string_agg(DISTINCT compute_regions, ', ') AS compute_regions,
         max(compute_cost) AS compute_cost, string_agg(DISTINCT nullif(accelerators, ''), ', ') AS accelerators,
         string_agg(DISTINCT nullif(workloads, ''), ', ') AS workloads, max(top_resources) AS top_resources,
         bool_or(same_sub_account) AS same_sub_account,
         sum(volume_gb) AS gb, CAST(sum(cost) AS DECIMAL(38,12)) AS cost
  FROM matched WHERE compute_cost >= $min_destination_compute_cost
  GROUP BY provider, account, resource_id, currency, period
),
latest AS ({latest_period('per_month')})
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       {cents('cost')} AS estimated_monthly_saving,
       printf('co-locating the data with the compute removes the inter-region transfer: saving = its cost %s %s '
              '(%s GB x %s per GB); the one-time copy and a second copy''s storage are not netted; cost basis %s',
              round(cost, 2)::VARCHAR, currency, round(gb, 1)::VARCHAR, {rate_per_gb('cost', 'gb')}::VARCHAR,
              $cost_basis) AS estimate_method,
       json_object(
         'routes', routes, 'service', service, 'usage_types', usage_types, 'transfer_gb', round(gb, 1),
         'transfer_cost', round(cost, 2), 'rate_per_gb', {rate_per_gb('cost', 'gb')},
         'compute_regions', compute_regions,
         'destination_match', CASE WHEN exact_region THEN 'region' ELSE 'continent named by the SKU' END,
         'destination_compute_cost', round(compute_cost, 2), 'destination_accelerators', accelerators,
         'destination_ai_workloads', workloads, 'destination_top_resources', top_resources,
         'compute_in_same_sub_account', same_sub_account,
         'thresholds', printf('%g GB or %g %s a month; destination compute at least %g %s', $min_monthly_gb,
                              $min_monthly_cost, currency, $min_destination_compute_cost, currency),
         'no_resource_id_in_bill', no_resource_id
       ) AS evidence,
       printf('%s sends %s GB a month (%s %s) %s to compute there (%s %s%s): co-locate data and compute',
              CASE WHEN no_resource_id THEN 'sub-account ' || sub_account ELSE resource_id END, round(gb, 0)::VARCHAR,
              round(cost, 2)::VARCHAR, currency, routes, round(compute_cost, 2)::VARCHAR, currency,
              CASE WHEN accelerators IS NOT NULL THEN ', ' || accelerators ELSE '' END) AS summary,
       'open' AS status
FROM latest
WHERE cost > 0 AND (coalesce(gb, 0) >= $min_monthly_gb OR cost >= $min_monthly_cost)
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Inter-region transfer whose destination region runs compute in the same account."""
    return ctx.findings(SQL.replace("$COST", ctx.cost))
