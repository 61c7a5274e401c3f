"""SQL shared by the compute rules: instances billed in the window, and their utilisation.

`instances_cte` yields one row per instance (provider, billing account, resource) billed under
the Compute or AI and Machine Learning service categories (database and cache nodes have their
own sizing and are left out): its latest
billing period in the window, the instance type billed most in that period, its cost and
running hours there, and its catalogue specs. `utilisation_cte` adds the p95 of each metric
over the lookback ending at the instance's last sample before the window's end.

The three compute rules read the same instances and the same id matches, so `compute_sql`
builds them once per audit run as TEMP tables (`RunScratch`): the instance type of each charge key
(`sqlparts.charge_keys`), the instances, and every (instance, metric resource id) pair that names
the same resource (`sqlparts.same_resource_pairs`, an equi-join on id tails). Each rule then
picks its metric resource and takes its percentiles from those tables.
"""

from __future__ import annotations

from costaudit.connectors.sql import quote_literal

from .contract import Need, Param, RuleContext
from .sqlparts import (
    billing,
    charge_keys,
    col,
    instance_key,
    provider_key,
    running_hours,
    same_resource_pairs,
)

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


def type_keys_sql(keys: str | None = None) -> str:
    """The instance type key of each charge key billed as compute usage (``charge_key``,
    ``type_key``). `keys` names the run's `sqlparts.charge_keys` table; without it the distinct
    keys are found here (one more scan)."""
    source = keys or (
        "(SELECT DISTINCT x_ChargeKey AS charge_key, x_InstanceType, x_UsageType, ServiceName, ConsumedUnit,"
        " ServiceCategory, ChargeCategory FROM current_line_items)"
    )
    return f"""SELECT charge_key, {instance_key()} AS type_key FROM {source}
      WHERE ChargeCategory IN ('Usage', 'Credit') AND ServiceCategory IN ('Compute', 'AI and Machine Learning')"""


