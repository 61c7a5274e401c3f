"""AWS deliveries: legacy CUR S3 folders (assemblies, manifests) and Data Exports folders."""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors import deliveries
from costaudit.errors import InputError
from costaudit.loader import load_paths

from .conftest import FIXTURES

AWS = FIXTURES / "aws"
BUCKET = "koku/aws/test_local_bucket"
PERIOD = "koku-local/20180801-20180901"
ASSEMBLY = "16e57707-f9e3-49be-8be6-b84e684b5194"
NEW_ASSEMBLY = "2b7c1e0a-5d6f-4a8b-9c0d-e1f2a3b4c5d6"


def _independent(relation: str) -> dict[tuple, Decimal]:
    """Invoice totals per (payer, month, currency), summed here over the raw CUR file."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        f"""SELECT "bill/PayerAccountId", strftime(CAST("bill/BillingPeriodStartDate" AS TIMESTAMPTZ), '%Y-%m'),
                   "lineItem/CurrencyCode", sum(CAST("lineItem/UnblendedCost" AS DECIMAL(38, 12)))
            FROM {relation} GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:3]): r[3] for r in rows}


def _stored(store) -> dict[tuple, Decimal]:
    rows = store.execute(
        """SELECT BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), BillingCurrency, sum(BilledCost)
           FROM line_items GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:3]): r[3] for r in rows}


def _csv(path: Path) -> str:
    return f"read_csv('{path}', header = true, all_varchar = true)"


def _copy_bucket(samples_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bucket"
    shutil.copytree(samples_dir / BUCKET, target)
    return target


# -- the real koku delivery ------------------------------------------------------------------

@pytest.mark.parametrize("folder", [BUCKET, f"{BUCKET}/{PERIOD}"])
def test_koku_delivery_loads_the_manifest_assembly(samples_dir, store, folder):
    report = load_paths(store, [str(samples_dir / folder)])
    data = samples_dir / BUCKET / PERIOD / ASSEMBLY / "koku-local-1.csv.gz"
    assert _stored(store) == _independent(_csv(data))
    assert {p.source_export for p in report.partitions} == {"aws-cur/koku-local"}
    assert all(abs(p.difference) <= Decimal("0.01") for p in report.partitions)
    assert not report.skipped_files, "both manifests are claimed, nothing is skipped"
    ledger = store.execute("SELECT DISTINCT delivery_id, source_format FROM loads").fetchall()
    assert ledger == [(ASSEMBLY, "aws-cur")]
    assert store.execute("SELECT count(*) FROM line_items").fetchall() == [(13380,)]


def test_loading_the_same_delivery_twice_changes_nothing(samples_dir, store):
    load_paths(store, [str(samples_dir / BUCKET)])
    before = _stored(store)
    again = load_paths(store, [str(samples_dir / BUCKET / PERIOD)])
    assert {p.action for p in again.partitions} == {"unchanged"}
    assert not again.changed
    assert _stored(store) == before


def test_a_newer_assembly_replaces_the_older_one(samples_dir, store, tmp_path):
    bucket = _copy_bucket(samples_dir, tmp_path)
    period = bucket / PERIOD
    load_paths(store, [str(bucket)])

    # AWS refreshes the month: a new assembly with restated data, and the period manifest
    # rewritten to point at it. The old assembly stays in S3 (and in our folder).
    new_data = period / NEW_ASSEMBLY / "koku-local-1.csv.gz"
    new_data.parent.mkdir()
    old_data = period / ASSEMBLY / "koku-local-1.csv.gz"
    duckdb.sql(
        f"""COPY (SELECT * REPLACE (CAST(CAST("lineItem/UnblendedCost" AS DECIMAL(38, 12)) * 2 AS VARCHAR)
                                    AS "lineItem/UnblendedCost")
                  FROM {_csv(old_data)} WHERE "lineItem/UsageAccountId" <> '5948062437622')
            TO '{new_data}' (HEADER, COMPRESSION gzip)"""
    )
    manifest = json.loads((period / "koku-local-Manifest.json").read_text())
    manifest["assemblyId"] = NEW_ASSEMBLY
    manifest["reportKeys"] = [f"/koku-local/20180801-20180901/{NEW_ASSEMBLY}/koku-local-1.csv.gz"]
    (period / NEW_ASSEMBLY / "koku-local-Manifest.json").write_text(json.dumps(manifest))
    (period / "koku-local-Manifest.json").write_text(json.dumps(manifest))

    report = load_paths(store, [str(bucket)])
    assert {p.action for p in report.partitions} == {"replaced"}
    assert _stored(store) == _independent(_csv(new_data))
    assert _stored(store) != _independent(_csv(old_data))
    active = store.execute("SELECT DISTINCT delivery_id FROM loads WHERE status = 'active'").fetchall()
    assert active == [(NEW_ASSEMBLY,)]
    assert store.execute("SELECT count(DISTINCT x_SourceFile) FROM line_items").fetchall() == [(1,)]


def test_without_a_period_manifest_the_newest_assembly_manifest_wins(samples_dir, store, tmp_path):
    bucket = _copy_bucket(samples_dir, tmp_path)
    period = bucket / PERIOD
    (period / "koku-local-Manifest.json").unlink()
    newer = period / NEW_ASSEMBLY
    shutil.copytree(period / ASSEMBLY, newer)
    manifest = json.loads((newer / "koku-local-Manifest.json").read_text())
    manifest["assemblyId"] = NEW_ASSEMBLY
    manifest["reportKeys"] = [f"/koku-local/20180801-20180901/{NEW_ASSEMBLY}/koku-local-1.csv.gz"]
    (newer / "koku-local-Manifest.json").write_text(json.dumps(manifest))
    os.utime(period / ASSEMBLY / "koku-local-Manifest.json", (1_600_000_000, 1_600_000_000))
    os.utime(newer / "koku-local-Manifest.json", (1_700_000_000, 1_700_000_000))
    plan = deliveries.plan(store, [str(bucket)])
    assert [(d.delivery_id, [f.path for f in d.files]) for d in plan.deliveries] == [
        (NEW_ASSEMBLY, [newer / "koku-local-1.csv.gz"])
    ]
    os.utime(newer / "koku-local-Manifest.json", (1_500_000_000, 1_500_000_000))
    plan = deliveries.plan(store, [str(bucket)])
    assert [d.delivery_id for d in plan.deliveries] == [ASSEMBLY]


def test_a_missing_report_key_is_a_clear_error(samples_dir, store, tmp_path):
    bucket = _copy_bucket(samples_dir, tmp_path)
    (bucket / PERIOD / ASSEMBLY / "koku-local-1.csv.gz").unlink()
    with pytest.raises(InputError) as err:
        load_paths(store, [str(bucket)])
    message = str(err.value)
    assert "koku-local-Manifest.json" in err.value.file
    assert f"{ASSEMBLY}/koku-local-1.csv.gz" in message and "not among the files given" in message
    assert store.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]


def test_manifest_keys_never_reach_outside_the_given_folder(samples_dir, store, tmp_path):
    bucket = _copy_bucket(samples_dir, tmp_path)
    outside = tmp_path / "outside.csv.gz"
    shutil.copy(bucket / PERIOD / ASSEMBLY / "koku-local-1.csv.gz", outside)
    manifest_path = bucket / PERIOD / "koku-local-Manifest.json"
    for key in (str(outside), "../../../outside.csv.gz", f"/koku-local/20180801-20180901/../../../{outside.name}"):
        manifest = json.loads(manifest_path.read_text())
        manifest["reportKeys"] = [key]
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(InputError) as err:
            load_paths(store, [str(bucket)])
        assert "not among the files given" in str(err.value)
    assert store.execute("SELECT count(*) FROM line_items").fetchall() == [(0,)]


def test_overwrite_mode_and_athena_mode_manifests(samples_dir, store, tmp_path):
    # Overwrite mode: the report files sit in the period folder beside the only manifest.
    period = tmp_path / "reports" / "koku-local" / "20180801-20180901"
    period.mkdir(parents=True)
    source = samples_dir / BUCKET / PERIOD
    shutil.copy(source / ASSEMBLY / "koku-local-1.csv.gz", period / "koku-local-1.csv.gz")
    manifest = json.loads((source / "koku-local-Manifest.json").read_text())
    manifest["reportKeys"] = ["reports/koku-local/20180801-20180901/koku-local-1.csv.gz"]
    (period / "koku-local-Manifest.json").write_text(json.dumps(manifest))
    report = load_paths(store, [str(tmp_path / "reports")])
    assert {p.source_export for p in report.partitions} == {"aws-cur/koku-local"}
    assert _stored(store) == _independent(_csv(period / "koku-local-1.csv.gz"))

    # Athena mode: Parquet under <report>/<report>/year=/month=/ with its manifest.
    athena = tmp_path / "athena" / "emea-cur" / "emea-cur" / "year=2024" / "month=1"
    athena.mkdir(parents=True)
    parquet = next((AWS / "athena").rglob("month=1/*.parquet"))
    shutil.copy(parquet, athena / "emea-cur-1.snappy.parquet")
    (athena / "emea-cur-Manifest.json").write_text(json.dumps({
        "assemblyId": "c0ffee00-0000-4000-8000-000000000001", "reportName": "emea-cur",
        "billingPeriod": {"start": "20240101T000000.000Z", "end": "20240201T000000.000Z"},
        "reportKeys": ["emea-cur/emea-cur/year=2024/month=1/emea-cur-1.snappy.parquet"],
    }))
    report = load_paths(store, [str(tmp_path / "athena")])
    assert [(p.source_export, p.source_format, p.currency) for p in report.partitions] == [
        ("aws-cur/emea-cur", "aws-cur-athena", "EUR")
    ]


# -- the bundled fixtures ---------------------------------------------------------------------

def test_fixture_cur_delivery_loads_only_the_latest_assembly(store):
    plan = deliveries.plan(store, [str(AWS / "cur1")])
    assert sorted(d.delivery_id for d in plan.deliveries) == [
        "7c9d2e41-2222-4b4b-8d8d-000000000002", "a51f9e03-3333-4c4c-8e8e-000000000003"
    ]
    january = next(d for d in plan.deliveries if d.delivery_id.startswith("7c9d"))
    assert sorted(f.path.name for f in january.files) == ["acme-cur-1.csv.gz", "acme-cur-2.csv.gz"]
    assert not plan.skipped
    load_paths(store, [str(AWS / "cur1")])
    latest = [str(p) for p in (AWS / "cur1").rglob("*.csv.gz") if "0b0f6c2e" not in str(p)]
    assert _stored(store) == _independent(f"read_csv({latest!r}, header = true, all_varchar = true)")


def test_data_exports_use_the_manifest_file_list_or_the_data_folder(store):
    report = load_paths(store, [str(AWS / "data-exports/acme-cur2"), str(AWS / "data-exports/emea-cur2-csv")])
    exports = {(p.source_export, p.billing_account_id, p.currency) for p in report.partitions}
    assert exports == {("aws-data-exports/acme-cur2", "111122223333", "USD"),
                       ("aws-data-exports/emea-cur2-csv", "999988887777", "EUR")}
    ids = store.execute("SELECT source_export, delivery_id FROM loads ORDER BY ALL").fetchall()
    assert ids == [("aws-data-exports/acme-cur2", "exec-cur2-0001"), ("aws-data-exports/acme-cur2", "exec-cur2-0002"),
                   ("aws-data-exports/emea-cur2-csv", "exec-csv-0001"), ("aws-data-exports/emea-cur2-csv", "exec-csv-0002")]


def test_data_export_refreshes_in_subfolders_take_the_newest(store, tmp_path):
    export = tmp_path / "acme-cur2"
    shutil.copytree(AWS / "data-exports/acme-cur2", export)
    data = export / "data" / "BILLING_PERIOD=2024-01"
    parquet = data / "acme-cur2-00001.snappy.parquet"
    old, new = data / "20240115T000000Z", data / "20240201T000000Z"
    old.mkdir()
    new.mkdir()
    duckdb.sql(f"COPY (SELECT * FROM read_parquet('{parquet}') LIMIT 5) TO '{old / 'part-0.parquet'}'")
    parquet.rename(new / "part-0.parquet")
    os.utime(old / "part-0.parquet", (1_700_000_000, 1_700_000_000))
    manifest = export / "metadata" / "BILLING_PERIOD=2024-01" / "acme-cur2-Manifest.json"
    doc = json.loads(manifest.read_text())
    del doc["dataFiles"]
    manifest.write_text(json.dumps(doc))
    plan = deliveries.plan(store, [str(export / "data" / "BILLING_PERIOD=2024-01"), str(manifest)])
    assert [[f.path for f in d.files] for d in plan.deliveries] == [[new / "part-0.parquet"]]


def test_data_export_manifest_listing_a_missing_file_is_refused(store, tmp_path):
    export = tmp_path / "acme-cur2"
    shutil.copytree(AWS / "data-exports/acme-cur2", export)
    (export / "data" / "BILLING_PERIOD=2024-02" / "acme-cur2-00001.snappy.parquet").unlink()
    with pytest.raises(InputError) as err:
        load_paths(store, [str(export)])
    assert "BILLING_PERIOD=2024-02" in err.value.file and "acme-cur2-00001.snappy.parquet" in str(err.value)


def test_every_aws_fixture_loads_together_and_reloads_unchanged(store):
    first = load_paths(store, [str(AWS)])
    assert {p.source_format for p in first.partitions} == {"aws-cur", "aws-cur-athena", "aws-cur2", "focus"}
    assert {p.currency for p in first.partitions} == {"USD", "EUR"}
    assert all(abs(p.difference) <= Decimal("0.01") for p in first.partitions)
    assert not first.skipped_files
    again = load_paths(store, [str(AWS)])
    assert not again.changed
