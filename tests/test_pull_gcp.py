"""`costaudit pull` for Google Cloud: gcp-storage-emulator (Cloud Storage) in this process, and a
local HTTP server answering the documented REST responses of BigQuery, Cloud Billing, the Cloud
Catalog and the OAuth token endpoint named by the Application Default Credentials file."""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import pytest

from costaudit.config import SourceConfig
from costaudit.connectors.cloud import pull_source
from costaudit.connectors.cloud.common import PermissionDenied, ensure_pull_schema
from costaudit.connectors.imports_inventory import import_inventory
from costaudit.loader import load_paths
from costaudit.store import connect

from .cloud_servers import ApiServer, GcsEmulator, clear_cloud_environment
from .conftest import FIXTURES
from .fake_gcp import BILLING_ACCOUNT, FakeGoogle, service_account_key, sku

EXPORT = FIXTURES / "gcp" / "detailed_export.parquet"
TABLE = "finops-data.billing.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F7A8B9"


@pytest.fixture(scope="module")
def api():
    server = ApiServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gcs():
    server = GcsEmulator()
    yield server
    server.stop()


@pytest.fixture
def google(api, monkeypatch, tmp_path):
    """Application Default Credentials from a file named in the environment, nothing else."""
    clear_cloud_environment(monkeypatch)
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps(service_account_key(api.url)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    api.httpd.routes.clear()
    api.log.clear()
    return FakeGoogle(api, EXPORT)


def source(api: ApiServer, **settings) -> SourceConfig:
    base = {"project": "finops-jobs", "api_endpoint": api.url, "bigquery_endpoint": api.url, "max_attempts": 3}
    return SourceConfig(name="gcp-billing", provider="gcp", settings={**base, **settings})


def bills(con) -> dict[tuple, tuple]:
    rows = con.execute(
        """SELECT l.provider, l.billing_account_id, strftime(l.billing_period_start, '%Y-%m'), i.BillingCurrency,
                  l.source_export, sum(i.BilledCost), sum(i.EffectiveCost), count(*)
           FROM loads l JOIN line_items i ON i.x_LoadId = l.load_id WHERE l.status = 'active' GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:5]): tuple(r[5:]) for r in rows}


def raw_invoice_totals() -> dict[tuple, Decimal]:
    """Per (account, invoice month, currency): cost plus credits, summed straight over the export file."""
    rows = duckdb.connect().execute(
        f"""SELECT billing_account_id, invoice.month, currency,
                   sum(CAST(cost AS DECIMAL(38, 9))
                       + coalesce((SELECT sum(CAST(c.amount AS DECIMAL(38, 9))) FROM unnest(credits) AS t(c)), 0))
            FROM read_parquet('{EXPORT}') GROUP BY ALL"""
    ).fetchall()
    return {(a, f"{m[:4]}-{m[4:]}", c): total for a, m, c, total in rows}


def bigquery_jobs(api: ApiServer) -> list[str]:
    return [r.json()["configuration"]["query"]["query"] for r in api.log
            if r.method == "POST" and r.path.endswith("/jobs")]


def test_bigquery_pull_loads_the_same_totals_as_load_then_queries_no_rows(google, api, tmp_path):
    pulled = connect(tmp_path / "pulled.duckdb")
    report = pull_source(pulled, source(api, billing_account=BILLING_ACCOUNT, bigquery_table=TABLE), workdir=tmp_path / "dl")
    loaded = connect(tmp_path / "loaded.duckdb")
    load_paths(loaded, [str(EXPORT)])
    assert bills(pulled) == bills(loaded)
    stored = {k[1:4]: v[0] for k, v in bills(pulled).items()}
    assert stored == {k: pytest.approx(t, abs=Decimal("0.01")) for k, t in raw_invoice_totals().items()}
    assert sorted(report.downloaded) == [f"bigquery://{TABLE}/invoice_month=202405", f"bigquery://{TABLE}/invoice_month=202406"]
    assert report.accounts[0] == f"billing account {BILLING_ACCOUNT} (Acme ML, open)"
    assert "project ml-prod (billing enabled)" in report.accounts
    assert len(bigquery_jobs(api)) == 3  # the month summary, then one query per invoice month

    api.log.clear()
    again = pull_source(pulled, source(api, bigquery_table=TABLE), workdir=tmp_path / "dl")
    assert (again.downloaded, again.bytes_downloaded, again.load) == ([], 0, None)
    assert [q for q in bigquery_jobs(api) if "@invoice_month" in q] == []
    assert len(again.up_to_date) == 2


def test_since_and_until_select_invoice_months(google, api, tmp_path):
    con = connect(tmp_path / "store.duckdb")
    report = pull_source(con, source(api, bigquery_table=TABLE), since="2024-06", until="2024-07", workdir=tmp_path / "dl")
    assert report.downloaded == [f"bigquery://{TABLE}/invoice_month=202406"]
    assert {k[2] for k in bills(con)} == {"2024-06"}


def test_throttled_bigquery_calls_are_retried(google, api, tmp_path):
    google.fail_first = {"/jobs"}
    con = connect(tmp_path / "store.duckdb")
    report = pull_source(con, source(api, bigquery_table=TABLE), workdir=tmp_path / "dl")
    assert report.load is not None
    assert not google.fail_first, "the first jobs.insert was answered 503 and tried again"


def test_a_missing_bigquery_permission_names_it_and_the_project(google, api, tmp_path):
    google.refuse = {"/jobs": "bigquery.jobs.create"}
    con = connect(tmp_path / "store.duckdb")
    ensure_pull_schema(con)
    with pytest.raises(PermissionDenied, match=r"bigquery\.jobs\.create on projects/finops-jobs"):
        pull_source(con, source(api, bigquery_table=TABLE), workdir=tmp_path / "dl")
    google.refuse = {"/v1/billingAccounts": "billing.accounts.get"}
    with pytest.raises(PermissionDenied, match=rf"billing\.accounts\.get on billingAccounts/{BILLING_ACCOUNT}"):
        pull_source(con, source(api, billing_account=BILLING_ACCOUNT), workdir=tmp_path / "dl")
    assert con.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]


def test_cloud_storage_export_files_and_inventory_reports(google, api, gcs, tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs.url})
    for name in ("acme-billing-extracts", "acme-inventory"):
        if client.lookup_bucket(name) is None:
            client.create_bucket(name)
    client.bucket("acme-billing-extracts").blob("detailed/2024/export-000000000000.parquet").upload_from_filename(str(EXPORT))
    client.bucket("acme-billing-extracts").blob("detailed/README.md").upload_from_string(b"exports land here")
    for path in sorted((FIXTURES / "inventory" / "gcs").glob("*.csv")):
        client.bucket("acme-inventory").blob(f"reports/{path.name}").upload_from_filename(str(path))

    settings = {"bucket": "acme-billing-extracts", "prefix": "detailed/", "inventory": ["gs://acme-inventory/reports/"],
                "storage_endpoint": gcs.url}
    pulled = connect(tmp_path / "pulled.duckdb")
    report = pull_source(pulled, source(api, **settings), workdir=tmp_path / "dl")
    loaded = connect(tmp_path / "loaded.duckdb")
    load_paths(loaded, [str(EXPORT)])
    assert bills(pulled) == bills(loaded)
    assert (tmp_path / "dl" / "gcp-billing" / "acme-billing-extracts" / "detailed/2024/export-000000000000.parquet").read_bytes() \
        == EXPORT.read_bytes()
    imported = connect(tmp_path / "imported.duckdb")
    import_inventory(imported, [str(FIXTURES / "inventory" / "gcs")])
    query = "SELECT bucket, object_key, size_bytes, content_hash, crc32c FROM storage_objects ORDER BY ALL"
    assert pulled.execute(query).fetchall() == imported.execute(query).fetchall() != []
    assert len(report.downloaded) == 3

    again = pull_source(pulled, source(api, **settings), workdir=tmp_path / "dl")
    assert (again.downloaded, again.load, again.inventory) == ([], None, None)


def test_cloud_catalog_prices_feed_the_instance_catalogue(google, api, tmp_path):
    americas = ["us-central1", "us-east1"]
    google.skus = [
        sku("N2 Instance Core running in Americas", "CPU", "h", "0.031611", americas),
        sku("N2 Instance Ram running in Americas", "RAM", "GiBy.h", "0.004237", americas),
        sku("N2 Custom Instance Core running in Americas", "CPU", "h", "0.033", americas),
        sku("Commitment v1: N2 Cpu in Americas for 1 Year", "CPU", "h", "0.019915", americas, usage="Commit1Yr"),
        sku("A2 Instance Core running in Americas", "CPU", "h", "0.031611", ["us-central1"]),
        sku("A2 Instance Ram running in Americas", "RAM", "GiBy.h", "0.004237", ["us-central1"]),
        sku("Nvidia Tesla A100 GPU running in Americas", "GPU", "h", "2.933908", ["us-central1"]),
    ]
    con = connect(tmp_path / "store.duckdb")
    report = pull_source(con, source(api, catalog=True), workdir=tmp_path / "dl")
    prices = dict(con.execute(
        """SELECT type_key || '@' || region, hourly_price FROM instance_prices
           WHERE source = 'api:gcp-cloud-catalog'"""
    ).fetchall())
    assert prices["n2-standard-4@us-central1"] == Decimal("4") * Decimal("0.031611") + Decimal("16") * Decimal("0.004237")
    assert prices["n2-standard-4@us-east1"] == prices["n2-standard-4@us-central1"]
    [(vcpu, memory)] = con.execute(
        "SELECT vcpu, memory_gib FROM instance_catalogue WHERE provider_key = 'gcp' AND type_key = 'a2-highgpu-1g'"
    ).fetchall()
    expected = (vcpu * Decimal("0.031611") + memory * Decimal("0.004237") + Decimal("2.933908")).quantize(Decimal("0.000001"))
    assert prices["a2-highgpu-1g@us-central1"] == expected
    assert not [k for k in prices if k.startswith(("a3-", "e2-", "a2-ultragpu"))], "no SKU for their parts: left alone"
    assert report.prices == len(prices) > 0
    api.log.clear()
    again = pull_source(con, source(api, catalog=True), workdir=tmp_path / "dl")
    assert not [r for r in api.log if r.path.startswith("/v1/services")] and again.prices == 0