def instances_cte(cost_column: str, type_keys: str | None = None, billing: str = "current_line_items") -> str:
    """CTEs ``billed`` and ``instances`` (see the module docstring). Binds $since, $until.

    `type_keys` names a table holding `type_keys_sql()`; without it the types are classified in
    a CTE (the optimizer may then evaluate the classification on every billing row). Lines are
    matched to their type by the integer ``x_ChargeKey``."""
    source = f"SELECT * FROM {type_keys}" if type_keys else type_keys_sql()
    return f"""
    type_keys AS (  -- the instance type of each charge key, classified once
      {source}
    ),
    billed AS (
      SELECT li.ProviderName AS provider, li.BillingAccountId AS account, li.ResourceId AS resource_id,
             li.BillingCurrency AS currency, li.BillingPeriodStart AS period, k.type_key,
             any_value(li.SubAccountId) AS sub_account, max(li.RegionId) AS region,
             CAST(sum(li.{cost_column}) AS DECIMAL(38,12)) AS cost, sum({running_hours('li')}) AS hours
      FROM {billing} li
      JOIN type_keys k ON k.type_key IS NOT NULL AND k.charge_key = li.x_ChargeKey
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


def matches_sql(instances: str) -> str:
    """Every (instance, metric resource id) pair naming the same resource, with the metrics
    imported for that id: `instances` is a table holding the ``instances`` CTE."""
    pairs = same_resource_pairs(
        f"SELECT resource_id AS id FROM {instances}", "SELECT DISTINCT resource_id AS id FROM resource_metrics"
    )
    return f"""
    SELECT i.iid, p.right_id AS metric_resource, m.metrics
    FROM {pairs} p
    JOIN {instances} i ON i.resource_id = p.left_id
    JOIN (SELECT resource_id, list(DISTINCT metric ORDER BY metric) AS metrics FROM resource_metrics GROUP BY 1) m
      ON m.resource_id = p.right_id"""


def compute_sql(ctx: RuleContext, sql: str) -> str:
    """`sql` with ``$INSTANCES`` and ``$MATCHES`` naming this run's shared TEMP tables (built by
    the first compute rule that runs) and ``$COST`` the cost column."""
    window = {"since": ctx.window.since, "until": ctx.window.until}
    scope = f"{ctx.window.since.isoformat()}..{ctx.window.until.isoformat()}"
    type_keys = ctx.scratch.table(ctx.con, "compute type keys", type_keys_sql(charge_keys(ctx)))
    instances = ctx.scratch.table(
        ctx.con, f"compute instances {ctx.cost} {scope}",
        f"WITH {instances_cte(ctx.cost, type_keys, billing(ctx))} SELECT * FROM instances", window,
    )
    matches = ctx.scratch.table(ctx.con, f"compute metric matches {ctx.cost} {scope}", matches_sql(instances))
    return sql.replace("$INSTANCES", instances).replace("$MATCHES", matches).replace("$COST", ctx.cost)


def utilisation_cte(metrics: tuple[str, ...]) -> str:
    """CTEs ``matched``, ``sample_end``, ``metric_use`` and ``utilisation`` (p95, samples and
    days per metric) for the ``instances`` CTE, from the ``$MATCHES`` table (`compute_sql`).
    Binds $until and $lookback_days.

    Of the metric resource ids that name an instance and have one of `metrics`, the longest
    (then the first by text) is the instance's. The percentiles are taken per (instance,
    metric) in one group-by (``metric_use``) and then set side by side: each metric's quantile
    and distinct day count under a FILTER in one group-by per instance cost up to three times as
    much with four metrics (bench/README.md, "Fifth round"). A metric with no sample in the
    lookback has a NULL p95 and 0 samples and days."""
    listed = ", ".join(quote_literal(m) for m in metrics)
    per_metric = ",\n".join(
        f"any_value(p95) FILTER (WHERE metric = {quote_literal(m)}) AS p95_{m},\n"
        f"coalesce(any_value(samples) FILTER (WHERE metric = {quote_literal(m)}), 0) AS samples_{m},\n"
        f"coalesce(any_value(days) FILTER (WHERE metric = {quote_literal(m)}), 0) AS days_{m}"
        for m in metrics
    )
    return f"""
    matched AS (
      SELECT iid, metric_resource FROM $MATCHES WHERE list_has_any(metrics, [{listed}])
      QUALIFY row_number() OVER (PARTITION BY iid ORDER BY length(metric_resource) DESC, metric_resource) = 1
    ),
    sample_end AS (
      SELECT mm.iid, max(r.sampled_at) AS last_sample
      FROM matched mm JOIN resource_metrics r ON r.resource_id = mm.metric_resource
      WHERE r.metric IN ({listed}) AND r.sampled_at < $until
      GROUP BY 1
    ),
    metric_use AS (
      SELECT e.iid, r.metric, min(r.sampled_at) AS first_sample, max(r.sampled_at) AS last_sample,
             quantile_cont(r.value, 0.95) AS p95, count(*) AS samples,
             count(DISTINCT CAST(r.sampled_at AS DATE)) AS days
      FROM sample_end e JOIN matched mm USING (iid)
      JOIN resource_metrics r ON r.resource_id = mm.metric_resource
      WHERE r.metric IN ({listed})
        AND r.sampled_at > e.last_sample - to_days(CAST($lookback_days AS INTEGER)) AND r.sampled_at <= e.last_sample
      GROUP BY 1, 2
    ),
    utilisation AS (
      SELECT iid, min(first_sample) AS first_sample, max(last_sample) AS last_sample,
             {per_metric}
      FROM metric_use
      GROUP BY 1
    )"""


def too_few_samples(metric: str, none_text: str) -> str:
    """The WHEN clauses of a not-assessed reason over the ``utilisation`` CTE (aliased ``u``): no
    `metric` sample for the instance (the reason is `none_text`), or fewer days with data in the
    lookback than $min_days_with_data."""
    return f"""WHEN u.iid IS NULL OR coalesce(u.samples_{metric}, 0) = 0
             THEN {quote_literal(none_text)}
           WHEN u.days_{metric} < $min_days_with_data
             THEN 'only ' || u.days_{metric} || ' day(s) of {metric} in the lookback (needs '
                  || $min_days_with_data || ')'"""


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
