"""Synthetic AWS CUR 2.0 (Data Exports) at any size, written by DuckDB SQL.

Layout, as AWS delivers a Data Export to S3::

    <out>/aws/<export>/data/BILLING_PERIOD=YYYY-MM/<export>-0000N.snappy.parquet
    <out>/aws/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json

About 65 columns: the flat snake_case CUR columns (costs as DOUBLE, rates as text, as the
Athena/CUR 2.0 Parquet types them), the ``product``, ``resource_tags``, ``cost_category`` and
``discount`` maps, and the account-name columns only CUR 2.0 has. One payer, linked accounts
growing with the rows, about 5,000 usage types over 16 regions (EC2 incl. GPU/Trainium/Inferentia,
spot, EBS, snapshots, S3 classes, internet / inter-AZ / inter-region transfer, NAT, Lambda, RDS,
DynamoDB, ELB, EKS, CloudWatch, SageMaker, Bedrock tokens and a long tail of services), one
resource per ~25 rows with tags (team, env, project, cost centre, name, data class, dataset),
Savings Plan covered usage and negations, RI discounted usage, EDP net costs, and per month a tax
row per linked account, credits, a refund, SP/RI recurring and upfront fees.
"""

from __future__ import annotations

import calendar
from datetime import date
from pathlib import Path

import duckdb
from synth_aws_catalogue import catalogue
from synth_common import Spec, copy_parquet, hexid, next_month, pick, register_catalogue, uniform, write_json

EXPORT = "bench-cur2"
PAYER = "123456789012"
def _semantic_rows(spec: Spec, month: int, start: date, lo: int, hi: int, n_cat: int) -> str:
    """One row per charge in [lo, hi): resource, usage type, line item type, amounts."""
    seed, hours = spec.seed, calendar.monthrange(start.year, start.month)[1] * 24
    n_res, n_acct = spec.resources(), spec.accounts()
    covered = "c.rkind = 'instance' AND c.kind = 'hours' AND NOT c.spot"
    amount = f"""CASE c.kind
        WHEN 'hours' THEN CASE WHEN {uniform('i', seed, month, 7)} < 0.05 THEN round({uniform('i', seed, month, 8)}, 6) ELSE 1.0 END
        WHEN 'gbmo' THEN round((10 + hash(r, {seed}, 9) % 4000) / {hours}.0, 10)
        WHEN 'gb' THEN round(pow({uniform('i', seed, month, 8)}, 3) * 200, 6)
        WHEN 'requests' THEN floor(pow({uniform('i', seed, month, 8)}, 2) * 100000) + 1
        WHEN 'count' THEN floor({uniform('i', seed, month, 8)} * 20) + 1
        WHEN 'tokens' THEN round(pow({uniform('i', seed, month, 8)}, 2) * 5000, 3)
        ELSE round({uniform('i', seed, month, 8)} * 360000, 3) END"""
    return f"""
      SELECT b.*, c.*, {amount} AS amount,
             CASE WHEN {covered} THEN
               CASE WHEN x < 0.10 THEN 'SavingsPlanCoveredUsage' WHEN x < 0.14 THEN 'SavingsPlanNegation'
                    WHEN x < 0.20 THEN 'DiscountedUsage' ELSE 'Usage' END
             ELSE 'Usage' END AS lt
      FROM (
        SELECT i, r, {uniform('i', seed, month, 6)} AS x,
               {pick(hours, 1, 'i', seed, month, 4)} AS hour,
               hash(r, {seed}, 2) % {n_acct} AS acct,
               {pick(n_cat, 2.2, 'r', seed, 3)} AS cu
        FROM (SELECT i, {pick(n_res, 1.6, 'i', seed, month, 1)} AS r FROM range({lo}, {hi}) t(i))
      ) b JOIN aws_catalogue c ON c.u = b.cu
    """


