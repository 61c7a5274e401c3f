"""Over-provisioned instances: p95 CPU and memory well under the instance's size.

Over the lookback (default 14 days, ending at the instance's last sample in the window), when
p95 CPU and p95 memory are under their thresholds, the smallest size of the same family that
holds p95 use plus headroom is recommended:

    needed vCPU   = vCPU   x p95 CPU / 100    x (1 + headroom / 100)
    needed memory = memory x p95 memory / 100 x (1 + headroom / 100)
    saving        = cost in scope x (1 - target price / current price)

The cost in scope is the instance's cost (the configured basis, EffectiveCost by default) in
its latest billing period in the window; that is its billed hourly rate times the hours it ran,
so the saving is the price difference at the rate actually paid. The price ratio comes from the
catalogue's list prices in one region; without them it is the larger of the vCPU and memory
ratios, and the finding says so. Accelerated instances are left to the GPU rules. An instance
with no metrics, too few days of them, or a type missing from the catalogue is reported as
not assessed, never as fine.
"""

from __future__ import annotations

from .compute_common import (
    BILLING_NEED,
    CATALOGUE_NEED,
    COMMON_PARAMS,
    NOT_ASSESSED_COLUMNS,
    compute_sql,
    metrics_need,
    price_ratio_cte,
    too_few_samples,
    utilisation_cte,
)
from .contract import Finding, Param, Rule, RuleContext

RULE = Rule(
    id="compute_rightsize",
    title="Instance larger than its workload",
    family="compute",
    severity="medium",
    why="An instance whose p95 CPU and memory stay low pays for capacity it never uses; a smaller size "
    "of the same family runs the same workload for less.",
    how_to_fix="Resize to the recommended type (stop, change type, start), or change the launch template or "
    "instance group; check peaks outside the lookback first.",
    needs=(BILLING_NEED, CATALOGUE_NEED, metrics_need("cpu_utilization")),
    parameters={
        **COMMON_PARAMS,
        "cpu_p95_threshold": Param(40.0, "p95 CPU % under which an instance is a rightsizing candidate"),
        "memory_p95_threshold": Param(60.0, "p95 memory % under which an instance is a rightsizing candidate"),
        "assume_memory_fits": Param(
            False, "assess on CPU alone when no memory metric exists (memory needs an agent on the host)"
        ),
    },
    references=(
        "AWS Compute Optimizer: CustomizableMetricParameters, LookBackPeriodPreference (14 days, P95, headroom)",
        "Azure Advisor cost recommendations: resize at P95 CPU, P99 memory thresholds",
        "turbot/steampipe-mod-aws-thrifty controls/ec2.pp: ec2_instance_with_low_utilization",
        "../shared/reference/rules.md section 6.1",
    ),
)

