"""`costaudit pull` for Azure: Azurite (blob storage) holds the export folders and their
manifests; a local HTTP server answers the Cost Management REST API (exports, run history) and
the managed-identity token endpoint that DefaultAzureCredential finds through the environment."""

from __future__ import annotations

import hashlib
import json
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest

from costaudit.config import SourceConfig
from costaudit.connectors.cloud import pull_source
from costaudit.connectors.cloud.common import PermissionDenied, ensure_pull_schema
from costaudit.connectors.imports_inventory import import_inventory
from costaudit.loader import load_paths
from costaudit.store import connect

from .cloud_servers import AZURITE_ACCOUNT, ApiServer, Azurite, Proxy, Request, clear_cloud_environment
from .conftest import FIXTURES

EXPORTS = FIXTURES / "azure" / "exports"
SCOPE = "/providers/Microsoft.Billing/billingAccounts/86310003"
IDENTITY_HEADER = "pull-test-identity-header-value"
ARM_TOKEN = "pull-test-arm-access-token"
STORAGE_ID = f"/subscriptions/0a1b2c3d-0000-4000-8000-000000000004/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{AZURITE_ACCOUNT}"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


class CostManagement:
    """The documented Cost Management REST answers for the fixture exports, plus the MSI token."""

    def __init__(self, api: ApiServer):
        self.api = api
        self.refuse: int | None = None  # answer every export call with this status
        self.fail_first: set[str] = set()  # paths answered 503 once
        self.runs: dict[str, list[dict]] = {}
        for manifest in sorted(EXPORTS.rglob("manifest.json")):
            doc = json.loads(manifest.read_text())
            info, name = doc["runInfo"], doc["exportConfig"]["exportName"]
            blob = f"costexports/{manifest.relative_to(EXPORTS).as_posix()}"
            # One export gives manifestFile as a URL, the other none (found by run id in the listing).
            manifest_file = f"https://{AZURITE_ACCOUNT}.blob.core.windows.net/exports/{blob}" if name == "northwind-mtd" else None
            self.runs.setdefault(name, []).append(self.run(name, info, manifest_file))
        self.runs["northwind-mtd"].append(self.run("northwind-mtd", {
            "runId": "99999999-aaaa-4bbb-8ccc-00000000000f", "submittedTime": "2024-03-25T04:00:00Z",
            "startDate": "2024-03-01T00:00:00", "endDate": "2024-03-31T00:00:00"}, None, status="Failed"))
        api.route(self.answer)

    @staticmethod
    def run(export: str, info: dict, manifest_file: str | None, status: str = "Completed") -> dict:
        return {
            "id": f"{SCOPE}/providers/Microsoft.CostManagement/exports/{export}/Run/{info['runId']}",
            "name": info["runId"], "type": "Microsoft.CostManagement/exports/Run", "eTag": None,
            "properties": {
                "executionType": "Scheduled", "status": status, "submittedBy": "System",
                "submittedTime": info["submittedTime"], "processingStartTime": info["submittedTime"],
                "processingEndTime": info["submittedTime"], "startDate": info["startDate"], "endDate": info["endDate"],
                "fileName": None, "manifestFile": manifest_file,
            },
        }

    def export(self, name: str, dataset: str) -> dict:
        return {
            "id": f"{SCOPE}/providers/Microsoft.CostManagement/exports/{name}", "name": name,
            "type": "Microsoft.CostManagement/exports", "eTag": '"1d4ff9fe66f1d10"',
            "properties": {
                "format": "Csv", "partitionData": True, "dataOverwriteBehavior": "CreateNewReport",
                "deliveryInfo": {"destination": {"type": "AzureBlob", "resourceId": STORAGE_ID, "container": "exports",
                                                 "rootFolderPath": "costexports"}},
                "definition": {"type": dataset, "timeframe": "MonthToDate", "dataSet": {"granularity": "Daily"}},
                "schedule": {"status": "Active", "recurrence": "Daily"},
            },
        }

    def answer(self, request: Request):
        if request.path == "/msi/token":
            if request.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                return 401, {"error": "invalid identity header"}, {}
            return 200, {"access_token": ARM_TOKEN, "expires_on": str(int(time.time()) + 3600),
                         "resource": request.query.get("resource"), "token_type": "Bearer"}, {}
        if not request.path.startswith(f"{SCOPE}/providers/Microsoft.CostManagement/exports"):
            return None
        if request.headers.get("Authorization") != f"Bearer {ARM_TOKEN}":
            return 401, {"error": {"code": "AuthenticationFailed", "message": "no token"}}, {}
        if request.path in self.fail_first:
            self.fail_first.discard(request.path)
            return 503, {"error": {"code": "ServiceUnavailable", "message": "try again"}}, {"Retry-After": "0"}
        if self.refuse:
            return self.refuse, {"error": {"code": "AuthorizationFailed", "message": (
                "The client 'x' does not have authorization to perform action "
                "'Microsoft.CostManagement/exports/read' over scope '" + SCOPE + "'")}}, {}
        if request.path.endswith("/exports"):
            return 200, {"value": [self.export("northwind-mtd", "ActualCost"),
                                   self.export("northwind-amortized", "AmortizedCost")]}, {}
        if request.path.endswith("/runHistory"):
            name = request.path.split("/exports/")[1].split("/")[0]
            return 200, {"value": self.runs.get(name, [])}, {}
        return None