def _resource_id() -> str:
    arn = "':' || c_region || ':' || usage_account || ':'"
    hex16 = hexid(16, "r", "'aws'", 1)
    return f"""CASE rkind
      WHEN 'instance' THEN 'i-0' || {hex16}
      WHEN 'volume' THEN 'vol-0' || {hex16}
      WHEN 'snapshot' THEN 'arn:aws:ec2' || {arn} || 'snapshot/snap-0' || {hex16}
      WHEN 'bucket' THEN 'bench-data-' || CAST(r AS VARCHAR)
      WHEN 'nat' THEN 'arn:aws:ec2' || {arn} || 'natgateway/nat-0' || {hex16}
      WHEN 'lambda' THEN 'arn:aws:lambda' || {arn} || 'function:fn-' || CAST(r AS VARCHAR)
      WHEN 'db' THEN 'arn:aws:rds' || {arn} || 'db:db-' || CAST(r AS VARCHAR)
      WHEN 'table' THEN 'arn:aws:dynamodb' || {arn} || 'table/t-' || CAST(r AS VARCHAR)
      WHEN 'lb' THEN 'arn:aws:elasticloadbalancing' || {arn} || 'loadbalancer/app/lb-' || CAST(r AS VARCHAR) || '/' || {hex16}
      WHEN 'cluster' THEN 'arn:aws:eks' || {arn} || 'cluster/eks-' || CAST(r AS VARCHAR)
      WHEN 'sagemaker' THEN 'arn:aws:sagemaker' || {arn} || 'endpoint/ep-' || CAST(r AS VARCHAR)
      WHEN 'generic' THEN 'arn:aws:' || lower(code) || {arn} || 'res/' || CAST(r AS VARCHAR)
    END"""


def _tags(seed: int) -> str:
    tagged = f"{uniform('r', seed, 20)} >= 0.2"

    def entry(key: str, value: str) -> str:
        return f"struct_pack(key := '{key}', value := CASE WHEN {tagged} THEN {value} END)"

    storage = "rkind IN ('bucket', 'volume', 'snapshot')"
    entries = [
        entry("user_team", f"'team-' || CAST(hash(r, {seed}, 21) % 60 AS VARCHAR)"),
        entry("user_env", f"['prod', 'staging', 'dev', 'test'][CAST(1 + hash(r, {seed}, 22) % 4 AS BIGINT)]"),
        entry("user_project", f"'proj-' || CAST(hash(r, {seed}, 23) % 400 AS VARCHAR)"),
        entry("user_cost_center", f"'CC-' || lpad(CAST(hash(r, {seed}, 24) % 40 AS VARCHAR), 3, '0')"),
        entry("user_name", "'res-' || CAST(r AS VARCHAR)"),
        entry("aws_created_by", f"CASE WHEN hash(r, {seed}, 25) % 2 = 0 THEN 'AssumedRole:AROAEXAMPLE:deploy-' "
                                f"|| CAST(hash(r, {seed}, 26) % 20 AS VARCHAR) END"),
        entry("user_data_class", f"CASE WHEN {storage} THEN ['scratch', 'reproducible', 'critical', 'archive', "
                                 f"'logs'][CAST(1 + hash(r, {seed}, 27) % 5 AS BIGINT)] END"),
        entry("user_dataset", f"CASE WHEN rkind = 'bucket' THEN 'ds-' || CAST(hash(r, {seed}, 28) % 300 AS VARCHAR) END"),
    ]
    return f"map_from_entries(list_filter([{', '.join(entries)}], lambda e: e.value IS NOT NULL))"