SQL = f"""
WITH instances AS (SELECT * FROM $INSTANCES),
{utilisation_cte(('cpu_utilization', 'memory_utilization'))},
assessed AS (
  SELECT i.*, u.first_sample, u.last_sample, u.p95_cpu_utilization AS p95_cpu, u.p95_memory_utilization AS p95_mem,
         coalesce(u.samples_cpu_utilization, 0) AS cpu_samples, coalesce(u.days_cpu_utilization, 0) AS cpu_days,
         coalesce(u.samples_memory_utilization, 0) AS mem_samples,
         CASE
           WHEN NOT i.in_catalogue THEN 'instance type ' || i.type_key || ' is not in the instance catalogue'
           {too_few_samples('cpu_utilization', 'no cpu_utilization samples for this resource in the window')}
           WHEN coalesce(u.samples_memory_utilization, 0) = 0 AND NOT $assume_memory_fits
             THEN 'no memory_utilization samples (memory needs an agent on the host); cannot confirm a smaller size fits'
         END AS not_assessed_reason
  FROM instances i LEFT JOIN utilisation u USING (iid)
  WHERE coalesce(i.accelerator_count, 0) = 0
),
candidates AS (
  SELECT a.*,
         a.vcpu * a.p95_cpu / 100 * (1 + $headroom_percent / 100) AS needed_vcpu,
         CASE WHEN a.mem_samples > 0 THEN a.memory_gib * a.p95_mem / 100 * (1 + $headroom_percent / 100) ELSE 0 END
           AS needed_memory
  FROM assessed a
  WHERE a.not_assessed_reason IS NULL AND a.p95_cpu < $cpu_p95_threshold
    AND (a.mem_samples = 0 OR a.p95_mem < $memory_p95_threshold)
),
targets AS (
  SELECT c.*, t.type_key AS target_key, t.instance_type AS target_type, t.vcpu AS target_vcpu,
         t.memory_gib AS target_memory
  FROM candidates c JOIN instance_catalogue t
    ON t.provider_key = c.pkey AND t.family = c.family AND t.accelerator_count = 0 AND t.type_key <> c.type_key
   AND t.vcpu >= c.needed_vcpu AND t.memory_gib >= c.needed_memory
   AND t.vcpu <= c.vcpu AND t.memory_gib <= c.memory_gib AND (t.vcpu < c.vcpu OR t.memory_gib < c.memory_gib)
  QUALIFY row_number() OVER (PARTITION BY c.iid ORDER BY t.vcpu, t.memory_gib, t.type_key) = 1
),
{price_ratio_cte('targets', 'target_key')},
estimated AS (
  SELECT t.*, p.price_region, p.price_current, p.price_target, p.price_note,
         CAST(round(coalesce(p.price_target / p.price_current,
                             greatest(t.target_vcpu / t.vcpu, t.target_memory / t.memory_gib)), 6) AS DECIMAL(18,6))
           AS price_ratio
  FROM targets t LEFT JOIN price_pairs p USING (iid)
)
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       CAST(round(cost * (1 - price_ratio), 2) AS DECIMAL(38,12)) AS estimated_monthly_saving,
       CASE WHEN price_current IS NOT NULL
         THEN printf('cost in scope x (1 - price ratio); price ratio = list price %s %s / %s %s (%s)',
                     target_type, price_target::VARCHAR, instance_type, price_current::VARCHAR, price_note)
         ELSE printf('cost in scope x (1 - price ratio); price ratio = larger of vCPU and memory ratios %s/%s '
                     '(no catalogue price for both types: sizes of a family are priced in proportion)',
                     target_type, instance_type)
       END || '; cost basis ' || $cost_basis AS estimate_method,
       json_object(
         'instance_type', instance_type, 'family', family, 'vcpu', vcpu, 'memory_gib', memory_gib,
         'p95_cpu_percent', round(p95_cpu, 1), 'p95_memory_percent', round(p95_mem, 1),
         'cpu_samples', cpu_samples, 'memory_samples', mem_samples, 'days_with_data', cpu_days,
         'lookback', strftime(first_sample, '%Y-%m-%d %H:%M') || ' to ' || strftime(last_sample, '%Y-%m-%d %H:%M'),
         'headroom_percent', $headroom_percent, 'needed_vcpu', round(needed_vcpu, 2),
         'needed_memory_gib', round(needed_memory, 2), 'recommended_type', target_type,
         'recommended_vcpu', target_vcpu, 'recommended_memory_gib', target_memory,
         'list_price_current', price_current, 'list_price_recommended', price_target, 'price_region', price_region,
         'price_ratio', price_ratio, 'cost_in_scope', round(cost, 2), 'running_hours', round(hours, 2),
         'billed_hourly_rate', round(cost / nullif(hours, 0), 4)
       ) AS evidence,
       printf('%s -> %s: p95 CPU %.1f%%%s over %d day(s); %s holds it with %g%% headroom',
              instance_type, target_type, p95_cpu,
              CASE WHEN mem_samples > 0 THEN printf(', p95 memory %.1f%%', p95_mem) ELSE ' (memory not measured)' END,
              cpu_days, target_type, $headroom_percent) AS summary,
       'open' AS status
FROM estimated
UNION ALL BY NAME
SELECT {NOT_ASSESSED_COLUMNS}, json_object('instance_type', type_key, 'reason', not_assessed_reason,
         'cost_in_scope', round(cost, 2)) AS evidence,
       'not assessed: ' || not_assessed_reason AS summary
FROM assessed WHERE not_assessed_reason IS NOT NULL
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Rightsizing findings, and instances that could not be assessed."""
    return ctx.findings(compute_sql(ctx, SQL))
