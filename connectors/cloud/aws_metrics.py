"""CloudWatch utilisation of the EC2 instances in the loaded bills, into ``resource_metrics``.

Metrics (hourly averages): ``AWS/EC2 CPUUtilization`` and, from the CloudWatch agent,
``CWAgent mem_used_percent`` and ``CWAgent nvidia_smi_utilization_gpu``. The agent's dimensions
depend on its configuration (``append_dimensions``, one series per GPU ``index``), so each
metric is listed once per region and the series of billed instances are read, 500 per
GetMetricData call. Several series of one instance (one per GPU) become several samples of the
same hour; the metrics importer keeps the highest, so an instance counts as idle only when all
its GPUs are.

The time range is the billing periods in which the instances are charged (within --since and
--until), up to the last complete hour. The pull state remembers, per region and metric, up to
when samples were read and for which set of instances, so the next pull asks only for the hours
since (or everything again when the billed instances changed).
"""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from . import PullContext
from .aws import call, client
from .common import Remote

METRICS = (("AWS/EC2", "CPUUtilization"), ("CWAgent", "mem_used_percent"), ("CWAgent", "nvidia_smi_utilization_gpu"))
PERIOD_SECONDS = 3600
QUERIES_PER_CALL = 500


def _accounts_of_source(ctx: PullContext) -> list[str]:
    rows = ctx.con.execute(
        "SELECT DISTINCT billing_account_id FROM loads WHERE status = 'active' AND CAST(files AS VARCHAR) LIKE ?",
        [f"%{ctx.cache.root}%"],
    ).fetchall()
    return [r[0] for r in rows]


def billed_instances(ctx: PullContext, default_region: str) -> dict[str, tuple[set[str], datetime, datetime]]:
    """region -> (instance ids, first hour, end) of the EC2 instances in the current bills."""
    accounts = _accounts_of_source(ctx)
    start = ctx.window.start() or datetime(1970, 1, 1, tzinfo=UTC)
    end = ctx.window.end() or datetime(9999, 1, 1, tzinfo=UTC)
    account_filter = "AND BillingAccountId IN (SELECT unnest(?))" if accounts else "AND ? IS NOT NULL"
    rows = ctx.con.execute(
        f"""
        SELECT coalesce(region, ?) AS region, list(DISTINCT instance), min(charge_start), max(charge_end)
        FROM (
          SELECT regexp_extract(ResourceId, '(i-[0-9a-f]{{8,17}})$', 1) AS instance, RegionId AS region,
                 ChargePeriodStart AS charge_start, ChargePeriodEnd AS charge_end
          FROM current_line_items
          WHERE ProviderName = 'AWS' AND ResourceId IS NOT NULL
            AND ChargePeriodStart >= ? AND ChargePeriodStart < ? {account_filter})
        WHERE instance <> ''
        GROUP BY 1
        """,
        [default_region, start, end, accounts or 1],
    ).fetchall()
    last_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    found = {}
    for region, ids, first, last in rows:
        first = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        last = min(last.astimezone(UTC), end, last_hour)
        if first < last:
            found[str(region)] = (set(ids), first, last)
    return found


def pull_metrics(ctx: PullContext) -> None:
    """Read the hourly samples not read before and import them; then record how far we got."""
    from costaudit.connectors.imports_metrics import import_metrics

    settings = ctx.settings
    default_region = settings.get("region") or "us-east-1"
    wanted = set(settings.get("metrics_regions") or [])
    files: list[Path] = []
    for region, (instances, first, last) in sorted(billed_instances(ctx, default_region).items()):
        if wanted and region not in wanted:
            continue
        cloudwatch = client(settings, "cloudwatch", region)
        signature = hashlib.sha256(",".join(sorted(instances)).encode()).hexdigest()[:16]
        for namespace, metric in METRICS:
            url = f"cloudwatch://{region}/{namespace}/{metric}"
            start = _resume_from(ctx.cache.state_etag(url), signature, first)
            state = Remote(url=url, local=("cloudwatch", region, f"{namespace.replace('/', '_')}-{metric}.csv"),
                           size=0, etag=f"{last.isoformat()}|{signature}")
            if start >= last:
                ctx.report.up_to_date.append(url)
                continue
            series = _series(cloudwatch, region, namespace, metric, instances)
            if series:
                path = ctx.cache.path_for(state.local)
                if _write_samples(cloudwatch, region, series, metric, start, last, path):
                    files.append(path)
            ctx.cache.remember(state, None, "metrics")
    if files:
        ctx.report.metrics = import_metrics(ctx.con, [str(p) for p in files])
    ctx.cache.commit("metrics")


def _resume_from(previous: str | None, signature: str, first: datetime) -> datetime:
    if not previous or "|" not in previous:
        return first
    end_text, seen = previous.split("|", 1)
    if seen != signature:
        return first  # other instances than last time: read their whole range
    return max(first, datetime.fromisoformat(end_text))


def _series(cloudwatch, region: str, namespace: str, metric: str, instances: set[str]) -> list[tuple[str, list]]:
    """(instance id, dimensions) of every series of `metric` for a billed instance."""
    paginator = cloudwatch.get_paginator("list_metrics")
    pages = call(
        "cloudwatch:ListMetrics", f"{namespace} {metric} in {region}",
        lambda **kw: list(paginator.paginate(**kw)), Namespace=namespace, MetricName=metric,
    )
    found = []
    for page in pages:
        for item in page.get("Metrics", []):
            dims = item.get("Dimensions", [])
            instance = next((d["Value"] for d in dims if d.get("Name") == "InstanceId"), None)
            if instance in instances:
                found.append((instance, dims))
    return found


def _write_samples(cloudwatch, region, series, metric, start: datetime, end: datetime, path: Path) -> int:
    """Hourly averages of every series between start and end into one long CSV; the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["resource_id", "metric", "timestamp", "value"])
        for offset in range(0, len(series), QUERIES_PER_CALL):
            batch = series[offset:offset + QUERIES_PER_CALL]
            queries = [
                {"Id": f"m{i}", "ReturnData": True, "MetricStat": {
                    "Metric": {"Namespace": "AWS/EC2" if metric == "CPUUtilization" else "CWAgent",
                               "MetricName": metric, "Dimensions": dims},
                    "Period": PERIOD_SECONDS, "Stat": "Average"}}
                for i, (_instance, dims) in enumerate(batch)
            ]
            token = None
            while True:
                kwargs = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
                if token:
                    kwargs["NextToken"] = token
                response = call("cloudwatch:GetMetricData", f"{metric} in {region}", cloudwatch.get_metric_data, **kwargs)
                for result in response.get("MetricDataResults", []):
                    instance = batch[int(result["Id"][1:])][0]
                    for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                        writer.writerow([instance, metric, stamp.astimezone(UTC).isoformat(), value])
                        written += 1
                token = response.get("NextToken")
                if not token:
                    break
    return written
