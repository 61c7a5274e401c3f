"""Internet egress from AI serving: model endpoints and GPU hosts that send a lot to the internet.

Internet transfer (``network_class = 'internet'``) is attributed to AI serving when

1. its line names a resource that has AI spend in the window (``ai_spend``: a GPU instance, a
   model endpoint, an AI API account), unless that resource's workload is one of
   ``exclude_workloads`` (training by default: a training job's egress is not serving); or
2. analysis linked the transfer line itself to AI (``ai_category`` set on it, through the AI
   accounts, resources or shared tags configured for analysis); or
3. the line has no resource id and its sub-account spends at least ``ai_sub_account_share`` of
   its compute and AI usage on AI in that month (an AI serving project or account).

For each such resource (or sub-account) whose monthly internet egress passes ``min_monthly_gb``
or ``min_monthly_cost``:

    saving = internet egress cost x reducible_share

``reducible_share`` (default 0.3) is an assumption: compressing responses (JSON, embeddings and
token streams compress well), caching repeated answers and static artefacts at a CDN, and
returning only the fields clients use typically remove a third or more of the bytes; CDN egress
prices are not netted. Measure the response sizes and set it.
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
    share,
    window,
)

RULE = Rule(
    id="egress_ai_serving_internet",
    title="Internet egress from AI serving",
    family="egress",
    severity="medium",
    why="Model endpoints and GPU hosts that answer internet clients pay internet egress on every response; "
    "large, uncompressed or repeated responses (embeddings, images, model files) make it a large part of "
    "the serving cost.",
    how_to_fix="Compress responses, stream tokens instead of returning large payloads, cache repeated answers "
    "and static artefacts at a CDN, serve clients from a region near them, and keep internal consumers on "
    "private connectivity instead of the internet.",
    needs=(NETWORK_NEED, ANALYSIS_NEED),
    parameters={
        "min_monthly_gb": Param(100.0, "report AI workloads sending at least this many GB to the internet in a month"),
        "min_monthly_cost": Param(50.0, "... or paying at least this much (bill currency) for it in a month"),
        "reducible_share": Param(0.3, "share of the egress that compression and caching remove (assumed)"),
        "ai_sub_account_share": Param(
            0.5, "a sub-account spending at least this share of its compute and AI usage on AI counts as AI serving"
        ),
        "exclude_workloads": Param(("training",), "AI workloads whose internet egress is not serving"),
    },
    references=(
        "../shared/reference/rules.md sections 3.2 (CUDOS 'Region to Internet') and 5 (AI spend)",
        "AWS Well-Architected Cost Optimization pillar: COST08-BP02 (select components to optimise data transfer)",
        "Google Cloud architecture framework: optimise network costs (Cloud CDN, compression)",
    ),
)

SQL = f"""
WITH ai_resources AS (  -- resources with AI usage in the window and what they are
  SELECT ProviderName AS provider, BillingAccountId AS account, lower(ResourceId) AS resource_key,
         arg_max(ai_category, EffectiveCost) AS ai_category, max(ai_workload) AS ai_workload,
         max(accelerator_model) AS accelerator_model
  FROM ai_spend_totals WHERE {window()} AND ResourceId IS NOT NULL AND ChargeCategory = 'Usage'
  GROUP BY ALL
),
ai_accounts AS (  -- the share of each sub-account's compute and AI usage that is AI, per month
  SELECT ProviderName AS provider, BillingAccountId AS account, SubAccountId AS sub_account,
         BillingPeriodStart AS period, BillingCurrency AS currency,
         CAST(coalesce(sum($COST) FILTER (WHERE ai_category IS NOT NULL), 0) AS DECIMAL(38,12)) AS ai_cost,
         CAST(sum($COST) AS DECIMAL(38,12)) AS compute_cost
  FROM analysis_totals
  WHERE {window()} AND ChargeCategory = 'Usage' AND network_class IS NULL AND SubAccountId IS NOT NULL
    AND (ServiceCategory IN ('Compute', 'AI and Machine Learning') OR ai_category IS NOT NULL)
  GROUP BY ALL
),
internet AS (
  SELECT n.ProviderName AS provider, n.BillingAccountId AS account, n.SubAccountId AS sub_account,
         n.RegionId AS region, n.BillingCurrency AS currency, n.BillingPeriodStart AS period,
         CASE WHEN r.resource_key IS NOT NULL OR (n.ai_category IS NOT NULL AND n.ResourceId IS NOT NULL) THEN n.ResourceId
              ELSE coalesce(n.SubAccountId, n.BillingAccountId) || ':' || coalesce(n.x_UsageType, n.ChargeDescription,
                   'internet egress') END AS resource_id,
         CASE WHEN r.resource_key IS NOT NULL THEN 'resource with AI spend'
              WHEN n.ai_category IS NOT NULL THEN 'linked to AI by analysis (' || n.ai_category || ')'
              WHEN a.compute_cost > 0 AND a.ai_cost / a.compute_cost >= {share('ai_sub_account_share')}
                THEN 'sub-account mostly AI' END AS attributed_by,
         coalesce(r.ai_category, n.ai_category) AS ai_category, r.ai_workload, r.accelerator_model,
         n.ResourceId IS NULL AS no_resource_id, n.route, n.volume_gb, CAST(n.$COST AS DECIMAL(38,12)) AS cost,
         a.ai_cost, a.compute_cost
  FROM network_transfer_totals n
  LEFT JOIN ai_resources r ON r.provider = n.ProviderName AND r.account = n.BillingAccountId
   AND r.resource_key = lower(n.ResourceId)  -- Azure exports spell one resource id in several cases
  LEFT JOIN ai_accounts a ON n.ResourceId IS NULL AND a.provider = n.ProviderName AND a.account = n.BillingAccountId
   AND a.sub_account = n.SubAccountId AND a.period = n.BillingPeriodStart AND a.currency = n.BillingCurrency
  WHERE {window('n')} AND n.network_class = 'internet' AND n.{CHARGES}
    AND NOT list_contains(list_transform($exclude_workloads, lambda w: lower(w)), lower(coalesce(r.ai_workload, '')))
),
per_month AS (
  SELECT provider, account, resource_id, currency, period, any_value(sub_account) AS sub_account,
         max(region) AS region, min(attributed_by) AS attributed_by, max(ai_category) AS ai_category,
         max(ai_workload) AS ai_workload, max(accelerator_model) AS accelerator_model,
         bool_or(no_resource_id) AS no_resource_id, string_agg(DISTINCT route, ', ' ORDER BY route) AS routes,
         sum(volume_gb) AS gb, CAST(sum(cost) AS DECIMAL(38,12)) AS cost,
         max(ai_cost) AS ai_cost, max(compute_cost) AS compute_cost
  FROM internet WHERE attributed_by IS NOT NULL
  GROUP BY provider, account, resource_id, currency, period
),
latest AS ({latest_period('per_month')})
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       {cents(f'cost * {share("reducible_share")}')} AS estimated_monthly_saving,
       printf('internet egress %s %s (%s GB x %s per GB) x reducible_share %g, the assumed share that response '
              'compression and CDN caching remove (a parameter; CDN prices not netted); cost basis %s',
              round(cost, 2)::VARCHAR, currency, round(gb, 1)::VARCHAR, {rate_per_gb('cost', 'gb')}::VARCHAR,
              $reducible_share, $cost_basis) AS estimate_method,
       json_object(
         'attributed_by', attributed_by, 'ai_category', ai_category, 'ai_workload', ai_workload,
         'accelerator_model', accelerator_model, 'internet_gb', round(gb, 1), 'internet_cost', round(cost, 2),
         'rate_per_gb', {rate_per_gb('cost', 'gb')}, 'routes', routes,
         'sub_account_ai_usage', round(ai_cost, 2), 'sub_account_compute_and_ai_usage', round(compute_cost, 2),
         'reducible_share', $reducible_share,
         'thresholds', printf('%g GB or %g %s a month', $min_monthly_gb, $min_monthly_cost, currency),
         'no_resource_id_in_bill', no_resource_id
       ) AS evidence,
       printf('AI serving (%s) sent %s GB to the internet (%s %s) in %s: compress and cache responses',
              concat_ws(', ', coalesce(ai_category, printf('sub-account %.0f%% AI', 100 * ai_cost / compute_cost)),
                        ai_workload, accelerator_model), round(gb, 0)::VARCHAR,
              round(cost, 2)::VARCHAR, currency, strftime(period, '%Y-%m')) AS summary,
       'open' AS status
FROM latest
WHERE cost > 0 AND (coalesce(gb, 0) >= $min_monthly_gb OR cost >= $min_monthly_cost)
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """AI resources and AI sub-accounts whose monthly internet egress passes the thresholds."""
    return ctx.findings(SQL.replace("$COST", ctx.cost))
