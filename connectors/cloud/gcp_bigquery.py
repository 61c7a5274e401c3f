"""The Google Cloud billing export in BigQuery, one query per invoice month, read as Arrow batches.

A first, small query asks BigQuery for each invoice month's row count and latest
``export_time``: Google appends late usage and corrections as new rows, so either changes when
a month changes. Months whose signature matches the pull state (and whose Parquet copy is in
the cache) are not read again; each other month is read with
``SELECT * FROM <table> WHERE invoice.month = @invoice_month`` and written batch by batch to
``<cache>/<project.dataset.table>/invoice_month=YYYYMM.parquet``, then loaded as a delivery of
the nested detailed or standard export format. Loading a month replaces that billing period.
"""

from __future__ import annotations

import os
from pathlib import Path

from costaudit.errors import UsageError

from . import Collected, PullContext
from .common import Remote
from .gcp import call, credentials, options, retry

SUMMARY_SQL = """
SELECT invoice.month AS invoice_month,
       COUNT(*) AS row_count,
       CAST(MAX(export_time) AS STRING) AS last_export_time
FROM `{table}`
WHERE (@since IS NULL OR invoice.month >= @since) AND (@until IS NULL OR invoice.month < @until)
GROUP BY invoice_month
ORDER BY invoice_month
"""
MONTH_SQL = "SELECT * FROM `{table}` WHERE invoice.month = @invoice_month"


def _client(ctx: PullContext):
    from google.cloud import bigquery

    creds, project = credentials(ctx)
    if not project:
        raise UsageError(f"source {ctx.source.name!r} (gcp): set project, the project BigQuery jobs run in")
    return bigquery.Client(project=project, credentials=creds, location=ctx.settings.get("location"),
                           client_options=options(ctx.settings.get("bigquery_endpoint")))


def _query(ctx: PullContext, client, sql: str, parameters: list):
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=parameters)
    resource = f"projects/{client.project} (reading {ctx.settings['bigquery_table']})"
    job = call("bigquery.jobs.create", resource, client.query, sql, job_config=config, retry=retry(ctx))
    return call("bigquery.tables.getData", ctx.settings["bigquery_table"], job.result, retry=retry(ctx))


def collect_months(ctx: PullContext, collected: Collected) -> None:
    """Query the months that changed since the last pull into Parquet files."""
    from google.cloud import bigquery

    client = _client(ctx)
    table = ctx.settings["bigquery_table"]
    since = f"{ctx.window.since:%Y%m}" if ctx.window.since else None
    until = f"{ctx.window.until:%Y%m}" if ctx.window.until else None
    summary = _query(ctx, client, SUMMARY_SQL.format(table=table), [
        bigquery.ScalarQueryParameter("since", "STRING", since),
        bigquery.ScalarQueryParameter("until", "STRING", until),
    ])
    for row in list(summary):
        month = str(row["invoice_month"] or "")
        if not month:
            continue
        signature = f"{row['row_count']}|{row['last_export_time']}"
        url = f"bigquery://{table}/invoice_month={month}"
        local = ("bigquery", table, f"invoice_month={month}.parquet")
        path = ctx.cache.path_for(local)
        if ctx.cache.state_etag(url) == signature and path.is_file():
            ctx.report.up_to_date.append(url)
            continue
        rows = _query(ctx, client, MONTH_SQL.format(table=table),
                      [bigquery.ScalarQueryParameter("invoice_month", "STRING", month)])
        written = _write_parquet(ctx, rows, path)
        if written != row["row_count"]:
            raise UsageError(f"gcp: {url}: read {written} rows but BigQuery counted {row['row_count']}; run the pull again")
        size = path.stat().st_size
        ctx.cache.downloaded.append(url)
        ctx.cache.bytes_downloaded += size
        ctx.cache.remember(Remote(url, local, size, signature), path, "billing")
        collected.billing.append(path)


def _write_parquet(ctx: PullContext, rows, path: Path) -> int:
    """Stream the result's Arrow batches into a Parquet file; renamed into place when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    count = call("bigquery.tables.getData", ctx.settings["bigquery_table"], _copy, rows, part)
    if count is None:
        raise UsageError(f"gcp: {ctx.settings['bigquery_table']}: a month with rows returned no data")
    os.replace(part, path)
    return count


def _copy(rows, part: Path) -> int | None:
    import pyarrow.parquet as pq

    writer = None
    count = 0
    try:
        for batch in rows.to_arrow_iterable(bqstorage_client=None):
            if writer is None:
                writer = pq.ParquetWriter(part, batch.schema)
            writer.write_batch(batch)
            count += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return count if writer is not None else None
