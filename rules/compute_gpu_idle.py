"""Idle GPU instances: accelerators that stay (nearly) unused over the lookback.

An accelerated instance (the catalogue gives its accelerator count) whose p95 GPU utilisation
over the lookback is under the idle threshold does no accelerated work worth its price: stop it,
or move what it runs to a CPU instance. The saving is its whole cost in scope (the configured
basis, in its latest billing period in the window): a stopped instance bills nothing for compute.

Accelerated instances without GPU metrics are reported here as not assessed (the other GPU rule
does not repeat them). GPU metrics need an agent (CloudWatch agent nvidia_gpu, DCGM exporter,
Ops Agent, Azure Monitor agent); providers' own idle checks skip GPU hosts.
"""

from __future__ import annotations

from .compute_common import (
    BILLING_NEED,
    CATALOGUE_NEED,
    COMMON_PARAMS,
    NOT_ASSESSED_COLUMNS,
    compute_sql,
    metrics_need,
    too_few_samples,
    utilisation_cte,
)
from .contract import Finding, Param, Rule, RuleContext

RULE = Rule(
    id="compute_gpu_idle",
    title="GPU instance idle",
    family="compute",
    severity="high",
    why="Accelerated instances are the most expensive per hour; one whose GPUs stay idle bills the full "
    "rate for nothing.",
    how_to_fix="Stop or terminate the instance, or schedule it to run only for jobs; move CPU-only work to a "
    "general-purpose instance.",
    needs=(BILLING_NEED, CATALOGUE_NEED, metrics_need("gpu_utilization")),
    parameters={
        **{k: v for k, v in COMMON_PARAMS.items() if k != "headroom_percent"},
        "idle_gpu_p95_threshold": Param(5.0, "p95 GPU utilisation % under which the GPUs count as idle"),
    },
    references=(
        "../shared/reference/rules.md section 6.3 (GPU utilisation signals: nvidia_smi, DCGM, Ops Agent)",
        "GCP idle VM recommender: not available for VMs with GPUs (cloud.google.com/compute/docs/instances/"
        "viewing-and-applying-idle-vm-recommendations)",
        "AWS Compute Optimizer GPU metrics (GPU, GPU_MEMORY) with the CloudWatch agent",
    ),
)

SQL = f"""
WITH instances AS (SELECT * FROM $INSTANCES),
{utilisation_cte(('gpu_utilization', 'cpu_utilization'))},
assessed AS (
  SELECT i.*, u.first_sample, u.last_sample, u.p95_gpu_utilization AS p95_gpu, u.p95_cpu_utilization AS p95_cpu,
         coalesce(u.samples_gpu_utilization, 0) AS gpu_samples, coalesce(u.days_gpu_utilization, 0) AS gpu_days,
         CASE
           {too_few_samples('gpu_utilization', 'no gpu_utilization samples for this GPU instance in the window '
                            '(GPU metrics need an agent)')}
         END AS not_assessed_reason
  FROM instances i LEFT JOIN utilisation u USING (iid)
  WHERE i.accelerator_count > 0
)
SELECT provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
       period AS billing_period, currency, cost AS monthly_cost_in_scope,
       CAST(round(cost, 2) AS DECIMAL(38,12)) AS estimated_monthly_saving,
       'stopping the instance removes its cost in scope (all of it); cost basis ' || $cost_basis AS estimate_method,
       json_object(
         'instance_type', instance_type, 'accelerator_model', accelerator_model,
         'accelerator_count', accelerator_count, 'p95_gpu_percent', round(p95_gpu, 1),
         'p95_cpu_percent', round(p95_cpu, 1), 'gpu_samples', gpu_samples, 'days_with_data', gpu_days,
         'lookback', strftime(first_sample, '%Y-%m-%d %H:%M') || ' to ' || strftime(last_sample, '%Y-%m-%d %H:%M'),
         'idle_threshold_percent', $idle_gpu_p95_threshold, 'cost_in_scope', round(cost, 2),
         'running_hours', round(hours, 2), 'billed_hourly_rate', round(cost / nullif(hours, 0), 4)
       ) AS evidence,
       printf('%s (%g x %s): p95 GPU %.1f%% over %d day(s), under %g%%: stop it or run it only for jobs',
              instance_type, accelerator_count::DOUBLE, accelerator_model, p95_gpu, gpu_days,
              $idle_gpu_p95_threshold) AS summary,
       'open' AS status
FROM assessed WHERE not_assessed_reason IS NULL AND p95_gpu < $idle_gpu_p95_threshold
UNION ALL BY NAME
SELECT {NOT_ASSESSED_COLUMNS}, json_object('instance_type', instance_type, 'reason', not_assessed_reason,
         'cost_in_scope', round(cost, 2)) AS evidence,
       'not assessed: ' || not_assessed_reason AS summary
FROM assessed WHERE not_assessed_reason IS NOT NULL
"""


def evaluate(ctx: RuleContext) -> list[Finding]:
    """Idle GPU instances, and GPU instances that could not be assessed."""
    return ctx.findings(compute_sql(ctx, SQL))