def _extras(spec: Spec, month: int, start: date, first_row: int) -> str:
    """Rows of the month that are not usage: tax per linked account, credits, fees, a refund."""
    seed, n_acct = spec.seed, spec.accounts()
    hours = calendar.monthrange(start.year, start.month)[1] * 24
    n = n_acct + EXTRA_FIXED
    fee = f"round(500 + {uniform('k', seed, month, 31)} * 5000, 2)"
    return f"""
      SELECT k + {first_row} AS i, k AS r, 0.5 AS x, 0 AS hour,
             CASE WHEN k < {n_acct} THEN k ELSE 0 END AS acct,
             NULL::BIGINT AS cu, c.*,
             CASE WHEN lt IN ('SavingsPlanRecurringFee', 'RIFee') THEN {hours}.0 ELSE 1.0 END AS amount, lt
      FROM (
        SELECT k, CASE WHEN k < {n_acct} THEN 'Tax'
                       WHEN k < {n_acct} + 3 THEN 'Credit'
                       WHEN k < {n_acct} + 7 THEN 'SavingsPlanRecurringFee'
                       WHEN k < {n_acct} + 15 THEN 'RIFee'
                       WHEN k = {n_acct} + 15 THEN 'SavingsPlanUpfrontFee'
                       WHEN k = {n_acct} + 16 THEN 'Fee'
                       ELSE 'Refund' END AS lt,
               CASE WHEN k < {n_acct} THEN round(20 + {uniform('k', seed, month, 30)} * 800, 2)
                    WHEN k < {n_acct} + 3 THEN -round(100 + {uniform('k', seed, month, 30)} * 2000, 2)
                    WHEN k < {n_acct} + 15 THEN {fee}
                    WHEN k < {n_acct} + 17 THEN round(10000 + {uniform('k', seed, month, 32)} * 20000, 2)
                    ELSE -round(50 + {uniform('k', seed, month, 33)} * 200, 2) END AS fixed_cost
        FROM range({n}) t(k)
      ) e JOIN aws_catalogue c ON c.u = 0
    """


EXTRA_FIXED = 18  # 3 credits, 4 SP recurring fees, 8 RI fees, 1 SP upfront, 1 RI upfront, 1 refund


def _sp_arn(index: str, seed: int) -> str:
    return (f"'arn:aws:savingsplans::{PAYER}:savingsplan/' || {hexid(8, index, seed, 40)} || '-5e1b-4c2a-8000-' || "
            f"{hexid(12, index, seed, 41)}")


def _ri_arn(index: str, seed: int) -> str:
    return (f"'arn:aws:ec2:us-east-1:{PAYER}:reserved-instances/' || {hexid(8, index, seed, 42)} || '-7f3c-4000-8000-' || "
            f"{hexid(12, index, seed, 43)}")


