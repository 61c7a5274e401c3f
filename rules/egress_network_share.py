"""Egress-heavy workloads: network spend large next to compute spend, or large on its own.

A workload is a sub-account (AWS account, Google Cloud project, Azure subscription) by default;
``workload_by`` switches to billing accounts (``billing_account``), resources (``resource``: the
id on the line; transfer lines without one are left out) or a tag (``tag``: ``key=value`` of the
first of ``workload_tag_keys`` a line carries; lines without such a tag are left out). Per workload and month (usage lines only, the configured cost
basis; credits are left out so the ratio compares gross usage):

* network spend = every line classified as network transfer (``network_class`` set: internet,
  inter-region, inter-zone, NAT processing, peering, replication ...), plus network services
  (ServiceCategory Networking, and gateway / endpoint / public IP hours billed under compute);
* compute spend = the other lines under Compute or AI and Machine Learning, and AI-tagged lines.

A workload is reported, in its latest month in the window, when its network spend is at least
``min_network_cost`` and is at least ``max_network_share`` of its compute spend, or when it
reaches ``max_monthly_network_cost`` whatever the compute:

    saving = network spend x expected_reduction

``expected_reduction`` (default 0.25) is an assumption: the share of network spend the usual
remedies remove (co-locating data and compute, compression, caching, endpoints, zone-aware
routing). The other egress rules estimate specific remedies; this one says where to look.
"""

from __future__ import annotations

from .contract import Finding, Param, Rule, RuleContext, RuleContractError
from .egress_common import ANALYSIS_NEED, cents, latest_period, share, window

WORKLOADS = ("sub_account", "billing_account", "resource", "tag")

RULE = Rule(
    id="egress_network_share",
    title="Egress-heavy workload",
    family="egress",
    severity="low",
    why="Network charges grow unseen beside the compute they serve; a workload whose transfer bill is a large "
    "share of its compute bill usually moves data it could keep local, compress or cache.",
    how_to_fix="Break the workload's network spend down by class (the evidence lists it): co-locate data and "
    "compute, add endpoints for provider services, compress and cache responses, route within zones.",
    needs=(ANALYSIS_NEED,),
    parameters={
        "workload_by": Param("sub_account", "what a workload is: sub_account, billing_account, resource or tag"),
        "workload_tag_keys": Param(
            ("workload", "app", "application", "service", "project", "team"),
            "tag keys naming the workload when workload_by = tag (the first present wins)",
        ),
        "max_network_share": Param(0.25, "report workloads whose network spend reaches this share of compute spend"),
        "min_network_cost": Param(50.0, "... when the network spend is at least this much a month (bill currency)"),
        "max_monthly_network_cost": Param(1000.0, "report any workload whose network spend reaches this a month"),
        "expected_reduction": Param(0.25, "share of the network spend the usual remedies remove (assumed)"),
    },
    references=(
        "FinOps Foundation: data transfer / networking cost allocation (network as a share of compute)",
        "aws-samples/aws-cudos-framework-deployment 'Data Transfer & Networking' sheet",
        "../shared/reference/rules.md sections 3 and 4",
    ),
)

# Hourly and fixed charges of network gadgets billed under a compute service (AWS bills NAT gateway,
# VPC endpoint and public IP hours under EC2): network spend, not compute.
_GADGETS = r"(NatGateway|TransitGateway|VpcEndpoint)-Hours|VPN-Usage-Hours|ElasticIP:|PublicIPv4:"
_WORKLOAD = {
    "sub_account": "coalesce(li.SubAccountId, li.BillingAccountId)",
    "billing_account": "li.BillingAccountId",
    "resource": "li.ResourceId",
    "tag": "tw.workload",
}
# Tag mode: the workload tag of each distinct tag set, found once and joined back.
_TAG_JOIN = """
  LEFT JOIN (
    SELECT Tags, list_filter(list_transform($workload_tag_keys, lambda k: lower(k) || '=' || list_filter(
             coalesce(map_entries(TRY_CAST(Tags AS MAP(VARCHAR, VARCHAR))), []), lambda e: lower(e.key) = lower(k))[1].value),
           lambda pair: pair IS NOT NULL)[1] AS workload
    FROM (SELECT DISTINCT Tags FROM analysis_totals WHERE {w} AND Tags IS NOT NULL)
  ) tw ON CAST(tw.Tags AS VARCHAR) = CAST(li.Tags AS VARCHAR)"""

