"""`costaudit pull` for AWS against moto in server mode (S3, CloudWatch), started by these tests.

The bucket holds the real koku CUR delivery layout (../shared/samples/koku/aws/test_local_bucket)
and the project's CUR, CUR 2.0 and FOCUS Data Exports fixtures with their manifests.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from costaudit.config import SourceConfig
from costaudit.connectors.cloud import pull_source
from costaudit.connectors.cloud.common import PermissionDenied, ensure_pull_schema
from costaudit.connectors.imports_inventory import import_inventory
from costaudit.errors import InputError
from costaudit.loader import load_paths
from costaudit.store import connect

from .cloud_servers import Moto, Proxy, clear_cloud_environment
from .conftest import FIXTURES

KOKU = "koku/aws/test_local_bucket"
KOKU_DATA = "koku-local/20180801-20180901/16e57707-f9e3-49be-8be6-b84e684b5194/koku-local-1.csv.gz"
OLD_ASSEMBLY = "0b0f6c2e-1111-4a4a-9c9c-000000000001"


@pytest.fixture(scope="module")
def moto():
    server = Moto()
    yield server
    server.stop()


@pytest.fixture
def aws(moto, monkeypatch, tmp_path):
    """Dummy credentials in the environment only, and an empty moto."""
    clear_cloud_environment(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTPULL0000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "pull-test-secret-never-stored")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    moto.reset()
    return moto


def s3_client(url: str):
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1")


def upload(s3, bucket: str, root: Path, prefix: str = "") -> None:
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = f"{prefix}{path.relative_to(root).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


def source(name: str, url: str, **settings) -> SourceConfig:
    return SourceConfig(name=name, provider="aws", settings={"endpoint_url": url, "max_attempts": 4, **settings})


def bills(con) -> dict[tuple, tuple[Decimal, int]]:
    """Stored invoice totals and rows per (provider, account, month, currency, export)."""
    rows = con.execute(
        """SELECT l.provider, l.billing_account_id, strftime(l.billing_period_start, '%Y-%m'), i.BillingCurrency,
                  l.source_export, sum(i.BilledCost), count(*)
           FROM loads l JOIN line_items i ON i.x_LoadId = l.load_id
           WHERE l.status = 'active' GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:5]): (r[5], r[6]) for r in rows}


def snapshot(con) -> tuple:
    """Everything a pull may change: ledger, rows, pull state."""
    ensure_pull_schema(con)
    return (
        con.execute("SELECT load_id, status, delivery_id FROM loads ORDER BY load_id").fetchall(),
        con.execute("SELECT count(*), sum(BilledCost) FROM line_items").fetchall(),
        con.execute("SELECT source, remote_key, etag FROM pull_state ORDER BY ALL").fetchall(),
    )


@pytest.fixture
def buckets(aws, samples_dir):
    """koku's real CUR bucket at its root; the project fixtures under exports/ of acme-billing."""
    s3 = s3_client(aws.url)
    upload(s3, "koku-bucket", samples_dir / KOKU)
    upload(s3, "acme-billing", FIXTURES / "aws" / "cur1", "exports/")
    upload(s3, "acme-billing", FIXTURES / "aws" / "data-exports", "exports/")
    return s3