def part_sql(spec: Spec, month: int, start: date, lo: int, hi: int, last: bool, n_cat: int) -> str:
    """The CUR 2.0 columns of rows [lo, hi) of one month (plus the month's extra rows when `last`)."""
    seed = spec.seed
    end = next_month(start)
    usage_rows = spec.rows - spec.accounts() - EXTRA_FIXED
    main = _semantic_rows(spec, month, start, lo, min(hi, usage_rows), n_cat)
    extras = _extras(spec, month, start, usage_rows)
    both = f"SELECT *, NULL::DOUBLE AS fixed_cost FROM ({main}) UNION ALL BY NAME SELECT * FROM ({extras})" if last else \
        f"SELECT *, NULL::DOUBLE AS fixed_cost FROM ({main})"
    period_start, period_end = f"TIMESTAMP '{start}'", f"TIMESTAMP '{end}'"
    return f"""
    WITH s AS (
      SELECT *, region AS c_region,
             CAST(100000000000 + acct * 7919 AS VARCHAR) AS usage_account,
             {period_start} + to_hours(CAST(hour AS INTEGER)) AS t0,
             hash(r, {seed}, 44) % 4 AS sp, hash(r, {seed}, 45) % 8 AS ri
      FROM ({both})
    ), m AS (
      SELECT *,
        CASE WHEN lt IN ('Tax', 'Credit', 'Refund', 'SavingsPlanRecurringFee', 'RIFee', 'SavingsPlanUpfrontFee', 'Fee')
             THEN fixed_cost
             WHEN lt = 'DiscountedUsage' THEN 0.0
             WHEN lt = 'SavingsPlanNegation' THEN -round(amount * rate, 10)
             ELSE round(amount * rate, 10) END AS cost,
        round(amount * rate, 10) AS od_cost,
        CASE WHEN lt IN ('Usage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation') THEN 0.95 ELSE 1.0 END AS edp
      FROM s
    )
    SELECT
      lower(to_hex(hash(i, {seed}, {month}, 90))) || lower(to_hex(hash(i, {seed}, {month}, 91))) AS identity_line_item_id,
      strftime(CASE WHEN lt IN ('Usage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') THEN t0 ELSE {period_start} END, '%Y-%m-%dT%H:%M:%SZ')
        || '/' || strftime(CASE WHEN lt IN ('Usage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') THEN t0 + INTERVAL 1 HOUR ELSE {period_end} END, '%Y-%m-%dT%H:%M:%SZ') AS identity_time_interval,
      '{PAYER[-6:]}{start:%Y%m}' AS bill_invoice_id,
      'Amazon Web Services, Inc.' AS bill_invoicing_entity,
      'AWS' AS bill_billing_entity,
      CASE WHEN lt IN ('SavingsPlanUpfrontFee', 'Fee') THEN 'Purchase' WHEN lt = 'Refund' THEN 'Refund' ELSE 'Anniversary' END AS bill_bill_type,
      '{PAYER}' AS bill_payer_account_id,
      'Bench payer' AS bill_payer_account_name,
      {period_start} AS bill_billing_period_start_date,
      {period_end} AS bill_billing_period_end_date,
      usage_account AS line_item_usage_account_id,
      'Linked account ' || CAST(acct AS VARCHAR) AS line_item_usage_account_name,
      lt AS line_item_line_item_type,
      CASE WHEN lt IN ('Usage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') THEN t0 ELSE {period_start} END AS line_item_usage_start_date,
      CASE WHEN lt IN ('Usage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') THEN t0 + INTERVAL 1 HOUR ELSE {period_end} END AS line_item_usage_end_date,
      CASE lt WHEN 'SavingsPlanRecurringFee' THEN 'ComputeSavingsPlans' WHEN 'SavingsPlanUpfrontFee' THEN 'ComputeSavingsPlans' ELSE code END AS line_item_product_code,
      CASE lt WHEN 'Tax' THEN '' WHEN 'Credit' THEN '' WHEN 'SavingsPlanRecurringFee' THEN 'ComputeSP:1yrNoUpfront'
              WHEN 'SavingsPlanUpfrontFee' THEN 'ComputeSP:3yrAllUpfront' WHEN 'RIFee' THEN 'HeavyUsage:m5.xlarge'
              WHEN 'Fee' THEN 'HeavyUsage:m5.xlarge' ELSE usage_type END AS line_item_usage_type,
      CASE WHEN lt IN ('Usage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') THEN operation END AS line_item_operation,
      CASE WHEN rkind IN ('instance', 'volume', 'nat', 'db') AND cu IS NOT NULL THEN c_region || chr(CAST(97 + hash(r, {seed}, 46) % 3 AS INTEGER)) END AS line_item_availability_zone,
      CASE WHEN cu IS NOT NULL THEN {_resource_id()} END AS line_item_resource_id,
      amount AS line_item_usage_amount,
      CASE WHEN itype IS NOT NULL AND cu IS NOT NULL THEN 1.0 END AS line_item_normalization_factor,
      CASE WHEN itype IS NOT NULL AND cu IS NOT NULL THEN amount END AS line_item_normalized_usage_amount,
      'USD' AS line_item_currency_code,
      CAST(CASE WHEN lt = 'DiscountedUsage' THEN 0.0 WHEN cu IS NULL THEN NULL ELSE rate END AS VARCHAR) AS line_item_unblended_rate,
      cost AS line_item_unblended_cost,
      CAST(CASE WHEN lt = 'DiscountedUsage' THEN 0.0 WHEN cu IS NULL THEN NULL ELSE rate END AS VARCHAR) AS line_item_blended_rate,
      cost AS line_item_blended_cost,
      CAST(CASE WHEN lt = 'DiscountedUsage' THEN 0.0 WHEN cu IS NULL THEN NULL ELSE round(rate * edp, 10) END AS VARCHAR) AS line_item_net_unblended_rate,
      round(cost * edp, 10) AS line_item_net_unblended_cost,
      CASE lt WHEN 'Tax' THEN 'Sales tax for product code ' || code WHEN 'Credit' THEN 'AWS Activate credit'
              WHEN 'Refund' THEN 'Refund for service event' WHEN 'SavingsPlanRecurringFee' THEN '1 year No Upfront Compute Savings Plan'
              WHEN 'RIFee' THEN 'Reserved instance fee m5.xlarge' WHEN 'SavingsPlanUpfrontFee' THEN '3 year All Upfront Compute Savings Plan'
              WHEN 'Fee' THEN 'Sign up charge for subscription m5.xlarge'
              ELSE '$' || CAST(rate AS VARCHAR) || ' per ' || unit || ' for ' || usage_type END AS line_item_line_item_description,
      CASE WHEN lt = 'Tax' THEN 'Sales Tax' END AS line_item_tax_type,
      'Amazon Web Services, Inc.' AS line_item_legal_entity,
      CASE WHEN cu IS NOT NULL THEN product_map END AS product,
      CASE WHEN cu IS NOT NULL THEN servicecode END AS product_servicecode,
      CASE WHEN cu IS NOT NULL THEN family END AS product_product_family,
      CASE WHEN cu IS NOT NULL THEN itype END AS product_instance_type,
      CASE WHEN cu IS NOT NULL THEN location END AS product_location,
      CASE WHEN cu IS NOT NULL THEN location_type END AS product_location_type,
      CASE WHEN cu IS NOT NULL AND to_loc IS NULL THEN c_region END AS product_region_code,
      CASE WHEN cu IS NOT NULL THEN from_loc END AS product_from_location,
      CASE WHEN cu IS NOT NULL THEN from_region END AS product_from_region_code,
      CASE WHEN cu IS NOT NULL THEN to_loc END AS product_to_location,
      CASE WHEN cu IS NOT NULL THEN to_region END AS product_to_region_code,
      CASE WHEN cu IS NOT NULL THEN sku END AS product_sku,
      CASE WHEN cu IS NOT NULL THEN usage_type END AS product_usagetype,
      CASE WHEN cu IS NULL THEN NULL WHEN spot THEN NULL WHEN lt = 'DiscountedUsage' THEN 'Reserved' ELSE 'OnDemand' END AS pricing_term,
      CASE WHEN cu IS NOT NULL THEN unit END AS pricing_unit,
      'USD' AS pricing_currency,
      CASE WHEN cu IS NOT NULL THEN od_cost END AS pricing_public_on_demand_cost,
      CAST(CASE WHEN cu IS NOT NULL THEN rate END AS VARCHAR) AS pricing_public_on_demand_rate,
      CASE WHEN cu IS NOT NULL THEN sku || '.JRTCKXETXF.6YS6EN2CT7' END AS pricing_rate_code,
      CASE WHEN cu IS NOT NULL THEN CAST(hash(sku) % 100000000000 AS VARCHAR) END AS pricing_rate_id,
      CASE WHEN lt IN ('DiscountedUsage', 'RIFee') THEN 'Partial Upfront' END AS pricing_purchase_option,
      CASE WHEN lt IN ('DiscountedUsage', 'RIFee') THEN '1yr' END AS pricing_lease_contract_length,
      CASE WHEN lt IN ('DiscountedUsage', 'RIFee') THEN 'standard' END AS pricing_offering_class,
      CASE WHEN lt IN ('DiscountedUsage', 'RIFee', 'Fee') THEN {_ri_arn("CASE WHEN lt = 'Fee' THEN 0 WHEN lt = 'RIFee' THEN r % 8 ELSE ri END", seed)} END AS reservation_reservation_a_r_n,
      CASE WHEN lt = 'DiscountedUsage' THEN round(od_cost * 0.62, 10) END AS reservation_effective_cost,
      CASE WHEN lt = 'RIFee' THEN round(cost * 0.04, 10) ELSE 0.0 END AS reservation_unused_amortized_upfront_fee_for_billing_period,
      CASE WHEN lt = 'RIFee' THEN round(cost * 0.06, 10) ELSE 0.0 END AS reservation_unused_recurring_fee,
      CASE WHEN lt = 'RIFee' THEN round(cost * 0.4, 10) ELSE 0.0 END AS reservation_amortized_upfront_fee_for_billing_period,
      CASE WHEN lt = 'DiscountedUsage' THEN round(od_cost * 0.3, 10) ELSE 0.0 END AS reservation_recurring_fee_for_usage,
      CASE WHEN lt LIKE 'SavingsPlan%' THEN {_sp_arn("CASE WHEN lt = 'SavingsPlanUpfrontFee' THEN 4 WHEN lt = 'SavingsPlanRecurringFee' THEN r % 4 ELSE sp END", seed)} END AS savings_plan_savings_plan_a_r_n,
      CASE WHEN lt = 'SavingsPlanCoveredUsage' THEN round(od_cost * 0.72, 10) ELSE 0.0 END AS savings_plan_savings_plan_effective_cost,
      CASE WHEN lt = 'SavingsPlanCoveredUsage' THEN round(od_cost * 0.72 * 0.95, 10) ELSE 0.0 END AS savings_plan_net_savings_plan_effective_cost,
      CAST(CASE WHEN lt = 'SavingsPlanCoveredUsage' THEN round(rate * 0.72, 10) END AS VARCHAR) AS savings_plan_savings_plan_rate,
      CASE WHEN lt = 'SavingsPlanRecurringFee' THEN cost ELSE 0.0 END AS savings_plan_total_commitment_to_date,
      CASE WHEN lt = 'SavingsPlanRecurringFee' THEN round(cost * 0.9, 10) ELSE 0.0 END AS savings_plan_used_commitment,
      CASE WHEN cu IS NOT NULL THEN {_tags(seed)} ELSE MAP {{}}::MAP(VARCHAR, VARCHAR) END AS resource_tags,
      MAP {{'CostCenter': 'CC-' || lpad(CAST(acct % 40 AS VARCHAR), 3, '0'), 'BusinessUnit': 'BU-' || CAST(acct % 8 AS VARCHAR)}} AS cost_category,
      CASE WHEN edp < 1 THEN MAP {{'edp_discount': round(cost * edp, 10) - cost}} ELSE MAP {{}}::MAP(VARCHAR, DOUBLE) END AS discount,
      round(cost * edp, 10) - cost AS discount_total_discount,
      0.0 AS discount_bundled_discount
    FROM m
    """


