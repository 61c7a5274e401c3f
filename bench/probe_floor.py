"""Probe: the least work any audit of a month must do, beside the bare scan, on the same files.

    .venv/bin/python bench/probe_floor.py EXPORT_FOLDER [--month 2024-09] [--repeat 2]

EXPORT_FOLDER is a generated (or real) CUR 2.0 Data Export. In one process, under the store's
memory limit (COSTAUDIT_MEMORY_LIMIT, default 2GB), it times:

1. the bare scan of `bench/run.py` (count and sum of cost per account, service and usage type);
2. sha256 of every file of the month on both cores, as the loader fingerprints a delivery;
3. the source totals per payer, period and currency in exact DECIMAL (what every load reconciles to);
4. the narrowest per-resource monthly totals the rules could read, straight from the raw columns:
   per hash of (account, resource), hash of the tags and hash of the raw charge-describing columns, cost
   and usage summed in DECIMAL: no normalisation, and integer keys only (the cheapest grouping). A
   store must also name the resources and tags of its findings, so beside it: the same totals grouped
   by the account, resource id and tags as text, and the cheaper alternative, one distinct pass over
   the (account, resource id) text and one over the tag maps;
5. the same totals as costaudit keeps them (`analysis.views.totals_sql`), computed through the format's
   own normalising SQL used as a view: what the analysis pass of a store that does not copy line items
   would cost;
6. one group per combination of every raw column the format's reader reads (named in its
   normalising SQL), but the line's own times and file: what "normalise once per group, not per row"
   would have to group by before it could produce every FOCUS column of the totals (integer key,
   amounts summed in DECIMAL);
7. with ``--metrics FILE`` (the utilisation samples `generate.py` writes beside the export): the p95
   of every resource's every metric over the month, the least the three compute rules must compute.

Every result is written to a TEMP table (a ``count(*)`` over a group-by lets DuckDB skip the sums, see
bench/README.md). Reads only; prints seconds and the ratio to the bare scan. Used for bench/README.md,
"Fifth round" and "Sixth round".
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from costaudit.analysis.run import TOTALS_PASS_ROWS
from costaudit.analysis.views import totals_sql
from costaudit.connectors.base import ReadOptions
from costaudit.connectors.files import _sha256
from costaudit.connectors.sql import quote_ident, quote_literal
from costaudit.schema import charge_key_sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_normalise import normalising_views  # noqa: E402  (a sibling script, not a package)

BARE = ("SELECT line_item_usage_account_id, line_item_product_code, line_item_usage_type, count(*) AS n, "
        "sum(line_item_unblended_cost) AS cost FROM raw GROUP BY ALL")
SOURCE_TOTALS = """
SELECT bill_payer_account_id, bill_billing_period_start_date, line_item_currency_code, count(*) AS n,
       sum(CAST(line_item_unblended_cost AS DECIMAL(38,12))) AS unblended,
       sum(CAST(line_item_net_unblended_cost AS DECIMAL(38,12))) AS net_unblended,
       sum(CAST(pricing_public_on_demand_cost AS DECIMAL(38,12))) AS list
FROM raw GROUP BY ALL"""
RAW_TOTALS = """
SELECT hash(line_item_usage_account_id, line_item_resource_id) AS resource_key, hash(resource_tags) AS tags_key,
       hash(line_item_product_code, line_item_usage_type, line_item_operation, line_item_line_item_type,
            line_item_availability_zone, product_region_code, pricing_unit, product_sku,
            line_item_line_item_description) AS raw_key,
       min(line_item_usage_start_date) AS first_start, max(line_item_usage_end_date) AS last_end,
       sum(CAST(line_item_unblended_cost AS DECIMAL(38,12))) AS cost,
       sum(CAST(line_item_usage_amount AS DECIMAL(38,12))) AS quantity, count(*) AS n
