"""Probe: what would the rules' queries cost if `line_items` were a view over the retained Parquet?

    .venv/bin/python bench/probe_view.py EXPORT_FOLDER STORE [--month 2024-09]

EXPORT_FOLDER is a generated (or real) CUR 2.0 Data Export; STORE a costaudit store that has
loaded that month and run the analysis (`bench/run.py --keep-store` leaves one in
``<data>/aws-<rows>-s<seed>/run/store.duckdb``). Times, in one process under the store's memory
limit, the bare scan's group-by over the raw files and three queries of the kind the rules make,
each over the stored table and over the format's own normalising SQL used as a view (the charge
key hashed at read time). Reads only; prints seconds. Used for bench/README.md, "Third round".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb

from costaudit.connectors.sql import quote_literal
from costaudit.schema import charge_key_sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_normalise import normalising_views  # noqa: E402  (a sibling script, not a package)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the export folder (holding data/ and metadata/)")
    parser.add_argument("store", type=Path, help="a store that loaded that month and ran the analysis")
    parser.add_argument("--month", default="2024-09")
    args = parser.parse_args(argv)
    period = f"BILLING_PERIOD={args.month}"
    paths = [str(args.export / "data" / period), str(args.export / "metadata" / period)]
    con = duckdb.connect(config={"memory_limit": os.environ.get("COSTAUDIT_MEMORY_LIMIT", "2GB")})
    normalising_views(con, paths)
    con.execute(f"ATTACH {quote_literal(str(args.store))} AS s (READ_ONLY)")
    keyed = f"(SELECT *, {charge_key_sql()} AS x_ChargeKey FROM norm)"
    per_resource = "SELECT ResourceId, sum(EffectiveCost) FROM {} GROUP BY 1"
    per_key = "SELECT x_ChargeKey, sum(EffectiveCost) FROM {} GROUP BY 1"
    compute = ("SELECT li.ResourceId, sum(li.EffectiveCost) FROM {} li JOIN s.analysis_charge_keys k "
               "ON li.x_ChargeKey = k.charge_key WHERE k.ServiceCategory = 'Compute' GROUP BY 1")
    probes = [
        ("bare scan: group-by over the raw files", "SELECT line_item_usage_account_id, line_item_product_code, "
         "line_item_usage_type, count(*), sum(line_item_unblended_cost) FROM raw GROUP BY ALL"),
    ]
    for label, sql in (("cost per resource", per_resource), ("cost per charge key", per_key),
                       ("compute lines per resource, picked by charge key", compute)):
        probes.append((f"table: {label}", sql.format("s.line_items")))
        probes.append((f"view:  {label}", sql.format(keyed)))
    for label, sql in probes:
        start = time.perf_counter()
        groups = len(con.execute(sql).fetchall())
        print(f"{label:<60} {time.perf_counter() - start:7.2f} s  ({groups} groups)", flush=True)
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
