"""The benchmark data generator (bench/generate.py, `costaudit generate`) at a tiny size.

It must be deterministic, write files that `costaudit load` detects and reconciles to the cent
(checked here against sums written straight over the generated files), and grow its
cardinalities with the row count. Speed is the benchmark's business, never a test's.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from costaudit.generate_cmd import generate as generate_command
from costaudit.generate_cmd import load_generator

ROWS = 2000
MONEY = "DECIMAL(38,12)"


@pytest.fixture(scope="module")
def gen():
    return load_generator()


@pytest.fixture(scope="module")
def exports(gen, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-gen") / "a"
    gen.generate(out, ROWS, provider="all", months=2, seed=7, part_rows=800)
    return out


def _digest(folder: Path) -> list[tuple[str, int, int]]:
    """(file, rows, order-independent hash of every row) for every data file under `folder`."""
    con = duckdb.connect()
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".parquet", ".gz")):
        reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
        count, total = con.execute(f"SELECT count(*), sum(hash(t)::HUGEINT) FROM {reader}('{path}') t").fetchone()
        out.append((str(path.relative_to(folder)), count, int(total)))
    con.close()
    return out


def test_same_seed_same_content_other_seed_other_content(gen, exports, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    gen.generate(again, ROWS, provider="all", months=2, seed=7, part_rows=800)
    gen.generate(other, ROWS, provider="aws", months=1, seed=8, part_rows=800)
    first = _digest(exports)
    assert first == _digest(again)
    assert len(first) == 2 * (3 + 3 + 3 + 1)  # 3 parts per month and provider, and the EC2 metrics
    assert {f for f, _, _ in first} >= {f for f, _, _ in _digest(other)}
    same_file = {f: h for f, _, h in first}
    assert all(same_file[f] != h for f, _, h in _digest(other))


def test_every_provider_loads_and_reconciles_to_the_cent(exports, cli, db_path):
    result = cli("load", str(exports))
    assert result.exit_code == 0, result.output
    con = duckdb.connect()
    aws = con.execute(
        f"""SELECT strftime(bill_billing_period_start_date, '%Y-%m'), count(*),
                   sum(CAST(coalesce(line_item_net_unblended_cost, line_item_unblended_cost) AS {MONEY}))
            FROM read_parquet('{exports}/aws/*/data/*/*.parquet') GROUP BY 1"""
    ).fetchall()
    gcp = con.execute(
        f"""SELECT substr(invoice.month, 1, 4) || '-' || substr(invoice.month, 5, 2),
                   count(*) + sum(len(credits)),
                   sum(CAST(cost AS {MONEY})) + sum(coalesce(list_sum(list_transform(credits,
                       lambda c: CAST(c.amount AS {MONEY}))), 0))
            FROM read_parquet('{exports}/gcp/*/*/*.parquet') GROUP BY 1"""
    ).fetchall()
    azure = con.execute(
        f"""SELECT strftime(strptime(BillingPeriodStartDate, '%m/%d/%Y'), '%Y-%m'), count(*),
                   sum(CAST(CostInBillingCurrency AS {MONEY}))
            FROM read_parquet('{exports}/azure/*/*/*/*/*.parquet') GROUP BY 1"""
    ).fetchall()
    con.close()
    store = duckdb.connect(str(db_path), read_only=True)
    stored = {
        (provider, period): (rows, total, fmt)
        for provider, period, rows, total, fmt in store.execute(
            """SELECT ProviderName, strftime(BillingPeriodStart, '%Y-%m'), count(*), sum(BilledCost),
                      any_value(x_SourceFormat)
               FROM line_items GROUP BY ALL"""
        ).fetchall()
    }
    exports_seen = {row[0] for row in store.execute("SELECT DISTINCT source_export FROM loads").fetchall()}
    store.close()
    expected = {("AWS", p): (n, t) for p, n, t in aws} | {("Google Cloud", p): (n, t) for p, n, t in gcp} | {
        ("Microsoft", p): (n, t) for p, n, t in azure}
    assert set(stored) == set(expected) and len(expected) == 6  # three providers, two months each
    for key, (rows, total) in expected.items():
        stored_rows, stored_total, _ = stored[key]
        assert stored_rows == rows, key
        assert abs(Decimal(stored_total) - Decimal(total)) < Decimal("0.01"), key
    assert {v[2] for v in stored.values()} == {"aws-cur2", "gcp-billing-export", "azure-actual"}
    assert exports_seen == {"aws-data-exports/bench-cur2", "gcp-billing-export", "azure/bench-actual"}


def test_manifests_name_every_part(exports):
    import json

    manifest = json.loads(next((exports / "aws").rglob("*-Manifest.json")).read_text())
    assert len(manifest["dataFiles"]) == 3 and all(k.startswith("s3://") for k in manifest["dataFiles"])
    assert len(manifest["columns"]) >= 60
    azure = json.loads(next((exports / "azure").rglob("manifest.json")).read_text())
    assert azure["exportConfig"]["type"] == "ActualCost" and azure["blobCount"] == 3


def test_metrics_describe_billed_instances(exports):
    con = duckdb.connect()
    [(samples, resources, billed, metrics)] = con.execute(
        f"""SELECT count(*), count(DISTINCT m.resource_id), count(DISTINCT b.line_item_resource_id),
                   count(DISTINCT m.metric)
            FROM read_parquet('{exports}/metrics/aws-ec2-2024-09.parquet') m
            LEFT JOIN read_parquet('{exports}/aws/*/data/BILLING_PERIOD=2024-09/*.parquet') b
              ON b.line_item_resource_id = m.resource_id"""
    ).fetchall()
    con.close()
    assert samples > 0 and metrics >= 2 and 0 < billed <= resources


def test_cardinalities_grow_with_rows(gen, exports, tmp_path):
    bigger = tmp_path / "bigger"
    gen.generate(bigger, 10 * ROWS, provider="aws", months=1, seed=7, part_rows=10 * ROWS, metrics=False)
    assert not (bigger / "metrics").exists()
    con = duckdb.connect()
    counts = {}
    for name, folder in (("small", exports), ("big", bigger)):
        counts[name] = con.execute(
            f"""SELECT count(DISTINCT line_item_resource_id), count(DISTINCT line_item_usage_type),
                       count(DISTINCT resource_tags['user_name'])
                FROM read_parquet('{folder}/aws/*/data/BILLING_PERIOD=2024-09/*.parquet')"""
        ).fetchone()
    con.close()
    assert all(big > 2 * small for small, big in zip(counts["small"], counts["big"], strict=True)), counts
    spec = gen.Spec  # the scaling rules that make a 50M month realistic
    assert spec(rows=50_000_000).resources() == 2_000_000 and spec(rows=50_000_000).accounts() == 1500
    assert spec(rows=1_000_000).accounts() == 50
    assert len(gen.synth_aws.catalogue()) > 4000  # thousands of usage types
    assert len(gen.synth_gcp.catalogue()) > 2000 and len(gen.synth_azure.catalogue()) > 2000


def test_generate_command_and_bad_sizes(tmp_path):
    runner = CliRunner()
    result = runner.invoke(generate_command, ["--rows", "1k", "--provider", "azure", "--azure-format", "csv.gz",
                                              "--part-rows", "400", "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "g" / "azure").rglob("part_*_0001.csv.gz"))) == 3
    bad = runner.invoke(generate_command, ["--rows", "lots", "--out", str(tmp_path / "h")])
    assert bad.exit_code != 0 and "not a row count" in str(bad.exception or bad.output)
