"""Oversized GPU instances: more accelerators than the workload uses.

For an accelerated instance whose p95 GPU utilisation is above the idle threshold (the idle
rule covers those) but under the oversized threshold, the smallest size of the same family and
accelerator model that holds p95 use plus headroom is recommended:

    needed GPUs = GPUs x max(p95 GPU, p95 GPU memory) / 100 x (1 + headroom / 100)
    saving      = cost in scope x (1 - target price / current price)

When CPU or memory samples exist, the target must also hold their p95 plus headroom. The price
ratio is the catalogue's list prices in one region; without them, the accelerator-count ratio
(accelerators dominate these instances' price), and the finding says so. Only families with a
smaller size in the catalogue can give a finding.
"""

from __future__ import annotations

from .compute_common import (
    BILLING_NEED,
    CATALOGUE_NEED,
    COMMON_PARAMS,
    compute_sql,
    metrics_need,
    price_ratio_cte,
    utilisation_cte,
)
from .contract import Finding, Param, Rule, RuleContext

RULE = Rule(
    id="compute_gpu_oversized",
    title="GPU instance with more accelerators than it uses",
    family="compute",
    severity="medium",
    why="Accelerator count drives the price of GPU instances; a workload that keeps a fraction of them busy "
    "pays for the rest.",
    how_to_fix="Move to the recommended size (fewer or smaller GPUs), or pack more work onto the instance "
    "(batching, several models per GPU).",
    needs=(BILLING_NEED, CATALOGUE_NEED, metrics_need("gpu_utilization")),
    parameters={
        **COMMON_PARAMS,
        "idle_gpu_p95_threshold": Param(5.0, "p95 GPU % under which the idle rule reports the instance instead"),
        "oversized_gpu_p95_threshold": Param(40.0, "p95 GPU % under which fewer or smaller GPUs are considered"),
    },
    references=(
        "AWS Compute Optimizer GPU recommendations (GPU and GPU_MEMORY utilisation with the CloudWatch agent)",
        "../shared/reference/rules.md section 6.3",
        "NVIDIA DCGM exporter default counters: DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED",
    ),
)

SQL = f"""
WITH instances AS (SELECT * FROM $INSTANCES),
{utilisation_cte(('gpu_utilization', 'gpu_memory_utilization', 'cpu_utilization', 'memory_utilization'))},
candidates AS (
  SELECT i.*, u.first_sample, u.last_sample, u.p95_gpu_utilization AS p95_gpu,
         u.p95_gpu_memory_utilization AS p95_gpu_mem, u.p95_cpu_utilization AS p95_cpu,
         u.p95_memory_utilization AS p95_mem, u.days_gpu_utilization AS gpu_days,
         u.samples_gpu_utilization AS gpu_samples,
         i.accelerator_count::DOUBLE * greatest(u.p95_gpu_utilization, coalesce(u.p95_gpu_memory_utilization, 0))
           / 100 * (1 + $headroom_percent / 100) AS needed_accelerators,
         i.vcpu::DOUBLE * coalesce(u.p95_cpu_utilization, 0) / 100 * (1 + $headroom_percent / 100) AS needed_vcpu,
         i.memory_gib::DOUBLE * coalesce(u.p95_memory_utilization, 0) / 100 * (1 + $headroom_percent / 100)
           AS needed_memory
  FROM instances i JOIN utilisation u USING (iid)
  WHERE i.accelerator_count > 0 AND u.samples_gpu_utilization > 0 AND u.days_gpu_utilization >= $min_days_with_data
    AND u.p95_gpu_utilization >= $idle_gpu_p95_threshold AND u.p95_gpu_utilization < $oversized_gpu_p95_threshold
),
targets AS (
  SELECT c.*, t.type_key AS target_key, t.instance_type AS target_type, t.accelerator_count AS target_accelerators,
         t.vcpu AS target_vcpu, t.memory_gib AS target_memory
  FROM candidates c JOIN instance_catalogue t
    ON t.provider_key = c.pkey AND t.family = c.family AND t.accelerator_model = c.accelerator_model
   AND t.accelerator_count < c.accelerator_count AND t.accelerator_count >= c.needed_accelerators
   AND t.vcpu >= c.needed_vcpu AND t.memory_gib >= c.needed_memory
  QUALIFY row_number() OVER (PARTITION BY c.iid ORDER BY t.accelerator_count, t.vcpu, t.memory_gib, t.type_key) = 1
),
{price_ratio_cte('targets', 'target_key')},
estimated AS (
  SELECT t.*, p.price_region, p.price_current, p.price_target, p.price_note,
         CAST(round(coalesce(p.price_target / p.price_current, t.target_accelerators / t.accelerator_count), 6)
              AS DECIMAL(18,6)) AS price_ratio
  FROM targets t LEFT JOIN price_pairs p USING (iid)
)
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       CAST(round(cost * (1 - price_ratio), 2) AS DECIMAL(38,12)) AS estimated_monthly_saving,
       CASE WHEN price_current IS NOT NULL
         THEN printf('cost in scope x (1 - price ratio); price ratio = list price %s %s / %s %s (%s)',
                     target_type, price_target::VARCHAR, instance_type, price_current::VARCHAR, price_note)
         ELSE printf('cost in scope x (1 - price ratio); price ratio = accelerator count %g/%g '
                     '(no catalogue price for both types)', target_accelerators::DOUBLE, accelerator_count::DOUBLE)
       END || '; cost basis ' || $cost_basis AS estimate_method,
       json_object(
         'instance_type', instance_type, 'accelerator_model', accelerator_model,
         'accelerator_count', accelerator_count, 'p95_gpu_percent', round(p95_gpu, 1),
         'p95_gpu_memory_percent', round(p95_gpu_mem, 1), 'p95_cpu_percent', round(p95_cpu, 1),
         'p95_memory_percent', round(p95_mem, 1), 'gpu_samples', gpu_samples, 'days_with_data', gpu_days,
         'lookback', strftime(first_sample, '%Y-%m-%d %H:%M') || ' to ' || strftime(last_sample, '%Y-%m-%d %H:%M'),
         'headroom_percent', $headroom_percent, 'needed_accelerators', round(needed_accelerators, 2),
         'recommended_type', target_type, 'recommended_accelerators', target_accelerators,
         'list_price_current', price_current, 'list_price_recommended', price_target, 'price_region', price_region,
         'price_ratio', price_ratio, 'cost_in_scope', round(cost, 2), 'running_hours', round(hours, 2),
         'billed_hourly_rate', round(cost / nullif(hours, 0), 4)
       ) AS evidence,
       printf('%s -> %s: p95 GPU %.1f%% of %g %s over %d day(s); %g accelerator(s) hold it with %g%% headroom',
              instance_type, target_type, p95_gpu, accelerator_count::DOUBLE, accelerator_model, gpu_days,
              target_accelerators::DOUBLE, $headroom_percent) AS summary,
       'open' AS status
FROM estimated
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Oversized GPU instances with a smaller size of their family that fits."""
    return ctx.findings(compute_sql(ctx, SQL))
