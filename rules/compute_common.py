"""SQL shared by the compute rules: instances billed in the window, and their utilisation.

`instances_cte` yields one row per instance (provider, billing account, resource) billed under
the Compute or AI and Machine Learning service categories (database and cache nodes have their
own sizing and are left out): its latest
billing period in the window, the instance type billed most in that period, its cost and
running hours there, and its catalogue specs. `utilisation_cte` adds the p95 of each metric
over the lookback ending at the instance's last sample before the window's end.
"""

from __future__ import annotations

from costaudit.connectors.sql import quote_literal

from .contract import Need, Param
from .sqlparts import col, instance_key, provider_key, running_hours, same_resource

BILLING_NEED = Need(
    "current_line_items",
    ("ResourceId", "ConsumedQuantity"),
    where="x_InstanceType IS NOT NULL OR x_UsageType IS NOT NULL",
    label="billed instance hours with resource ids",
    how="load a billing export that has resource ids (AWS CUR with resource ids, Azure cost details, "
    "the Google Cloud detailed export)",
)
CATALOGUE_NEED = Need("instance_catalogue", ("type_key", "vcpu"), label="the instance catalogue")

COMMON_PARAMS = {
    "lookback_days": Param(14, "days of metrics before the last sample that the p95 is taken over"),
    "min_days_with_data": Param(7, "fewer days with samples in the lookback means not assessed"),
    "headroom_percent": Param(20.0, "a smaller size must hold p95 use plus this much headroom"),
}


def metrics_need(metric: str) -> Need:
    return Need(
        "resource_metrics",
        ("resource_id", "value"),
        where=f"metric = {quote_literal(metric)}",
        label=f"utilisation metrics ({metric})",
        how="import them with `costaudit import metrics FILE` (resource_id, metric, timestamp, value)",
    )


def _scope(alias: str) -> str:
    """Instance lines: in the window, with a resource id, usage or credits, under Compute or AI
    and Machine Learning (database and cache nodes are sized differently)."""
    return (
        f"{col(alias, 'BillingPeriodStart')} >= $since AND {col(alias, 'BillingPeriodStart')} < $until "
        f"AND {col(alias, 'ResourceId')} IS NOT NULL AND {col(alias, 'ChargeCategory')} IN ('Usage', 'Credit') "
        f"AND {col(alias, 'ServiceCategory')} IN ('Compute', 'AI and Machine Learning')"
    )


def instances_cte(cost_column: str) -> str:
    """CTEs ``billed`` and ``instances`` (see the module docstring). Binds $since, $until."""
    return f"""
    type_keys AS (  -- the instance type of each distinct description, classified once
      SELECT *, {instance_key()} AS type_key
      FROM (SELECT DISTINCT x_InstanceType, x_UsageType, ServiceName, ConsumedUnit
            FROM current_line_items WHERE {_scope('')})
    ),
    billed AS (
      SELECT li.ProviderName AS provider, li.BillingAccountId AS account, li.ResourceId AS resource_id,
             li.BillingCurrency AS currency, li.BillingPeriodStart AS period, k.type_key,
             any_value(li.SubAccountId) AS sub_account, max(li.RegionId) AS region,
             CAST(sum(li.{cost_column}) AS DECIMAL(38,12)) AS cost, sum({running_hours('li')}) AS hours
      FROM current_line_items li
      JOIN type_keys k ON k.type_key IS NOT NULL
       AND k.x_InstanceType IS NOT DISTINCT FROM li.x_InstanceType AND k.x_UsageType IS NOT DISTINCT FROM li.x_UsageType
       AND k.ServiceName IS NOT DISTINCT FROM li.ServiceName AND k.ConsumedUnit IS NOT DISTINCT FROM li.ConsumedUnit
      WHERE {_scope('li')}
      GROUP BY ALL
    ),
    latest AS (
      SELECT * FROM billed
      QUALIFY row_number() OVER (PARTITION BY provider, account, resource_id ORDER BY period DESC, cost DESC) = 1
    ),
    instances AS (
      SELECT row_number() OVER (ORDER BY l.provider, l.account, l.resource_id) AS iid, l.*,
             {provider_key('l.provider')} AS pkey, c.instance_type, c.family, c.vcpu, c.memory_gib,
             c.accelerator_model, c.accelerator_count, c.accelerator_memory_gib, c.type_key IS NOT NULL AS in_catalogue
      FROM latest l
      LEFT JOIN instance_catalogue c ON c.provider_key = {provider_key('l.provider')} AND c.type_key = l.type_key
      WHERE l.cost > 0
    )"""