FROM raw GROUP BY ALL"""
# The same grouping, but keeping what a finding has to name: the account, the resource id and the tags
# as text (the tags as the source's own map), the charge still as one integer key.
RAW_TOTALS_NAMED = RAW_TOTALS.replace(
    "hash(line_item_usage_account_id, line_item_resource_id) AS resource_key, hash(resource_tags) AS tags_key",
    "line_item_usage_account_id, line_item_resource_id, resource_tags")

# The cheapest way to have the names back beside integer-keyed totals: one distinct pass each.
RESOURCE_NAMES = "SELECT DISTINCT line_item_usage_account_id, line_item_resource_id FROM raw"
TAG_MAPS = "SELECT DISTINCT resource_tags FROM raw"


def sha256_files(paths: list[Path]) -> float:
    """Seconds to hash `paths` on both cores with the loader's own digest."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(_sha256, paths))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the export folder (holding data/ and metadata/)")
    parser.add_argument("--month", default="2024-09")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each probe; the median is shown")
    parser.add_argument("--metrics", type=Path, help="utilisation samples (resource_id, metric, timestamp, value)")
    parser.add_argument("--skip-normalised", action="store_true", help="leave out probe 5 (the slowest)")
    args = parser.parse_args(argv)
    period = f"BILLING_PERIOD={args.month}"
    paths = [str(args.export / "data" / period), str(args.export / "metadata" / period)]
    spill = Path(tempfile.mkdtemp(prefix="costaudit-floor-"))
    con = duckdb.connect(config={"memory_limit": os.environ.get("COSTAUDIT_MEMORY_LIMIT", "2GB"),
                                 "temp_directory": str(spill)})
    delivery = normalising_views(con, paths)
    con.execute(f"CREATE TEMP VIEW line_items AS SELECT *, {charge_key_sql()} AS x_ChargeKey, 'probe' AS x_LoadId FROM norm")
    probes = [
        ("bare scan (the benchmark's)", BARE),
        ("source totals per payer, period, currency (DECIMAL)", SOURCE_TOTALS),
        ("per-resource totals from the raw columns (DECIMAL)", RAW_TOTALS),
        ("the same, keeping account, resource id and tags as text", RAW_TOTALS_NAMED),
        ("distinct (account, resource id) as text", RESOURCE_NAMES),
        ("distinct tag maps", TAG_MAPS),
    ]
    # Every raw column the reader names, but the line's own times and file: amounts are summed,
    # the rest is the group (CUR 2.0 names; the other probes above are CUR 2.0 too).
    select_sql = delivery.fmt.select_sql(delivery.cols, ReadOptions())
    per_line = {"line_item_usage_start_date", "line_item_usage_end_date", "identity_time_interval", "x__file"}
    read = [(name, kind) for name, kind, *_ in con.execute("DESCRIBE raw").fetchall()
            if quote_ident(name) in select_sql and name not in per_line]
    amounts = [name for name, kind in read if kind == "DOUBLE" or kind.startswith("DECIMAL")]
    group = ", ".join(quote_ident(name) for name, _ in read if name not in amounts)
    summed = ", ".join(f"sum(CAST({quote_ident(name)} AS DECIMAL(38,12)))" for name in amounts)
    probes.append((f"one group per value of the {len(read) - len(amounts)} columns the reader reads",
                   f"SELECT hash({group}) AS raw_key, min(line_item_usage_start_date) AS first_start, "
                   f"max(line_item_usage_end_date) AS last_end, {summed}, count(*) AS n FROM raw GROUP BY 1"))
    if not args.skip_normalised:
        # In shares of resources above TOTALS_PASS_ROWS, as the analysis pass sums them.
        [(rows,)] = con.execute("SELECT count(*) FROM raw").fetchall()
        parts = max(1, -(-rows // TOTALS_PASS_ROWS))
        shares = " UNION ALL ".join(f"({totals_sql('true', parts, part)})" for part in range(parts))
        probes.append((f"analysis_charge_totals through the normalising view ({parts} share(s))", shares))
    if args.metrics:
        probes.append(("p95 per resource and metric of the utilisation samples",
                       "SELECT resource_id, metric, quantile_cont(value, 0.95) AS p95, count(*) AS n "
                       f"FROM read_parquet({quote_literal(str(args.metrics))}) GROUP BY ALL"))
    files = [f.path for f in delivery.files]
    results: dict[str, tuple[float, int]] = {}
    hashes = [sha256_files(files) for _ in range(args.repeat)]
    for label, sql in probes:
        runs = []
        for _ in range(args.repeat):
            con.execute("DROP TABLE IF EXISTS probe_out")
            start = time.perf_counter()
            con.execute(f"CREATE TEMP TABLE probe_out AS {sql}")
            runs.append(time.perf_counter() - start)
        rows = con.execute("SELECT count(*) FROM probe_out").fetchone()[0]
        results[label] = (statistics.median(runs), rows)
        print(f"{label:<58} {statistics.median(runs):8.2f} s  {rows:>10,} rows  runs {runs}", flush=True)
    bare = results[probes[0][0]][0]
    print(f"{'sha256 of the ' + str(len(files)) + ' files, two threads':<58} {statistics.median(hashes):8.2f} s")
    print("\nratio to the bare scan:")
    print(f"  sha256 {statistics.median(hashes) / bare:.1f}x")
    for label, (seconds, _) in results.items():
        print(f"  {label}: {seconds / bare:.1f}x")
    floor = statistics.median(hashes) + sum(results[p[0]][0] for p in probes[1:3])
    print(f"  floor (sha256 + source totals + raw per-resource totals): {floor:.2f} s = {floor / bare:.1f}x")
    named = floor - results[probes[2][0]][0] + results[probes[3][0]][0]
    print(f"  the same floor grouping by the names a finding needs: {named:.2f} s = {named / bare:.1f}x")
    ids = floor + results[probes[4][0]][0]
    print(f"  floor + the resource ids' text in a distinct pass: {ids:.2f} s = {ids / bare:.1f}x")
    tags = ids + results[probes[5][0]][0]
    print(f"  floor + the resource ids' text + the distinct tag maps: {tags:.2f} s = {tags / bare:.1f}x")
    if args.metrics:
        p95 = results[probes[-1][0]][0]
        print(f"  floor with the metrics' p95: {floor + p95:.2f} s = {(floor + p95) / bare:.1f}x")
        print(f"  floor + ids + tags + the metrics' p95: {tags + p95:.2f} s = {(tags + p95) / bare:.1f}x")
    con.close()
    shutil.rmtree(spill, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