def test_pull_of_the_koku_bucket_loads_the_same_totals_as_load_then_downloads_nothing(buckets, aws, tmp_path, samples_dir):
    pulled = connect(tmp_path / "pulled.duckdb")
    work = tmp_path / "downloads"
    koku = pull_source(pulled, source("koku", aws.url, bucket="koku-bucket"), workdir=work)
    loaded = connect(tmp_path / "loaded.duckdb")
    load_paths(loaded, [str(samples_dir / KOKU)])
    assert bills(pulled) == bills(loaded)
    # Independent of both code paths: the koku invoice summed straight over the raw file.
    raw = duckdb.connect().execute(
        f"""SELECT sum(CAST("lineItem/UnblendedCost" AS DECIMAL(38, 12))), count(*)
            FROM read_csv('{samples_dir / KOKU / KOKU_DATA}', header = true, all_varchar = true)"""
    ).fetchall()[0]
    assert sum(v[0] for v in bills(pulled).values()) == raw[0]
    assert sum(v[1] for v in bills(pulled).values()) == raw[1]
    assert {k[4] for k in bills(pulled)} == {"aws-cur/koku-local"}
    assert sorted(koku.downloaded) == sorted([
        "s3://koku-bucket/koku-local/20180801-20180901/koku-local-Manifest.json", "s3://koku-bucket/" + KOKU_DATA,
    ])
    assert (work / "koku" / "koku-bucket" / KOKU_DATA).read_bytes() == (samples_dir / KOKU / KOKU_DATA).read_bytes()

    before = snapshot(pulled)
    again = pull_source(pulled, source("koku", aws.url, bucket="koku-bucket"), workdir=work)
    assert (again.downloaded, again.bytes_downloaded, again.load) == ([], 0, None)
    assert again.up_to_date == ["s3://koku-bucket/koku-local/20180801-20180901/koku-local-Manifest.json"]
    assert snapshot(pulled) == before


def test_pull_of_cur_and_data_exports_loads_the_same_totals_as_load_then_downloads_nothing(buckets, aws, tmp_path):
    pulled = connect(tmp_path / "pulled.duckdb")
    work = tmp_path / "downloads"
    acme = pull_source(pulled, source("acme", aws.url, bucket="acme-billing", prefix="exports"), workdir=work)
    loaded = connect(tmp_path / "loaded.duckdb")
    load_paths(loaded, [str(FIXTURES / "aws" / "cur1"), str(FIXTURES / "aws" / "data-exports")])
    assert bills(pulled) == bills(loaded)
    assert {k[4] for k in bills(pulled)} == {
        "aws-cur/acme-cur", "aws-data-exports/acme-cur2", "aws-data-exports/acme-focus", "aws-data-exports/emea-cur2-csv",
    }
    # Only the assembly the period manifest names was fetched, never the older one.
    assert not [u for u in acme.downloaded if OLD_ASSEMBLY in u]
    assert len(acme.downloaded) == 17

    before = snapshot(pulled)
    again = pull_source(pulled, source("acme", aws.url, bucket="acme-billing", prefix="exports"), workdir=work)
    assert (again.downloaded, again.bytes_downloaded, again.load) == ([], 0, None)
    assert len(again.up_to_date) == 8  # 2 CUR periods + 3 exports x 2 months
    assert snapshot(pulled) == before


def test_a_new_assembly_is_downloaded_alone_and_replaces_the_period(buckets, aws, tmp_path):
    con = connect(tmp_path / "store.duckdb")
    settings = {"bucket": "acme-billing", "prefix": "exports"}
    pull_source(con, source("acme", aws.url, **settings), workdir=tmp_path / "dl")
    period = "exports/acme-cur/20240201-20240301"
    manifest = json.loads(buckets.get_object(Bucket="acme-billing", Key=f"{period}/acme-cur-Manifest.json")["Body"].read())
    old_data = buckets.get_object(Bucket="acme-billing", Key=f"{period}/a51f9e03-3333-4c4c-8e8e-000000000003/acme-cur-1.csv.gz")
    rows = gzip.decompress(old_data["Body"].read()).decode().splitlines()
    new_assembly = "9d1e2f30-4444-4d4d-9f9f-000000000004"
    buckets.put_object(Bucket="acme-billing", Key=f"{period}/{new_assembly}/acme-cur-1.csv.gz",
                       Body=gzip.compress("\n".join(rows[:-3]).encode() + b"\n"))  # a restatement: 3 rows fewer
    manifest.update(assemblyId=new_assembly, reportKeys=[f"/acme-cur/20240201-20240301/{new_assembly}/acme-cur-1.csv.gz"])
    buckets.put_object(Bucket="acme-billing", Key=f"{period}/acme-cur-Manifest.json", Body=json.dumps(manifest).encode())

    report = pull_source(con, source("acme", aws.url, **settings), workdir=tmp_path / "dl")
    assert sorted(report.downloaded) == sorted([
        f"s3://acme-billing/{period}/acme-cur-Manifest.json", f"s3://acme-billing/{period}/{new_assembly}/acme-cur-1.csv.gz",
    ])
    assert {p.action for p in report.load.partitions} == {"replaced"}
    [(delivery, count)] = con.execute(
        """SELECT l.delivery_id, count(*) FROM loads l JOIN line_items i ON i.x_LoadId = l.load_id
           WHERE l.status = 'active' AND l.source_export = 'aws-cur/acme-cur'
             AND l.billing_period_start = TIMESTAMPTZ '2024-02-01 00:00:00+00' GROUP BY 1"""
    ).fetchall()
    assert delivery == new_assembly and count == len(rows) - 1 - 3


