"""NAT gateway data processing above a threshold: traffic that endpoints could carry for free.

A NAT gateway bills every GB it processes (AWS NatGateway-Bytes, Google Cloud NAT data
processing, Azure NAT Gateway data processed), on top of any transfer charge. Traffic to the
provider's own storage and database services does not need the NAT: AWS gateway VPC endpoints
carry S3 and DynamoDB traffic free of charge, Private Google Access reaches Google APIs without
Cloud NAT, and Azure service endpoints reach Storage and SQL without the NAT gateway.

The bill does not say where the processed bytes went, so the share that such endpoints would
carry is a parameter (``endpoint_share``, default 0.5: an assumption to replace with a measured
value from VPC flow logs / NAT logs). For each gateway (or, without a resource id, each
sub-account and usage type) whose monthly processing passes ``min_monthly_gb`` or
``min_monthly_cost``:

    saving = processing charge per GB (from the bill) x processed GB x endpoint_share
           = processing cost x endpoint_share

The gateway's other charges in the month (hourly uptime) are shown as evidence but not counted:
the gateway stays for the rest of the traffic.
"""

from __future__ import annotations

from .contract import Finding, Param, Rule, RuleContext
from .egress_common import (
    ANALYSIS_NEED,
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
    id="egress_nat_processing",
    title="NAT gateway processing traffic that endpoints could carry",
    family="egress",
    severity="medium",
    why="NAT gateways bill every GB they process; traffic to object storage and managed databases in the same "
    "region does not need to pass through them.",
    how_to_fix="Add gateway VPC endpoints for S3 and DynamoDB (AWS, no charge), enable Private Google Access "
    "(Google Cloud), or use service endpoints / private endpoints for Storage and SQL (Azure); check with flow "
    "logs which destinations the NAT traffic has, and keep one NAT per zone for the rest.",
    needs=(NETWORK_NEED, ANALYSIS_NEED),
    parameters={
        "min_monthly_gb": Param(1000.0, "report gateways processing at least this many GB in a month"),
        "min_monthly_cost": Param(100.0, "... or costing at least this much (bill currency) in a month"),
        "endpoint_share": Param(
            0.5,
            "share of the processed GB assumed to go to services a free endpoint carries (S3/DynamoDB, Google "
            "APIs, Azure Storage); measure it with flow logs and set it",
        ),
    },
    references=(
        "awslabs/aws-well-architected-labs 300_CUR_Queries networking: NAT Gateway (NatGateway-Bytes) and "
        "cost_optimization.md NAT tips (gateway VPC endpoints for S3/DynamoDB)",
        "AWS VPC pricing: gateway endpoints for S3 and DynamoDB have no charge",
        "Google Cloud: Private Google Access; Cloud NAT pricing (data processing)",
        "../shared/reference/rules.md sections 3.2-3.3 and 4",
    ),
)

# Step 1: the NAT processing per gateway and month, latest month of each gateway. Kept in a TEMP
# table so that the next step's join knows how few gateways there are: as a CTE, DuckDB guessed it
# large and hashed every other line item of the window instead (31 s at 10M rows, 0.4 s at 1M).
LATEST_SQL = f"""
WITH nat AS (
  SELECT ProviderName AS provider, BillingAccountId AS account, SubAccountId AS sub_account, RegionId AS region,
         BillingCurrency AS currency, BillingPeriodStart AS period, {resource_key()} AS resource_id,
         ResourceId IS NULL AS no_resource_id, x_UsageType AS usage_type, volume_gb,
         CAST($COST AS DECIMAL(38,12)) AS cost
  FROM network_transfer_totals
  WHERE {window()} AND network_class = 'nat_processing' AND {CHARGES}
),
per_month AS (
  SELECT provider, account, resource_id, currency, period, any_value(sub_account) AS sub_account,
         max(region) AS region, bool_or(no_resource_id) AS no_resource_id,
         string_agg(DISTINCT usage_type, ', ' ORDER BY usage_type) AS usage_types,
         sum(volume_gb) AS gb, CAST(sum(cost) AS DECIMAL(38,12)) AS cost
  FROM nat GROUP BY provider, account, resource_id, currency, period
)
{latest_period('per_month')}
"""

SQL = f"""
WITH latest AS (SELECT * FROM $LATEST),
gateway_other AS (  -- the same gateway's other charges that month (uptime hours), for context
  SELECT g.provider, g.account, g.resource_id, g.period, CAST(sum(li.$COST) AS DECIMAL(38,12)) AS other_cost
  FROM (SELECT DISTINCT provider, account, resource_id, period FROM latest WHERE NOT no_resource_id) g
  JOIN analysis_totals li
    ON li.ResourceId = g.resource_id AND li.ProviderName = g.provider AND li.BillingAccountId = g.account
   AND li.BillingPeriodStart = g.period
  WHERE {window('li')} AND li.network_class IS NULL AND li.{CHARGES}
  GROUP BY ALL
),
found AS (
  SELECT l.*, coalesce(g.other_cost, 0) AS other_cost, {provider_key('l.provider')} AS pkey
  FROM latest l LEFT JOIN gateway_other g USING (provider, account, resource_id, period)
  WHERE l.cost > 0 AND (coalesce(l.gb, 0) >= $min_monthly_gb OR l.cost >= $min_monthly_cost)
)
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       {cents(f'cost * {share("endpoint_share")}')} AS estimated_monthly_saving,
       printf('processing %s %s (%s GB x %s per GB) x endpoint_share %g, the assumed share of NAT traffic bound for '
              'S3/DynamoDB, Google APIs or Azure Storage that free gateway/service endpoints carry (a parameter: '
              'measure it with flow logs); cost basis %s',
              round(cost, 2)::VARCHAR, currency, round(gb, 1)::VARCHAR, {rate_per_gb('cost', 'gb')}::VARCHAR,
              $endpoint_share, $cost_basis) AS estimate_method,
       json_object(
         'processed_gb', round(gb, 1), 'processing_cost', round(cost, 2),
         'rate_per_gb', {rate_per_gb('cost', 'gb')}, 'endpoint_share', $endpoint_share,
         'gb_via_endpoints', round(gb * {share('endpoint_share')}, 1), 'usage_types', usage_types,
         'gateway_other_charges', round(other_cost, 2), 'thresholds',
         printf('%g GB or %g %s a month', $min_monthly_gb, $min_monthly_cost, currency),
         'no_resource_id_in_bill', no_resource_id
       ) AS evidence,
       printf('NAT gateway processed %s GB (%s %s) in %s: %s', round(gb, 0)::VARCHAR, round(cost, 2)::VARCHAR,
              currency, strftime(period, '%Y-%m'),
              CASE pkey WHEN 'aws' THEN 'send S3 and DynamoDB traffic through gateway VPC endpoints'
                        WHEN 'gcp' THEN 'enable Private Google Access for Google APIs'
                        WHEN 'azure' THEN 'use service endpoints for Storage and SQL'
                        ELSE 'reach provider services through private endpoints' END) AS summary,
       'open' AS status
FROM found
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """NAT gateways whose monthly data processing passes the thresholds."""
    params = {"since": ctx.window.since, "until": ctx.window.until}
    scope = f"{ctx.cost} {ctx.window.since.isoformat()}..{ctx.window.until.isoformat()}"
    latest = ctx.scratch.table(ctx.con, f"nat processing per gateway {scope}", LATEST_SQL.replace("$COST", ctx.cost), params)
    return ctx.findings(SQL.replace("$COST", ctx.cost).replace("$LATEST", latest))
