"""Inter-zone chatter: transfer between availability zones of one region above a threshold.

Traffic between zones of a region is billed per GB (AWS ``DataTransfer-Regional-Bytes``, in each
direction; Google Cloud ``Inter Zone Egress`` / ``Inter Zone Data Transfer Out``). Much of it
comes from load balancers and service meshes spreading requests over every zone, and from
clients reading replicas in another zone; zone-aware routing keeps that traffic in its zone,
while replication between zones (which buys resilience) remains.

For each resource (or, without a resource id, each sub-account and usage type) whose monthly
inter-zone transfer passes ``min_monthly_gb`` or ``min_monthly_cost``:

    saving = inter-zone transfer cost x avoidable_share

``avoidable_share`` (default 0.5) is the assumed share of the traffic that zone-aware routing
keeps in-zone: with requests spread evenly over three zones two thirds cross a zone boundary,
and part of the rest is replication that must cross; measure it (VPC flow logs with zone ids)
and set it.
"""

from __future__ import annotations

from .contract import Finding, Param, Rule, RuleContext
from .egress_common import (
    CHARGES,
    NETWORK_NEED,
    cents,
    latest_period,
    rate_per_gb,
    resource_key,
    share,
    window,
)
from .sqlparts import provider_key

RULE = Rule(
    id="egress_inter_zone",
    title="Inter-zone chatter",
    family="egress",
    severity="low",
    why="Traffic between availability zones is billed per GB (on AWS in both directions); chatty services "
    "spread over zones pay it on every request.",
    how_to_fix="Turn on zone-aware routing (topology-aware routing in Kubernetes, zone affinity in the service "
    "mesh or load balancer), read from replicas in the same zone, and co-locate chatty services and their "
    "caches in one zone where the resilience need allows.",
    needs=(NETWORK_NEED,),
    parameters={
        "min_monthly_gb": Param(1000.0, "report resources moving at least this many GB between zones in a month"),
        "min_monthly_cost": Param(50.0, "... or paying at least this much (bill currency) for it in a month"),
        "avoidable_share": Param(0.5, "share of the inter-zone traffic that zone-aware routing keeps in-zone (assumed)"),
    },
    references=(
        "AWS CUR user guide 'Understanding data transfer charges': DataTransfer-Regional-Bytes, billed in both "
        "directions",
        "aws-samples/aws-cudos-framework-deployment CUDOS 'DataTransfer Type' #7 (Inter AZ)",
        "Kubernetes topology-aware routing (kubernetes.io/docs/concepts/services-networking/topology-aware-routing)",
        "../shared/reference/rules.md sections 3.2 and 4.1",
    ),
)

SQL = f"""
WITH chatter AS (
  SELECT ProviderName AS provider, BillingAccountId AS account, SubAccountId AS sub_account, RegionId AS region,
         BillingCurrency AS currency, BillingPeriodStart AS period, {resource_key()} AS resource_id,
         ResourceId IS NULL AS no_resource_id, coalesce(x_UsageType, ChargeDescription) AS usage_type,
         volume_gb, CAST($COST AS DECIMAL(38,12)) AS cost
  FROM network_transfer_totals
  WHERE {window()} AND network_class = 'inter_zone' AND {CHARGES}
),
per_month AS (
  SELECT provider, account, resource_id, currency, period, any_value(sub_account) AS sub_account,
         max(region) AS region, bool_or(no_resource_id) AS no_resource_id,
         string_agg(DISTINCT usage_type, ', ' ORDER BY usage_type) AS usage_types,
         sum(volume_gb) AS gb, CAST(sum(cost) AS DECIMAL(38,12)) AS cost
  FROM chatter GROUP BY provider, account, resource_id, currency, period
),
latest AS ({latest_period('per_month')})
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       {cents(f'cost * {share("avoidable_share")}')} AS estimated_monthly_saving,
       printf('inter-zone transfer %s %s (%s GB x %s per GB) x avoidable_share %g, the assumed share that '
              'zone-aware routing keeps in-zone (a parameter); cost basis %s',
              round(cost, 2)::VARCHAR, currency, round(gb, 1)::VARCHAR, {rate_per_gb('cost', 'gb')}::VARCHAR,
              $avoidable_share, $cost_basis) AS estimate_method,
       json_object(
         'region', region, 'inter_zone_gb', round(gb, 1), 'inter_zone_cost', round(cost, 2),
         'rate_per_gb', {rate_per_gb('cost', 'gb')}, 'usage_types', usage_types,
         'avoidable_share', $avoidable_share,
         'billed_both_directions', {provider_key('provider')} = 'aws',
         'thresholds', printf('%g GB or %g %s a month', $min_monthly_gb, $min_monthly_cost, currency),
         'no_resource_id_in_bill', no_resource_id
       ) AS evidence,
       printf('%s GB between zones of %s (%s %s) in %s: route requests within their zone',
              round(gb, 0)::VARCHAR, coalesce(region, 'one region'), round(cost, 2)::VARCHAR, currency,
              strftime(period, '%Y-%m')) AS summary,
       'open' AS status
FROM latest
WHERE cost > 0 AND (coalesce(gb, 0) >= $min_monthly_gb OR cost >= $min_monthly_cost)
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Resources whose monthly inter-zone transfer passes the thresholds."""
    return ctx.findings(SQL.replace("$COST", ctx.cost))