def utilisation_cte(metrics: tuple[str, ...]) -> str:
    """CTEs ``matched``, ``sample_end`` and ``utilisation`` (p95, samples and days per metric)
    for the ``instances`` CTE. Binds $until and $lookback_days."""
    listed = ", ".join(quote_literal(m) for m in metrics)
    per_metric = ",\n".join(
        f"quantile_cont(r.value, 0.95) FILTER (WHERE r.metric = {quote_literal(m)}) AS p95_{m},\n"
        f"count(*) FILTER (WHERE r.metric = {quote_literal(m)}) AS samples_{m},\n"
        f"count(DISTINCT CAST(r.sampled_at AS DATE)) FILTER (WHERE r.metric = {quote_literal(m)}) AS days_{m}"
        for m in metrics
    )
    return f"""
    metric_ids AS (
      SELECT DISTINCT resource_id AS metric_resource FROM resource_metrics WHERE metric IN ({listed})
    ),
    matched AS (
      SELECT i.iid, m.metric_resource FROM instances i JOIN metric_ids m
        ON {same_resource('i.resource_id', 'm.metric_resource')}
      QUALIFY row_number() OVER (PARTITION BY i.iid ORDER BY length(m.metric_resource) DESC, m.metric_resource) = 1
    ),
    sample_end AS (
      SELECT mm.iid, max(r.sampled_at) AS last_sample
      FROM matched mm JOIN resource_metrics r ON r.resource_id = mm.metric_resource
      WHERE r.metric IN ({listed}) AND r.sampled_at < $until
      GROUP BY 1
    ),
    utilisation AS (
      SELECT e.iid, min(r.sampled_at) AS first_sample, max(r.sampled_at) AS last_sample,
             {per_metric}
      FROM sample_end e JOIN matched mm USING (iid)
      JOIN resource_metrics r ON r.resource_id = mm.metric_resource
      WHERE r.metric IN ({listed})
        AND r.sampled_at > e.last_sample - to_days(CAST($lookback_days AS INTEGER)) AND r.sampled_at <= e.last_sample
      GROUP BY 1
    )"""


def price_ratio_cte(current: str, target: str) -> str:
    """CTE ``priced``: for rows of ``{current}`` with a ``target_key`` column, the list prices of
    current and target types in one region (the instance's own region first) and their ratio."""
    return f"""
    price_pairs AS (
      SELECT c.iid, pc.region AS price_region, pc.hourly_price AS price_current, pt.hourly_price AS price_target,
             pc.price_note
      FROM {current} c
      JOIN instance_prices pc ON pc.provider_key = c.pkey AND pc.type_key = c.type_key
      JOIN instance_prices pt ON pt.provider_key = c.pkey AND pt.type_key = c.{target} AND pt.region = pc.region
        AND pt.currency = pc.currency
      QUALIFY row_number() OVER (
        PARTITION BY c.iid ORDER BY (lower(pc.region) = lower(coalesce(c.region, ''))) DESC, pc.region) = 1
    )"""


NOT_ASSESSED_COLUMNS = """
      provider, account AS billing_account_id, sub_account AS sub_account_id, region, resource_id,
      period AS billing_period, currency, cost AS monthly_cost_in_scope,
      CAST(NULL AS DECIMAL(38,12)) AS estimated_monthly_saving,
      'not assessed: no saving estimated' AS estimate_method, 'not_assessed' AS status"""