@pytest.fixture(scope="module")
def api():
    server = ApiServer()
    yield server
    server.stop()


@pytest.fixture
def azure(azurite, api, monkeypatch):
    """Credentials only in the environment: the storage connection string and the identity endpoint."""
    from azure.storage.blob import BlobServiceClient

    clear_cloud_environment(monkeypatch)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{api.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    monkeypatch.setenv("AZURE_CONFIG_DIR", "/nonexistent-azure-config")
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    for container in ("exports", "inventory"):
        try:
            service.delete_container(container)
        except Exception:  # noqa: BLE001 - absent on the first test
            pass
        service.create_container(container)
    upload(service, "exports", EXPORTS, "costexports/")
    upload(service, "inventory", FIXTURES / "inventory" / "azure", "")
    api.httpd.routes.clear()
    api.log.clear()
    return CostManagement(api)


def upload(service, container: str, root: Path, prefix: str) -> None:
    client = service.get_container_client(container)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_blob(f"{prefix}{path.relative_to(root).as_posix()}", path.read_bytes(), overwrite=True)


def source(api: ApiServer, **settings) -> SourceConfig:
    base = {"scope": SCOPE, "management_endpoint": api.url, "max_attempts": 3}
    return SourceConfig(name="azure-ea", provider="azure", settings={**base, **settings})


def bills(con) -> dict[tuple, tuple[Decimal, int]]:
    rows = con.execute(
        """SELECT l.provider, l.billing_account_id, strftime(l.billing_period_start, '%Y-%m'), i.BillingCurrency,
                  l.source_export, l.delivery_id, sum(i.BilledCost), sum(i.EffectiveCost), count(*)
           FROM loads l JOIN line_items i ON i.x_LoadId = l.load_id WHERE l.status = 'active' GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:6]): tuple(r[6:]) for r in rows}


def test_pull_loads_the_same_totals_as_load_then_downloads_nothing(azure, api, tmp_path):
    pulled = connect(tmp_path / "pulled.duckdb")
    report = pull_source(pulled, source(api), workdir=tmp_path / "dl")
    loaded = connect(tmp_path / "loaded.duckdb")
    load_paths(loaded, [str(EXPORTS)])
    assert bills(pulled) == bills(loaded)
    assert {k[4:] for k in bills(pulled)} == {
        ("azure/northwind-mtd", "11111111-aaaa-4bbb-8ccc-000000000002"),
        ("azure/northwind-amortized", "11111111-aaaa-4bbb-8ccc-000000000003"),
    }
    # The older run of the month and the failed run are never downloaded.
    assert not [u for u in report.downloaded if "000000000001" in u or "00000000000f" in u]
    assert len(report.downloaded) == 5  # two manifests, three data blobs
    # Independent total: the latest actual-cost run's CSVs summed here.
    run = EXPORTS / "northwind-mtd/20240301-20240331/20240320T041002/11111111-aaaa-4bbb-8ccc-000000000002"
    import duckdb

    [(raw_total,)] = duckdb.connect().execute(
        f"SELECT sum(CAST(CostInBillingCurrency AS DECIMAL(38, 12))) FROM read_csv('{run}/*.csv', all_varchar = true)"
    ).fetchall()
    assert sum(v[0] for k, v in bills(pulled).items() if k[4] == "azure/northwind-mtd") == raw_total

    api.log.clear()
    again = pull_source(pulled, source(api), workdir=tmp_path / "dl")
    assert (again.downloaded, again.bytes_downloaded, again.load) == ([], 0, None)
    assert len(again.up_to_date) == 2
    assert [r.path.rsplit("/", 1)[-1] for r in api.log if r.path != "/msi/token"] == ["exports", "runHistory", "runHistory"]


def test_throttled_api_and_storage_calls_are_retried(azure, api, azurite, tmp_path, monkeypatch):
    azure.fail_first = {f"{SCOPE}/providers/Microsoft.CostManagement/exports"}
    proxy = Proxy(azurite.port)
    seen: set[str] = set()

    def busy_once(method, path, headers):
        if method == "GET" and "comp=list" not in path and not seen:
            seen.add(path)
            body = b"<?xml version=\"1.0\"?><Error><Code>ServerBusy</Code><Message>busy</Message></Error>"
            return 503, body, {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"}
        return None

    proxy.set_fault(busy_once)
    try:
        con = connect(tmp_path / "store.duckdb")
        report = pull_source(con, source(api, blob_endpoint=f"{proxy.url}/{AZURITE_ACCOUNT}"), workdir=tmp_path / "dl")
    finally:
        proxy.stop()
    assert report.load is not None and len(report.downloaded) == 5
    assert not azure.fail_first, "the exports call was refused once and tried again"
    blob_gets = [p for m, p, _ in proxy.log if m == "GET" and "comp=list" not in p]
    assert len(seen) == 1 and len(blob_gets) == 5 + 1


def test_an_interrupted_blob_download_resumes(azure, api, azurite, tmp_path):
    name = "costexports/northwind-amortized/20240301-20240331/20240320T050000/11111111-aaaa-4bbb-8ccc-000000000003/part_0_0001.csv"
    original = (EXPORTS / name.removeprefix("costexports/")).read_bytes()
    from azure.storage.blob import BlobServiceClient

    etag = BlobServiceClient.from_connection_string(azurite.connection_string()).get_blob_client(
        "exports", name).get_blob_properties().etag.strip('"')
    target = tmp_path / "dl" / "azure-ea" / AZURITE_ACCOUNT / "exports" / name
    target.parent.mkdir(parents=True)
    part = target.with_name(f".{target.name}.{hashlib.sha256(etag.encode()).hexdigest()[:12]}.part")
    part.write_bytes(original[:1000])
    proxy = Proxy(azurite.port)
    try:
        con = connect(tmp_path / "store.duckdb")
        pull_source(con, source(api, blob_endpoint=f"{proxy.url}/{AZURITE_ACCOUNT}"), workdir=tmp_path / "dl")
    finally:
        proxy.stop()
    ranges = [h.get("x-ms-range") or h.get("Range") for m, p, h in proxy.log if m == "GET" and p.split("?")[0].endswith(name)]
    assert ranges and all(r.startswith("bytes=1000-") for r in ranges)
    assert target.read_bytes() == original and not part.exists()


def test_missing_permissions_name_the_permission_and_the_resource(azure, api, azurite, tmp_path):
    con = connect(tmp_path / "store.duckdb")
    ensure_pull_schema(con)
    azure.refuse = 403
    with pytest.raises(PermissionDenied) as caught:
        pull_source(con, source(api), workdir=tmp_path / "dl")
    assert f"Microsoft.CostManagement/exports/read on {SCOPE}" in str(caught.value)
    azure.refuse = None
    proxy = Proxy(azurite.port)
    body = b"<?xml version=\"1.0\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>no</Message></Error>"
    proxy.set_fault(lambda m, p, h: (403, body, {"Content-Type": "application/xml",
                                                 "x-ms-error-code": "AuthorizationPermissionMismatch"})
                    if m == "GET" and p.split("?")[0].endswith(".csv") else None)
    try:
        with pytest.raises(PermissionDenied) as caught:
            pull_source(con, source(api, blob_endpoint=f"{proxy.url}/{AZURITE_ACCOUNT}"), workdir=tmp_path / "dl")
    finally:
        proxy.stop()
    message = str(caught.value)
    assert "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read" in message
    assert re.search(rf"on {AZURITE_ACCOUNT}/exports/costexports/\S+/part_\d_0001\.csv \(AuthorizationPermissionMismatch\)", message)
    assert con.execute("SELECT count(*) FROM loads").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM pull_state").fetchall() == [(0,)]


def test_blob_inventory_runs_fill_the_inventory_table(azure, api, tmp_path):
    pulled = connect(tmp_path / "pulled.duckdb")
    settings = {"inventory": ["inventory"]}
    report = pull_source(pulled, SourceConfig("inv", "azure", settings), workdir=tmp_path / "dl")
    assert report.inventory is not None
    imported = connect(tmp_path / "imported.duckdb")
    import_inventory(imported, [str(FIXTURES / "inventory" / "azure")])
    query = "SELECT storage_account, bucket, object_key, size_bytes, content_hash FROM storage_objects ORDER BY ALL"
    assert pulled.execute(query).fetchall() == imported.execute(query).fetchall() != []
    again = pull_source(pulled, SourceConfig("inv", "azure", settings), workdir=tmp_path / "dl")
    assert again.downloaded == [] and again.inventory is None