def test_since_and_until_limit_the_billing_months(buckets, aws, tmp_path):
    con = connect(tmp_path / "store.duckdb")
    report = pull_source(con, source("acme", aws.url, bucket="acme-billing", prefix="exports"),
                         since="2024-02", until="2024-03", workdir=tmp_path / "dl")
    months = {r[0] for r in con.execute("SELECT DISTINCT strftime(billing_period_start, '%Y-%m') FROM loads").fetchall()}
    assert months == {"2024-02"}
    assert not [u for u in report.downloaded if "2024-01" in u or "20240101" in u]


def test_throttling_and_server_errors_are_retried(buckets, aws, tmp_path):
    proxy = Proxy(aws.port)
    seen: set[str] = set()

    def throttle_once(method, path, headers):
        if method == "GET" and path not in seen:
            seen.add(path)
            code = "SlowDown" if len(seen) % 2 else "InternalError"
            status = 503 if code == "SlowDown" else 500
            return status, f"<Error><Code>{code}</Code><Message>try again</Message></Error>".encode(), {"Content-Type": "application/xml"}
        return None

    proxy.set_fault(throttle_once)
    try:
        con = connect(tmp_path / "store.duckdb")
        report = pull_source(con, source("koku", proxy.url, bucket="koku-bucket"), workdir=tmp_path / "dl")
    finally:
        proxy.stop()
    assert report.load is not None and report.downloaded
    gets = [p for m, p, _ in proxy.log if m == "GET"]
    assert all(gets.count(p) >= 2 for p in seen), "every first GET was refused and tried again"


def test_an_interrupted_download_resumes_with_a_ranged_get(buckets, aws, tmp_path, samples_dir):
    work = tmp_path / "dl"
    original = (samples_dir / KOKU / KOKU_DATA).read_bytes()
    # A previous pull stopped after 100,000 bytes of the data file.
    etag = buckets.head_object(Bucket="koku-bucket", Key=KOKU_DATA)["ETag"].strip('"')
    import hashlib

    target = work / "koku" / "koku-bucket" / KOKU_DATA
    target.parent.mkdir(parents=True)
    part = target.with_name(f".{target.name}.{hashlib.sha256(etag.encode()).hexdigest()[:12]}.part")
    part.write_bytes(original[:100_000])
    proxy = Proxy(aws.port)
    cut: set[str] = set()

    def cut_manifest_once(method, path, headers):
        if method == "GET" and path.endswith("Manifest.json") and path not in cut:
            cut.add(path)
            return "cut"  # half the body, then the connection drops
        return None

    proxy.set_fault(cut_manifest_once)
    try:
        con = connect(tmp_path / "store.duckdb")
        report = pull_source(con, source("koku", proxy.url, bucket="koku-bucket"), workdir=work)
    finally:
        proxy.stop()
    data_gets = [h for m, p, h in proxy.log if m == "GET" and p.endswith(KOKU_DATA)]
    assert [h.get("Range") for h in data_gets] == ["bytes=100000-"]
    manifest_gets = [h.get("Range") for m, p, h in proxy.log if m == "GET" and p.endswith("koku-local-Manifest.json")]
    assert manifest_gets[0] is None and manifest_gets[1].startswith("bytes=") and manifest_gets[1] != "bytes=0-"
    assert target.read_bytes() == original
    assert not part.exists()
    assert report.bytes_downloaded < len(original)


