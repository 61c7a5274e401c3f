"""Credentials never end up in the store, the output, the logs or the download folder.

One `costaudit pull` of an AWS, an Azure and a Google Cloud source (moto, Azurite and the local
REST server), with every credential given to the SDKs through the environment only; then the
store file, everything printed and logged (at INFO, as a scheduled job would log; the SDKs'
own DEBUG wire logs print signed request headers, session token included, and costaudit never
turns them on), and every downloaded file are searched for each credential value.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from .cloud_servers import AZURITE_KEY, ApiServer, Azurite, Moto, clear_cloud_environment
from .conftest import FIXTURES
from .fake_gcp import ACCESS_TOKEN as GCP_ACCESS_TOKEN
from .fake_gcp import FakeGoogle, service_account_key
from .test_pull_aws import upload
from .test_pull_azure import ARM_TOKEN, EXPORTS, IDENTITY_HEADER, SCOPE, CostManagement
from .test_pull_azure import upload as upload_blobs

AWS_KEY_ID = "AKIAPULLTESTCREDS0001"
AWS_SECRET = "pull-test-aws-secret-3a5f9c0e7d1b"
AWS_SESSION = "pull-test-aws-session-token-8e2d4b6a"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    moto = Moto()
    azurite = Azurite(tmp_path_factory.mktemp("azurite"))
    api = ApiServer()
    yield moto, azurite, api
    api.stop()
    azurite.stop()
    moto.stop()


def test_no_credential_is_stored_printed_logged_or_written(servers, monkeypatch, tmp_path, caplog):
    import boto3
    from azure.storage.blob import BlobServiceClient

    from costaudit.pull_cmd import pull

    moto, azurite, api = servers
    moto.reset()
    clear_cloud_environment(monkeypatch)
    key_file = tmp_path / "gcp-key.json"
    key = service_account_key(api.url)
    key_file.write_text(json.dumps(key))
    environment = {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_SESSION_TOKEN": AWS_SESSION,
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(),
        "IDENTITY_ENDPOINT": f"{api.url}/msi/token", "IDENTITY_HEADER": IDENTITY_HEADER,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    upload(s3, "acme-billing", FIXTURES / "aws" / "cur1", "exports/")
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string())
    if not any(c.name == "exports" for c in blobs.list_containers()):
        blobs.create_container("exports")
    upload_blobs(blobs, "exports", EXPORTS, "costexports/")
    api.httpd.routes.clear()
    CostManagement(api)
    FakeGoogle(api, FIXTURES / "gcp" / "detailed_export.parquet")

    config = tmp_path / "costaudit.toml"
    config.write_text(f"""
[store]
path = "store.duckdb"

[[sources]]
name = "aws"
provider = "aws"
bucket = "acme-billing"
prefix = "exports"
endpoint_url = "{moto.url}"

[[sources]]
name = "azure"
provider = "azure"
scope = "{SCOPE}"
management_endpoint = "{api.url}"

[[sources]]
name = "gcp"
provider = "gcp"
project = "finops-jobs"
bigquery_table = "finops-data.billing.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F7A8B9"
bigquery_endpoint = "{api.url}"
""", encoding="utf-8")
    caplog.set_level(logging.INFO)
    unused = {"db": tmp_path / "unused.duckdb"}  # the config's [store] path wins when --db is not given
    result = CliRunner().invoke(pull, ["--config", str(config)], obj=unused, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("aws", "azure", "gcp"):
        assert f"{name} ({name}): downloaded" in result.output
    again = CliRunner().invoke(pull, ["--config", str(config)], obj=unused, catch_exceptions=False)
    assert again.exit_code == 0 and again.output.count("downloaded 0 file(s), 0 bytes") == 3, again.output

    secrets = [AWS_SECRET, AWS_SESSION, AZURITE_KEY, IDENTITY_HEADER, ARM_TOKEN, GCP_ACCESS_TOKEN,
               key["private_key_id"], key["private_key"].splitlines()[1]]
    store = tmp_path / "store.duckdb"
    written = [store, *sorted(p for p in (tmp_path / "store.duckdb.d").rglob("*") if p.is_file())]
    assert len(written) > 10
    texts = {"output": result.output + again.output, "log": caplog.text}
    for path in written + list(tmp_path.glob("store.duckdb.wal")):
        texts[str(path)] = path.read_bytes().decode("latin-1")
    for secret in secrets:
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"a credential ({secret[:6]}...) appears in {leaks}"
    # The checks can fail: the key file itself (not ours to write) does hold them.
    assert key["private_key_id"] in Path(key_file).read_text()
