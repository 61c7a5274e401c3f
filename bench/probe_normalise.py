"""Probe: what does `costaudit load` spend its insert on, and what would a zero-copy store cost?

    .venv/bin/python bench/probe_normalise.py /tmp/costaudit-bench/aws-1000000-s1/aws/bench-cur2 [--month 2024-09]

Reads one month of a generated (or real) CUR 2.0 Data Export with the loader's own planning and
the format's own `select_sql`, then times, each once, in one process under the store's memory
limit: the bare scan; the same group-by through the normalising SQL used as a view; the cost of
single normalised columns (Tags, cost categories); every normalised column evaluated but not
written; writing them to a DuckDB table, to Parquet; a plain copy of the raw columns; and
group-bys over the written table and Parquet. Prints seconds; nothing is stored anywhere but a
temporary folder. Used for bench/README.md, "Where the time goes".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from costaudit.connectors import deliveries
from costaudit.connectors.base import ReadOptions
from costaudit.connectors.files import raw_relation_sql
from costaudit.connectors.sql import install_macros


def normalising_views(con: duckdb.DuckDBPyConnection, paths: list[str]) -> deliveries.Delivery:
    """TEMP views ``raw`` (the delivery's files) and ``norm`` (the format's own normalising SQL
    over them), as the loader sees them; returns the delivery."""
    install_macros(con)
    delivery = deliveries.plan(con, paths).deliveries[0]
    delivery.fmt.prepare(con)
    con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM {raw_relation_sql(delivery.files)}")
    con.execute(f"CREATE TEMP VIEW norm AS {delivery.fmt.select_sql(delivery.cols, ReadOptions())}")
    return delivery


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the export folder (holding data/ and metadata/)")
    parser.add_argument("--month", default="2024-09")
    args = parser.parse_args(argv)
    period = f"BILLING_PERIOD={args.month}"
    paths = [str(args.export / "data" / period), str(args.export / "metadata" / period)]
    work = Path(tempfile.mkdtemp(prefix="costaudit-probe-"))
    limit = os.environ.get("COSTAUDIT_MEMORY_LIMIT", "2GB")
    con = duckdb.connect(config={"memory_limit": limit, "temp_directory": str(work / "spill")})
    try:
        delivery = normalising_views(con, paths)
        con.execute(f"ATTACH '{work / 'probe.duckdb'}' AS disk")
        columns = [r[0] for r in con.execute("DESCRIBE norm").fetchall()]
        every = ", ".join(f'count("{c}")' for c in columns)
        group = "SELECT SubAccountId, ServiceName, x_UsageType, count(*), sum(BilledCost) FROM {} GROUP BY ALL"
        probes = [
            ("bare scan: group-by over the raw files", "SELECT line_item_usage_account_id, line_item_product_code, "
             "line_item_usage_type, count(*), sum(line_item_unblended_cost) FROM raw GROUP BY ALL"),
            ("the same group-by through the normalising SQL as a view", group.format("norm")),
            ("view: count and the four cost columns", "SELECT count(*), sum(BilledCost), sum(EffectiveCost), "
             "sum(ListCost), sum(ContractedCost) FROM norm"),
            ("view: Tags alone (map -> renamed keys -> JSON)", "SELECT count(Tags) FROM norm"),
            ("view: x_CostCategories alone", "SELECT count(x_CostCategories) FROM norm"),
            (f"view: all {len(columns)} normalised columns evaluated, nothing written", f"SELECT {every} FROM norm"),
            ("write all normalised columns to a DuckDB table on disk (the load's insert)",
             "CREATE TABLE disk.normalised AS SELECT * FROM norm"),
            ("write all normalised columns to Parquet", f"COPY (SELECT * FROM norm) TO '{work / 'norm.parquet'}' "
             "(FORMAT parquet)"),
            ("plain copy of the raw source columns into a DuckDB table", "CREATE TABLE disk.raw_copy AS SELECT * FROM raw"),
            ("group-by over the written DuckDB table", group.format("disk.normalised")),
            ("group-by over the written Parquet", group.format(f"'{work / 'norm.parquet'}'")),
        ]
        for label, sql in probes:
            start = time.perf_counter()
            con.execute(sql).fetchall()
            print(f"{label:<78} {time.perf_counter() - start:7.2f} s", flush=True)
        source = sum(f.size for f in delivery.files)
        print(f"sizes: source Parquet {source / 2**20:.0f} MB, normalised Parquet "
              f"{(work / 'norm.parquet').stat().st_size / 2**20:.0f} MB, DuckDB file (normalised + raw copy) "
              f"{(work / 'probe.duckdb').stat().st_size / 2**20:.0f} MB")
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