def test_a_missing_permission_names_the_permission_and_the_resource(buckets, aws, tmp_path):
    proxy = Proxy(aws.port)
    denied = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    proxy.set_fault(lambda m, p, h: (403, denied, {"Content-Type": "application/xml"}) if p.endswith(".csv.gz") else None)
    con = connect(tmp_path / "store.duckdb")
    before = snapshot(con)
    try:
        with pytest.raises(PermissionDenied) as caught:
            pull_source(con, source("koku", proxy.url, bucket="koku-bucket"), workdir=tmp_path / "dl")
        assert f"s3:GetObject on arn:aws:s3:::koku-bucket/{KOKU_DATA}" in str(caught.value)
        proxy.set_fault(lambda m, p, h: (403, denied, {"Content-Type": "application/xml"}))
        with pytest.raises(PermissionDenied, match=r"s3:ListBucket on arn:aws:s3:::koku-bucket"):
            pull_source(con, source("koku", proxy.url, bucket="koku-bucket"), workdir=tmp_path / "dl")
    finally:
        proxy.stop()
    assert snapshot(con) == before


def test_a_failed_pull_leaves_the_store_as_it_was(buckets, aws, tmp_path):
    con = connect(tmp_path / "store.duckdb")
    settings = {"bucket": "acme-billing", "prefix": "exports"}
    pull_source(con, source("acme", aws.url, **settings), workdir=tmp_path / "dl")
    before = snapshot(con)
    # A new January assembly whose data file is cut short (a broken upload).
    period = "exports/acme-cur/20240101-20240201"
    manifest = json.loads(buckets.get_object(Bucket="acme-billing", Key=f"{period}/acme-cur-Manifest.json")["Body"].read())
    assembly = "5e6f7a8b-5555-4e4e-8a8a-000000000005"
    good = buckets.get_object(Bucket="acme-billing", Key=manifest["reportKeys"][0].replace("/acme-cur/", "exports/acme-cur/", 1))
    buckets.put_object(Bucket="acme-billing", Key=f"{period}/{assembly}/acme-cur-1.csv.gz", Body=good["Body"].read()[:-40])
    manifest.update(assemblyId=assembly, reportKeys=[f"/acme-cur/20240101-20240201/{assembly}/acme-cur-1.csv.gz"])
    buckets.put_object(Bucket="acme-billing", Key=f"{period}/acme-cur-Manifest.json", Body=json.dumps(manifest).encode())
    with pytest.raises(InputError):
        pull_source(con, source("acme", aws.url, **settings), workdir=tmp_path / "dl")
    assert snapshot(con) == before


def test_keys_that_would_leave_the_download_folder_are_refused(aws, tmp_path):
    s3 = s3_client(aws.url)
    s3.create_bucket(Bucket="evil-bucket")
    s3.put_object(Bucket="evil-bucket", Key="cur/../../../escape/r/20240101-20240201/r-Manifest.json", Body=b"{}")
    con = connect(tmp_path / "store.duckdb")
    with pytest.raises(InputError, match="'..'"):
        pull_source(con, source("evil", aws.url, bucket="evil-bucket"), workdir=tmp_path / "dl")
    assert not (tmp_path / "escape").exists() and not list(tmp_path.glob("**/r-Manifest.json"))


def test_s3_inventory_reports_fill_the_inventory_table(aws, tmp_path):
    s3 = s3_client(aws.url)
    upload(s3, "acme-inventory", FIXTURES / "inventory" / "s3", "inventory/")
    pulled = connect(tmp_path / "pulled.duckdb")
    report = pull_source(pulled, source("inv", aws.url, inventory=["s3://acme-inventory/inventory/"]), workdir=tmp_path / "dl")
    assert report.inventory is not None
    imported = connect(tmp_path / "imported.duckdb")
    import_inventory(imported, [str(FIXTURES / "inventory" / "s3")])
    query = "SELECT bucket, object_key, size_bytes, content_hash, storage_class FROM storage_objects ORDER BY ALL"
    assert pulled.execute(query).fetchall() == imported.execute(query).fetchall()
    assert len(pulled.execute(query).fetchall()) > 0
    again = pull_source(pulled, source("inv", aws.url, inventory=["s3://acme-inventory/inventory/"]), workdir=tmp_path / "dl")
    assert again.downloaded == [] and again.inventory is None


