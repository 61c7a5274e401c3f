"""Benchmark: classifying N line items vs a bare DuckDB group-by over the same rows, side by side.

    .venv/bin/python bench/bench_classify.py [--rows 10000000] [--repeat 3] [--keep DIR]

Generates CUR-like FOCUS rows as Parquet (about 3,000 usage types with a realistic skew, many
resources with tags), puts them in a store's `line_items` (setup, not timed), then times in one run,
alternating: (a) `SELECT SubAccountId, ServiceName, x_UsageType, count(*), sum(BilledCost) ... GROUP BY`
over the current line items, and (b) `run_analysis` (distinct keys, polars rules, linking, tables,
views) without and with tag linking. Prints the medians and the ratios and writes them to
bench/RESULTS.md, section "classification". Target: (b) <= 1.5 x (a).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from costaudit.analysis import AnalysisConfig, run_analysis
from costaudit.store import connect

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"

REGIONS = ["USE1", "USE2", "USW1", "USW2", "EUW1", "EUW2", "EUC1", "EUN1", "APN1", "APN2", "APS1", "APS2", "APS3",
           "CAN1", "SAE1"]
REGION_IDS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-central-1",
              "eu-north-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2", "ap-south-1",
              "ca-central-1", "sa-east-1"]
INSTANCES = [f"{family}.{size}" for family in ("m5", "c5", "r5", "m6i", "c6g", "t3", "m7i", "r6g", "i4i", "g5", "p4d",
                                               "inf2", "g4dn", "trn1", "x2idn")
             for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge")]


def catalog() -> pl.DataFrame:
    """About 3,000 usage types with their service, family, operation, unit and description."""
    rows: list[dict[str, str | None]] = []

    def add(service: str, name: str, usage: str, family: str, operation: str, unit: str, instance: str | None = None,
            region: str = "us-east-1", src: str | None = None, dst: str | None = None) -> None:
        rows.append({"x_ServiceCode": service, "ServiceName": name, "x_UsageType": usage, "x_ProductFamily": family,
                     "x_Operation": operation, "PricingUnit": unit, "x_InstanceType": instance, "RegionId": region,
                     "x_FromRegionCode": src, "x_ToRegionCode": dst,
                     "ChargeDescription": f"rate for {usage} ({operation})"})

    for code, region in zip(REGIONS, REGION_IDS, strict=True):
        for instance in INSTANCES:
            for kind in ("BoxUsage", "SpotUsage", "DedicatedUsage"):
                add("AmazonEC2", "Amazon Elastic Compute Cloud", f"{code}-{kind}:{instance}", "Compute Instance",
                    "RunInstances", "Hrs", instance, region)
        for other, other_region in zip(REGIONS, REGION_IDS, strict=True):
            if other != code:
                add("AmazonEC2", "Amazon Elastic Compute Cloud", f"{code}-{other}-AWS-Out-Bytes", "Data Transfer",
                    "RunInstances", "GB", None, region, region, other_region)
                add("AmazonS3", "Amazon Simple Storage Service", f"{code}-{other}-AWS-In-Bytes", "Data Transfer",
                    "PutObject", "GB", None, region, other_region, region)
        for usage, family, op, unit, service, name in (
            ("DataTransfer-Out-Bytes", "Data Transfer", "RunInstances", "GB", "AmazonEC2", "Amazon Elastic Compute Cloud"),
            ("DataTransfer-In-Bytes", "Data Transfer", "RunInstances", "GB", "AmazonEC2", "Amazon Elastic Compute Cloud"),
            ("DataTransfer-Regional-Bytes", "Data Transfer", "InterZone-In", "GB", "AmazonEC2", "Amazon Elastic Compute Cloud"),
            ("NatGateway-Bytes", "NAT Gateway", "NatGateway", "GB", "AmazonEC2", "Amazon Elastic Compute Cloud"),
            ("NatGateway-Hours", "NAT Gateway", "NatGateway", "Hrs", "AmazonEC2", "Amazon Elastic Compute Cloud"),
            ("EBS:VolumeUsage.gp3", "Storage", "CreateVolume-Gp3", "GB-Mo", "AmazonEC2", "Amazon Elastic Compute Cloud"),
            ("EBS:SnapshotUsage", "Storage Snapshot", "CreateSnapshot", "GB-Mo", "AmazonEC2", "Amazon Elastic Compute Cloud"),
            ("TimedStorage-ByteHrs", "Storage", "StandardStorage", "GB-Mo", "AmazonS3", "Amazon Simple Storage Service"),
            ("Requests-Tier1", "API Request", "PutObject", "Requests", "AmazonS3", "Amazon Simple Storage Service"),
            ("Requests-Tier2", "API Request", "GetObject", "Requests", "AmazonS3", "Amazon Simple Storage Service"),
            ("NovaLite-input-tokens", "Amazon Bedrock", "InvokeModelInference", "1K tokens", "AmazonBedrock", "Amazon Bedrock"),
            ("NovaLite-output-tokens", "Amazon Bedrock", "InvokeModelInference", "1K tokens", "AmazonBedrock", "Amazon Bedrock"),
            ("Train:ml.g5.2xlarge", "ML Instance", "RunInstance", "Hrs", "AmazonSageMaker", "Amazon SageMaker"),
            ("Host:ml.g5.xlarge", "ML Instance", "RunInstance", "Hrs", "AmazonSageMaker", "Amazon SageMaker"),
            ("Lambda-GB-Second", "Serverless", "Invoke", "Lambda-GB-Second", "AWSLambda", "AWS Lambda"),
        ):
            add(service, name, f"{code}-{usage}", family, op, unit, None, region)
        for index in range(55):  # long tail of other services' usage types
            add(f"AWSService{index % 90}", f"AWS Service {index % 90}", f"{code}-Usage{index}", "Other",
                f"Op{index % 40}", "Units", None, region)
    return pl.DataFrame(rows, infer_schema_length=None)


def generate(folder: Path, rows: int) -> Path:
    """N CUR-like rows as Parquet; usage types follow a skewed distribution, resources carry tags."""
    con = duckdb.connect(config={"memory_limit": "2GB"})
    usage = catalog().with_row_index("u")
    con.register("usage_catalog", usage.to_arrow())
    con.execute("CREATE TABLE catalog AS SELECT * FROM usage_catalog")
    size = usage.height
    path = folder / "line_items.parquet"
    con.execute(
        f"""
        COPY (
          WITH base AS (
            SELECT i,
                   CAST(floor(pow((hash(i) % 1000003) / 1000003.0, 2.5) * {size}) AS BIGINT) AS u,
                   hash(i * 7 + 1) % 500000 AS resource
            FROM range({rows}) t(i))
          SELECT
            'AWS' AS ProviderName, 'AWS' AS PublisherName, 'Amazon Web Services, Inc.' AS InvoiceIssuerName,
            '999999999999' AS BillingAccountId, 'Bench payer' AS BillingAccountName, 'USD' AS BillingCurrency,
            TIMESTAMPTZ '2024-09-01' AS BillingPeriodStart, TIMESTAMPTZ '2024-10-01' AS BillingPeriodEnd,
            TIMESTAMPTZ '2024-09-01' + to_hours(CAST(i % 720 AS INTEGER)) AS ChargePeriodStart,
            TIMESTAMPTZ '2024-09-01' + to_hours(CAST(i % 720 AS INTEGER) + 1) AS ChargePeriodEnd,
            CASE WHEN i % 997 = 0 THEN 'Tax' WHEN i % 991 = 0 THEN 'Credit' ELSE 'Usage' END AS ChargeCategory,
            'Usage-Based' AS ChargeFrequency,
            c.ServiceName, CASE WHEN c.x_ServiceCode IN ('AmazonBedrock', 'AmazonSageMaker') THEN 'AI and Machine Learning'
                                WHEN c.x_ProductFamily = 'Data Transfer' THEN 'Networking' ELSE 'Compute' END AS ServiceCategory,
            c.x_ServiceCode, c.x_UsageType, c.x_Operation, c.x_InstanceType, c.x_ProductFamily, c.ChargeDescription,
            c.PricingUnit, c.PricingUnit AS ConsumedUnit, c.RegionId, c.x_FromRegionCode, c.x_ToRegionCode,
            CAST((i % 1000) / 7.0 AS DECIMAL(38,12)) AS PricingQuantity,
            CAST((i % 1000) / 7.0 AS DECIMAL(38,12)) AS ConsumedQuantity,
            CAST((hash(i) % 100000) / 1000.0 AS DECIMAL(38,12)) AS BilledCost,
            CAST((hash(i) % 100000) / 1000.0 AS DECIMAL(38,12)) AS EffectiveCost,
            CAST((hash(i) % 100000) / 1000.0 AS DECIMAL(38,12)) AS ListCost,
            CAST((hash(i) % 100000) / 1000.0 AS DECIMAL(38,12)) AS ContractedCost,
            CAST(100000000000 + resource % 200 AS VARCHAR) AS SubAccountId,
            'res-' || CAST(resource AS VARCHAR) AS ResourceId,
            '{{"team":"team' || CAST(resource % 40 AS VARCHAR) || '","Name":"res-' || CAST(resource AS VARCHAR) || '"}}' AS Tags,
            'bench' AS x_LoadId
          FROM base JOIN catalog c ON c.u = base.u
        ) TO '{path}' (FORMAT parquet)
        """
    )
    con.close()
    return path


def setup_store(db: Path, parquet: Path) -> duckdb.DuckDBPyConnection:
    """A store whose line_items are the generated rows, under one ledger entry (not timed)."""
    con = connect(db)
    con.execute(f"INSERT INTO line_items BY NAME SELECT * FROM read_parquet('{parquet}')")
    con.execute(
        """INSERT INTO loads VALUES ('bench', 'bench', 'AWS', '999999999999', TIMESTAMPTZ '2024-09-01', 'bench',
           'focus', '1.2', NULL, 'bench', '[]', (SELECT count(*) FROM line_items), 'BilledCost', now(), 'active', NULL)"""
    )
    con.execute("CHECKPOINT")
    return con


def bare_group_by(con: duckdb.DuckDBPyConnection) -> int:
    """The yardstick; its result goes to Arrow (as analysis results do), not to Python objects."""
    return con.sql(
        """SELECT SubAccountId, ServiceName, x_UsageType, count(*), sum(BilledCost)
           FROM current_line_items GROUP BY ALL"""
    ).to_arrow_table().num_rows


def small_group_by(con: duckdb.DuckDBPyConnection) -> int:
    """For comparison only: the same without the account (a few thousand groups, so a cheaper yardstick)."""
    return con.sql(
        "SELECT ServiceName, x_UsageType, count(*), sum(BilledCost) FROM current_line_items GROUP BY ALL"
    ).to_arrow_table().num_rows


def write_results(text: str) -> None:
    """Replace (or add) the "classification" section of bench/RESULTS.md."""
    existing = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    section = "## classification\n\n" + text.strip() + "\n"
    pattern = re.compile(r"^## classification\n.*?(?=^## |\Z)", re.S | re.M)
    updated = pattern.sub(section + "\n", existing) if pattern.search(existing) else existing.rstrip() + "\n\n" + section
    RESULTS.write_text(updated, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="keep the Parquet and store in this folder")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args(argv)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="costaudit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        clock = time.perf_counter()
        parquet = generate(folder, args.rows)
        generated = time.perf_counter() - clock
        clock = time.perf_counter()
        con = setup_store(folder / "bench.duckdb", parquet)
        loaded = time.perf_counter() - clock
        print(f"setup: {args.rows:,} rows generated in {generated:.1f} s, stored in {loaded:.1f} s", flush=True)
        plain = AnalysisConfig()
        linked = AnalysisConfig(ai_tag_keys=("team",), ai_accounts=("100000000007",))
        times: dict[str, list[float]] = {"bare": [], "classify": [], "classify+tags": [], "small": []}
        for _ in range(args.repeat):  # alternate, so background load hits both sides alike
            clock = time.perf_counter()
            groups = bare_group_by(con)
            times["bare"].append(time.perf_counter() - clock)
            run = run_analysis(con, plain)
            times["classify"].append(run.seconds)
            tagged = run_analysis(con, linked)
            times["classify+tags"].append(tagged.seconds)
            clock = time.perf_counter()
            small_groups = small_group_by(con)
            times["small"].append(time.perf_counter() - clock)
        median = {k: statistics.median(v) for k, v in times.items()}
        clock = time.perf_counter()
        con.execute("SELECT ai_category, network_class, sum(BilledCost) FROM analysis_line_items GROUP BY ALL").fetchall()
        view_seconds = time.perf_counter() - clock
        con.close()
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    ratio = median["classify"] / median["bare"]
    ratio_tags = median["classify+tags"] / median["bare"]
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__}, polars {pl.__version__}; "
        f"`python bench/bench_classify.py --rows {args.rows} --repeat {args.repeat}`.",
        "",
        f"{args.rows:,} CUR-like rows, {groups:,} (account, service, usage type) groups, {run.keys:,} distinct charge keys, "
        f"{run.ai_keys:,} AI keys, {run.network_keys:,} network keys. Medians of {args.repeat} alternating runs:",
        "",
        "| step | seconds | x bare group-by |",
        "| --- | ---: | ---: |",
        f"| (a) bare DuckDB group-by (account, service, usage type; count, sum) | {median['bare']:.2f} | 1.00 |",
        f"| (b) classification: `run_analysis`, default config | {median['classify']:.2f} | {ratio:.2f} |",
        f"| (b') classification with tag and account linking (`ai_tag_keys = [\"team\"]`) | {median['classify+tags']:.2f} | {ratio_tags:.2f} |",
        f"| (info) group-by (service, usage type) only, {small_groups:,} groups | {median['small']:.2f} | {median['small'] / median['bare']:.2f} |",
        f"| (info) one query over the `analysis_line_items` view (class totals) | {view_seconds:.2f} | {view_seconds / median['bare']:.2f} |",
        "",
        f"Target (b) <= 1.5 x (a): {'met' if ratio <= 1.5 else 'NOT met'}. All runs (s): "
        + "; ".join(f"{k} " + ", ".join(f"{t:.2f}" for t in v) for k, v in times.items()) + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_results(text)
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