SQL = f"""
WITH lines AS (
  SELECT li.ProviderName AS provider, li.BillingAccountId AS account, li.SubAccountId AS sub_account,
         li.RegionId AS region, li.BillingCurrency AS currency, li.BillingPeriodStart AS period, $WORKLOAD AS workload,
         coalesce(li.network_class, CASE WHEN li.ServiceCategory = 'Networking'
                                           OR regexp_matches(coalesce(li.x_UsageType, ''), '{_GADGETS}')
                                         THEN 'network services' END) AS network_class,
         CAST(li.$COST AS DECIMAL(38,12)) AS cost
  FROM analysis_totals li $TAGJOIN
  WHERE {window('li')} AND li.ChargeCategory = 'Usage'
    AND (li.network_class IS NOT NULL OR li.ServiceCategory IN ('Compute', 'AI and Machine Learning', 'Networking')
         OR li.ai_category IS NOT NULL)
),
per_class AS (
  SELECT provider, account, workload, currency, period, network_class, CAST(sum(cost) AS DECIMAL(38,12)) AS cost
  FROM lines WHERE workload IS NOT NULL AND network_class IS NOT NULL GROUP BY ALL
),
per_month AS (
  SELECT provider, account, workload AS resource_id, currency, period,
         CASE WHEN count(DISTINCT sub_account) = 1 THEN max(sub_account) END AS sub_account,
         CASE WHEN count(DISTINCT region) = 1 THEN max(region) END AS region,
         CAST(coalesce(sum(cost) FILTER (WHERE network_class IS NOT NULL), 0) AS DECIMAL(38,12)) AS network_cost,
         CAST(coalesce(sum(cost) FILTER (WHERE network_class IS NULL), 0) AS DECIMAL(38,12)) AS compute_cost
  FROM lines WHERE workload IS NOT NULL
  GROUP BY provider, account, workload, currency, period
),
latest AS ({latest_period('per_month')}),
found AS (
  SELECT l.*, network_cost / nullif(compute_cost, 0) AS network_share,
         CASE WHEN network_cost >= $max_monthly_network_cost THEN 'monthly amount'
              ELSE 'share of compute' END AS trigger
  FROM latest l
  WHERE network_cost > 0
    AND (network_cost >= $max_monthly_network_cost
         OR (network_cost >= $min_network_cost
             AND (compute_cost <= 0 OR network_cost >= compute_cost * {share('max_network_share')})))
),
breakdown AS (
  SELECT f.provider, f.account, f.resource_id, f.currency, f.period,
         -- by class name, so the same month gives the same evidence on every run
         to_json(map(list(p.network_class ORDER BY p.network_class), list(round(p.cost, 2) ORDER BY p.network_class)))
           AS by_class
  FROM found f JOIN per_class p ON p.provider = f.provider AND p.account = f.account AND p.workload = f.resource_id
   AND p.currency = f.currency AND p.period = f.period
  GROUP BY ALL
)
SELECT f.provider, f.account AS billing_account_id, f.sub_account AS sub_account_id, f.region, f.resource_id,
       f.period AS billing_period, f.currency, f.network_cost AS monthly_cost_in_scope,
       {cents(f'f.network_cost * {share("expected_reduction")}')} AS estimated_monthly_saving,
       printf('network spend %s %s x expected_reduction %g, the assumed share that co-location, endpoints, '
              'compression, caching and zone-aware routing remove (a parameter); cost basis %s',
              round(f.network_cost, 2)::VARCHAR, f.currency, $expected_reduction, $cost_basis) AS estimate_method,
       json_object(
         'workload_by', $workload_by, 'network_cost', round(f.network_cost, 2),
         'compute_cost', round(f.compute_cost, 2), 'network_share_of_compute', round(f.network_share, 4),
         'network_by_class', b.by_class, 'trigger', f.trigger,
         'thresholds', printf('share %g of compute with at least %g %s, or %g %s a month', $max_network_share,
                              $min_network_cost, f.currency, $max_monthly_network_cost, f.currency)
       ) AS evidence,
       printf('%s %s: network %s %s in %s%s', replace($workload_by, '_', '-'), f.resource_id,
              round(f.network_cost, 2)::VARCHAR, f.currency, strftime(f.period, '%Y-%m'),
              CASE WHEN f.compute_cost > 0 THEN printf(', %.0f%% of its compute (%s %s)', 100 * f.network_share,
                                                        round(f.compute_cost, 2)::VARCHAR, f.currency)
                   ELSE ' with no compute beside it' END) AS summary,
       'open' AS status
FROM found f JOIN breakdown b USING (provider, account, resource_id, currency, period)
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Workloads whose network spend passes a share of their compute spend or a monthly amount."""
    workload_by = str(ctx.params["workload_by"])
    if workload_by not in _WORKLOAD:
        raise RuleContractError(f"rules.egress_network_share.workload_by must be one of {', '.join(WORKLOADS)}, "
                                f"not {workload_by!r}")
    tag_join = _TAG_JOIN.format(w=window()) if workload_by == "tag" else ""
    sql = SQL.replace("$TAGJOIN", tag_join).replace("$WORKLOAD", _WORKLOAD[workload_by])
    return ctx.findings(sql.replace("$COST", ctx.cost))
