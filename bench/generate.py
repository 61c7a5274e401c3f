"""Deterministic synthetic billing exports, in the providers' own formats, at any size.

    .venv/bin/python bench/generate.py --rows 10M --provider aws --out /tmp/bench-data
    .venv/bin/python bench/generate.py --rows 2000 --provider all --months 2 --seed 7 --out DIR

Writes, for each billing month (``--rows`` rows per month and provider):

* ``aws/bench-cur2/``: AWS CUR 2.0 Data Export, snappy Parquet split into parts of ``--part-rows``
  (``data/BILLING_PERIOD=YYYY-MM/bench-cur2-0000N.snappy.parquet``) with a Manifest listing them;
* ``gcp/bench-billing-export/``: Google Cloud detailed billing export as BigQuery writes Parquet
  (nested ``service``/``sku``/``project``/``usage``/``credits``... columns), several files per month;
* ``metrics/aws-ec2-YYYY-MM.parquet``: daily cpu / memory / gpu utilisation of about 30% of the
  EC2 instances of the AWS export (for ``costaudit import metrics``, so the compute rules run);
* ``azure/bench-actual/``: an Azure Cost Management EA actual-cost export run
  (``<export>/<range>/<run time>/<run id>/part_N_0001.parquet`` or ``.csv.gz`` with manifest.json).

Rows come from DuckDB SQL over ``range()`` with hash-based pseudo-random columns (see
`synth_common`); Python never touches a billing row. Same seed, same DuckDB version -> the
same rows. Cardinalities grow with ``--rows``: about one resource per 25 rows, 3 to 1,500 linked
accounts / projects / subscriptions, and a fixed catalogue of thousands of usage types, SKUs and
meters. Every file loads with ``costaudit load`` and reconciles to the cent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # bench/ is a folder of scripts, not a package
    sys.path.insert(0, str(HERE))

import duckdb  # noqa: E402
import synth_aws  # noqa: E402
import synth_azure  # noqa: E402
import synth_gcp  # noqa: E402
from synth_common import Spec, connect  # noqa: E402

PROVIDERS = ("aws", "gcp", "azure")
GENERATOR_VERSION = "1"  # bump when the generated content changes, so cached data is rebuilt


def parse_count(text: str | int) -> int:
    """'2000', '2k', '1M', '1.5M', '10_000_000' -> an integer row count."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([kKmMgG]?)\s*", str(text))
    if not match:
        raise ValueError(f"{text!r} is not a row count (examples: 2000, 50k, 1M, 2.5M)")
    number = float(match.group(1).replace("_", "").replace(",", ""))
    scale = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[match.group(2).lower()]
    return int(number * scale)


def generate(
    out: Path,
    rows: int,
    *,
    provider: str = "all",
    months: int = 1,
    seed: int = 1,
    start: date = date(2024, 9, 1),
    part_rows: int = 1_000_000,
    azure_format: str = "parquet",
    memory_limit: str = "2GB",
    metrics: bool = True,
) -> dict[str, list[Path]]:
    """Write the exports of `provider` ('aws', 'gcp', 'azure' or 'all') under `out`.

    Returns the files written per provider, and records what was asked in ``out/.generated.json``
    (so a benchmark can reuse the folder when the same size and seed are asked again)."""
    chosen = PROVIDERS if provider == "all" else (provider,)
    unknown = set(chosen) - set(PROVIDERS)
    if unknown:
        raise ValueError(f"unknown provider {provider!r}; expected aws, gcp, azure or all")
    if rows < 1 or months < 1 or part_rows < 1:
        raise ValueError("--rows, --months and --part-rows must be positive")
    spec = Spec(rows=rows, months=months, seed=seed, start=start.replace(day=1), part_rows=part_rows)
    out.mkdir(parents=True, exist_ok=True)
    con = connect(memory_limit)
    con.execute("SET TimeZone = 'UTC'")
    written: dict[str, list[Path]] = {}
    try:
        for name in chosen:
            clock = time.perf_counter()
            if name == "aws":
                written[name] = synth_aws.generate(con, spec, out, metrics)
            elif name == "gcp":
                written[name] = synth_gcp.generate(con, spec, out)
            else:
                written[name] = synth_azure.generate(con, spec, out, azure_format)
            print(f"{name}: {rows * months:,} rows in {len(written[name])} files, "
                  f"{time.perf_counter() - clock:.1f} s", file=sys.stderr, flush=True)
    finally:
        con.close()
    info = {
        "generator_version": GENERATOR_VERSION, "duckdb": duckdb.__version__, "rows_per_month": rows,
        "months": months, "seed": seed, "start": str(spec.start), "part_rows": part_rows,
        "azure_format": azure_format, "providers": sorted(written), "metrics": metrics,
        "files": {k: [str(p.relative_to(out)) for p in v] for k, v in written.items()},
    }
    (out / ".generated.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return written


def _module(provider: str):
    return {"aws": synth_aws, "gcp": synth_gcp, "azure": synth_azure}[provider]


def month_inputs(out: Path, provider: str, start: date) -> tuple[str, list[Path]]:
    """(glob of one month's data files, the paths to pass to `costaudit load` for that month)."""
    return _module(provider).month_inputs(out, start)


def metrics_file(out: Path, provider: str, start: date) -> Path | None:
    """The utilisation samples generated for one month (AWS only), if any."""
    path = synth_aws.metrics_path(out, start) if provider == "aws" else None
    return path if path is not None and path.exists() else None


def bare_scan_sql(out: Path, provider: str, start: date | None = None) -> str:
    """count and sum(cost) grouped by account, service and usage type, straight over the files
    (of one month when `start` is given, else of every month generated)."""
    module = _module(provider)
    files = module.data_glob(out) if start is None else module.month_inputs(out, start)[0]
    reader = "read_parquet"
    info = out / ".generated.json"
    if provider == "azure" and info.exists() and json.loads(info.read_text())["azure_format"] != "parquet":
        reader = "read_csv"
    return module.BARE_SCAN.format(files="'" + files.replace("'", "''") + "'", reader=reader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1M", help="rows per billing month and provider (2000, 50k, 1M, ...)")
    parser.add_argument("--provider", default="all", choices=[*PROVIDERS, "all"])
    parser.add_argument("--months", type=int, default=1, help="consecutive billing months")
    parser.add_argument("--start", default="2024-09", help="first billing month, YYYY-MM")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--part-rows", default="1M", help="rows per part file (AWS, GCP and Azure split months)")
    parser.add_argument("--azure-format", default="parquet", choices=["parquet", "csv.gz"])
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory limit while generating")
    parser.add_argument("--no-metrics", action="store_true", help="AWS: do not write EC2 utilisation samples")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        start = date.fromisoformat(args.start + "-01" if len(args.start) == 7 else args.start)
        written = generate(
            args.out, parse_count(args.rows), provider=args.provider, months=args.months, seed=args.seed,
            start=start, part_rows=parse_count(args.part_rows), azure_format=args.azure_format,
            memory_limit=args.memory_limit, metrics=not args.no_metrics,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, files in written.items():
        print(f"{name}: {args.out / name}  ({len(files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