def test_cloudwatch_metrics_of_billed_instances(aws, tmp_path, samples_dir):
    import boto3

    s3 = s3_client(aws.url)
    upload(s3, "koku-bucket", samples_dir / KOKU)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws.url, region_name="us-east-1")
    start = datetime(2018, 7, 9, tzinfo=UTC)
    cpu = [{"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": "i-08426994"}],
            "Timestamp": start + timedelta(minutes=5 * k), "Value": float(k % 12)} for k in range(24)]
    gpu = [{"MetricName": "nvidia_smi_utilization_gpu", "Timestamp": start,
            "Dimensions": [{"Name": "InstanceId", "Value": "i-08426994"}, {"Name": "index", "Value": str(i)},
                           {"Name": "name", "Value": "NVIDIA A10G"}], "Value": 20.0 + 50 * i} for i in range(2)]
    mem = [{"MetricName": "mem_used_percent", "Timestamp": start + timedelta(hours=1),
            "Dimensions": [{"Name": "InstanceId", "Value": "i-74816316"}, {"Name": "ImageId", "Value": "ami-1"}], "Value": 42.5}]
    unbilled = [{"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": "i-0notbilled"}],
                 "Timestamp": start, "Value": 99.0}]
    cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=cpu + unbilled)
    cloudwatch.put_metric_data(Namespace="CWAgent", MetricData=gpu + mem)

    con = connect(tmp_path / "store.duckdb")
    settings = {"bucket": "koku-bucket", "metrics": True, "metrics_regions": ["us-east-1"], "region": "us-east-1"}
    report = pull_source(con, source("koku", aws.url, **settings), workdir=tmp_path / "dl")
    assert report.metrics is not None
    stored = con.execute(
        "SELECT resource_id, metric, strftime(sampled_at, '%Y-%m-%d %H:%M'), value FROM resource_metrics ORDER BY ALL"
    ).fetchall()
    assert stored == [
        ("i-08426994", "cpu_utilization", "2018-07-09 00:00", sum(k % 12 for k in range(12)) / 12),
        ("i-08426994", "cpu_utilization", "2018-07-09 01:00", sum(k % 12 for k in range(12, 24)) / 12),
        ("i-08426994", "gpu_utilization", "2018-07-09 00:00", 70.0),  # the busiest of the two GPUs
        ("i-74816316", "memory_utilization", "2018-07-09 01:00", 42.5),
    ]
    again = pull_source(con, source("koku", aws.url, **settings), workdir=tmp_path / "dl")
    assert again.metrics is None and again.downloaded == []
    assert "cloudwatch://us-east-1/AWS/EC2/CPUUtilization" in again.up_to_date


def test_costaudit_pull_command(buckets, aws, tmp_path):
    from costaudit.pull_cmd import pull

    config = tmp_path / "costaudit.toml"
    config.write_text(
        "[store]\npath = \"store.duckdb\"\n\n"
        f"[[sources]]\nname = \"acme\"\nprovider = \"aws\"\nbucket = \"acme-billing\"\nprefix = \"exports\"\n"
        f"endpoint_url = \"{aws.url}\"\n\n"
        "[[sources]]\nname = \"local-files\"\nprovider = \"local\"\npath = \"exports\"\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    first = runner.invoke(pull, ["--config", str(config), "--provider", "aws"], obj={"db": tmp_path / "unused.duckdb"})
    assert first.exit_code == 0, first.output
    assert "acme (aws): downloaded 17 file(s)" in first.output
    assert (tmp_path / "store.duckdb.d" / "downloads" / "acme" / "acme-billing" / "exports").is_dir()
    second = runner.invoke(pull, ["--config", str(config)], obj={"db": tmp_path / "unused.duckdb"})
    assert second.exit_code == 0, second.output
    assert "acme (aws): downloaded 0 file(s), 0 bytes" in second.output
    shutil.rmtree(tmp_path / "store.duckdb.d")