def _create_catalogue(con: duckdb.DuckDBPyConnection, seed: int) -> int:
    count = register_catalogue(con, "aws_catalogue_raw", catalogue(), seed, "usage_type || code")
    con.execute(
        f"""CREATE OR REPLACE TABLE aws_catalogue AS
            SELECT * EXCLUDE (pmap), map_from_entries(pmap) AS product_map,
                   upper({hexid(14, 'usage_type', 'code', seed)}) AS sku
            FROM aws_catalogue_raw"""
    )
    return count


def generate(con: duckdb.DuckDBPyConnection, spec: Spec, out: Path, metrics: bool = True) -> list[Path]:
    """Write every month's parts and manifest under `out`/aws/<export> (and, with `metrics`, the
    instances' utilisation samples under `out`/metrics/); returns the files written."""
    extra = spec.accounts() + EXTRA_FIXED
    if spec.rows < extra + 10 or spec.parts()[-1][1] - spec.parts()[-1][0] < extra:
        raise ValueError(f"AWS needs --rows of at least {extra + 10} and parts of at least {extra} rows")
    n_cat = _create_catalogue(con, spec.seed)
    root = out / "aws" / EXPORT
    written: list[Path] = []
    for month, start in enumerate(spec.month_starts()):
        period = f"BILLING_PERIOD={start:%Y-%m}"
        parts = spec.parts()
        keys = []
        for n, (lo, hi) in enumerate(parts):
            name = f"{EXPORT}-{n + 1:05d}.snappy.parquet"
            path = root / "data" / period / name
            sql = part_sql(spec, month, start, lo, hi, last=n == len(parts) - 1, n_cat=n_cat)
            written.append(copy_parquet(con, sql, path, spec.row_group_size))
            keys.append(f"s3://bench-billing/exports/{EXPORT}/data/{period}/{name}")
        columns = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{written[-1]}')").fetchall()
        manifest = {
            "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{PAYER}:export/{EXPORT}-0000",
            "exportName": EXPORT,
            "executionId": f"exec-{spec.seed}-{start:%Y%m}",
            "billingPeriod": {"start": f"{start}T00:00:00Z", "end": f"{next_month(start)}T00:00:00Z"},
            "dataFiles": keys,
            "columns": [{"name": name, "type": str(kind)} for name, kind, *_ in columns],
        }
        written.append(write_json(root / "metadata" / period / f"{EXPORT}-Manifest.json", manifest))
        if metrics:
            written.append(copy_parquet(con, metrics_sql(spec, start, n_cat), metrics_path(out, start),
                                        spec.row_group_size))
    return written


def metrics_path(out: Path, start: date) -> Path:
    """Utilisation samples of the month's instances, for `costaudit import metrics`."""
    return out / "metrics" / f"aws-ec2-{start:%Y-%m}.parquet"


GPU_FAMILIES = ("g5", "g4dn", "p4d", "p5")


def metrics_sql(spec: Spec, start: date, n_cat: int) -> str:
    """Daily utilisation samples (last 14 days of the month) for about 30% of the EC2 instances:
    cpu and memory for all of them, gpu for GPU types; many are idle, as in real fleets."""
    seed = spec.seed
    days = calendar.monthrange(start.year, start.month)[1]
    first = start.replace(day=days - 13)
    gpu = " OR ".join(f"starts_with(itype, '{f}.')" for f in GPU_FAMILIES)
    return f"""
    WITH inst AS (
      SELECT r, itype, pow({uniform('r', seed, 70)}, 2) * 80 AS level
      FROM (SELECT r, {pick(n_cat, 2.2, 'r', seed, 3)} AS cu FROM range({spec.resources()}) t(r)) x
      JOIN aws_catalogue c ON c.u = x.cu
      WHERE c.rkind = 'instance' AND c.itype IS NOT NULL AND {uniform('r', seed, 71)} < 0.3
    )
    SELECT 'i-0' || {hexid(16, "r", "'aws'", 1)} AS resource_id, metric,
           strftime(TIMESTAMP '{first}' + to_days(CAST(d AS INTEGER)), '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
           round(least(100, greatest(0, level * CASE metric WHEN 'memory_utilization' THEN 1.2 ELSE 1 END
                 + ({uniform('r', 'd', seed, 72)} - 0.5) * 10)), 1) AS value
    FROM inst, range(14) t(d),
         (SELECT unnest(['cpu_utilization', 'memory_utilization', 'gpu_utilization']) AS metric) m
    WHERE metric <> 'gpu_utilization' OR ({gpu})
    """


def data_glob(out: Path) -> str:
    """The Parquet files of every month of the export, for a bare DuckDB scan."""
    return str(out / "aws" / EXPORT / "data" / "*" / "*.parquet")


def month_inputs(out: Path, start: date) -> tuple[str, list[Path]]:
    """(glob of one month's data files, the paths `costaudit load` needs for that month alone)."""
    period = f"BILLING_PERIOD={start:%Y-%m}"
    root = out / "aws" / EXPORT
    return str(root / "data" / period / "*.parquet"), [root / "data" / period, root / "metadata" / period]


BARE_SCAN = """SELECT line_item_usage_account_id, line_item_product_code, line_item_usage_type,
       count(*) AS n, sum(line_item_unblended_cost) AS cost
FROM {reader}({files}) GROUP BY ALL"""
