"""Google Cloud: billing export from BigQuery or Cloud Storage, storage inventories, accounts, prices.

```toml
[[sources]]
name = "gcp-billing"
provider = "gcp"
billing_account = "01A2B3-C4D5E6-F7A8B9"   # optional: checked, and its projects listed
project = "finops-jobs"                     # the project BigQuery jobs run (and are billed) in
bigquery_table = "finops-data.billing.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F7A8B9"
bucket = "acme-billing-extracts"            # optional: export files (Parquet/CSV/NDJSON) in Cloud Storage
prefix = "detailed/"
inventory = ["gs://acme-inventory/reports/"]   # optional: Storage Insights inventory reports
catalog = true                              # optional: refresh instance prices from the Cloud Catalog
```

Credentials come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
application-default login, the metadata server); endpoints can be pointed elsewhere with
``api_endpoint`` (Cloud Billing and Catalog), ``bigquery_endpoint`` and ``storage_endpoint``.

Export files in Cloud Storage are grouped by folder: when any object of a folder is new or
changed, the folder's files are loaded together (downloading only what changed), because a
folder usually holds the shards of one extract and loading one shard alone would replace a
billing period with part of it.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path, PurePosixPath
from typing import Any

from costaudit.errors import CostauditError, InputError, UsageError

from . import Collected, PullContext
from .common import PermissionDenied, Remote, attempts, check_settings, key_parts

SETTINGS: dict[str, type | tuple] = {
    "billing_account": str, "project": str, "bigquery_table": str, "location": str, "bucket": str, "prefix": str,
    "inventory": list, "catalog": bool, "api_endpoint": str, "bigquery_endpoint": str, "storage_endpoint": str,
    "max_attempts": int,
}
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
# Object names taken as billing export files in a bucket (anything else, say a README, is left).
_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_INVENTORY_SHARD = re.compile(r"^(?P<config>.+)_(?P<snapshot>\d{4}-\d{2}-\d{2}[^_/]*)_(?P<shard>\d+)\.(csv|parquet)$")


def _transient() -> tuple[type[BaseException], ...]:
    import requests
    from google.api_core import exceptions

    return (OSError, requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            exceptions.ServiceUnavailable, exceptions.InternalServerError)


TRANSIENT = _transient()


def check(source) -> None:
    """Validate a gcp source's settings."""
    check_settings(source.name, "gcp", source.settings, SETTINGS)
    settings = source.settings
    if not any(settings.get(k) for k in ("bigquery_table", "bucket", "inventory", "catalog", "billing_account")):
        raise UsageError(
            f"source {source.name!r} (gcp): set bigquery_table or bucket (billing export), inventory, catalog "
            "or billing_account"
        )
    table = settings.get("bigquery_table")
    if table is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+", table):
        raise UsageError(f"source {source.name!r} (gcp): bigquery_table must be project.dataset.table, not {table!r}")
    for uri in settings.get("inventory", []):
        if not isinstance(uri, str) or not uri.startswith("gs://"):
            raise UsageError(f"source {source.name!r} (gcp): inventory entries are gs://bucket/prefix URIs, not {uri!r}")
    attempts(settings)


# -- credentials, retries, errors -----------------------------------------------------------------

def credentials(ctx: PullContext):
    """Application Default Credentials (and the project to bill jobs to), once per source."""
    if "gcp_credentials" not in ctx.state:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            ctx.state["gcp_credentials"] = google.auth.default(scopes=SCOPES)
        except DefaultCredentialsError as exc:
            raise UsageError(
                "gcp: no Application Default Credentials (set GOOGLE_APPLICATION_CREDENTIALS, run "
                f"`gcloud auth application-default login`, or run with a service account) ({_first_line(exc)})"
            ) from None
    creds, project = ctx.state["gcp_credentials"]
    return creds, ctx.settings.get("project") or project


def retry(ctx: PullContext):
    """google-api-core Retry for throttling and server errors."""
    from google.api_core import exceptions
    from google.api_core.retry import Retry, if_exception_type

    budget = attempts(ctx.settings)
    return Retry(
        predicate=if_exception_type(exceptions.TooManyRequests, exceptions.ServiceUnavailable,
                                    exceptions.InternalServerError, exceptions.BadGateway, exceptions.GatewayTimeout),
        initial=0.5, multiplier=2.0, maximum=30.0, timeout=30.0 * budget,
    )


def options(endpoint: str | None):
    from google.api_core.client_options import ClientOptions

    return ClientOptions(api_endpoint=endpoint) if endpoint else None


def call(permission: str, resource: str, fn, *args, **kwargs):
    """Run one SDK call; refusals become PermissionDenied naming the permission and resource."""
    from google.api_core import exceptions
    from google.auth.exceptions import RefreshError, TransportError

    try:
        return fn(*args, **kwargs)
    except exceptions.Forbidden as exc:
        raise PermissionDenied("gcp", permission, resource, _reason(exc)) from None
    except exceptions.Unauthorized as exc:
        raise UsageError(f"gcp: the Application Default Credentials were refused for {resource} ({_reason(exc)})") from None
    except RefreshError as exc:
        raise UsageError(f"gcp: the Application Default Credentials could not be refreshed ({_first_line(exc)})") from None
    except exceptions.NotFound as exc:
        raise UsageError(f"gcp: {resource} was not found ({_reason(exc)})") from None
    except exceptions.PreconditionFailed:
        raise InputError(resource, "changed while it was being downloaded; run the pull again") from None
    except exceptions.GoogleAPICallError as exc:
        raise CostauditError(f"gcp: {resource}: {_first_line(exc)}") from None
    except TransportError as exc:
        raise CostauditError(f"gcp: cannot reach the service for {resource} ({_first_line(exc)})") from None


def _reason(exc) -> str:
    message = getattr(exc, "message", "") or str(exc)
    return _first_line(Exception(message))[:200]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- Cloud Storage ------------------------------------------------------------------------------

def storage_client(ctx: PullContext):
    from google.cloud import storage

    creds, project = credentials(ctx)
    return storage.Client(project=project or "-", credentials=creds,
                          client_options=options(ctx.settings.get("storage_endpoint")))


def list_objects(ctx: PullContext, client, bucket: str, prefix: str) -> dict[str, Any]:
    """name -> blob of every object under prefix."""
    return {
        blob.name: blob
        for blob in call("storage.objects.list", f"gs://{bucket}", lambda: list(
            client.list_blobs(bucket, prefix=prefix or None, retry=retry(ctx))))
        if not blob.name.endswith("/")
    }


def _md5_hex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return None


def remote(bucket: str, blob) -> Remote:
    return Remote(url=f"gs://{bucket}/{blob.name}", local=(bucket, *key_parts(blob.name)), size=int(blob.size or 0),
                  etag=str(blob.generation or blob.etag), md5=_md5_hex(blob.md5_hash))


def fetch(ctx: PullContext, client, bucket: str, blob, group: str) -> Path:
    """Download one object (the listed generation) with ranged reads that resume."""
    item = remote(bucket, blob)
    resource = f"gs://{bucket}/{blob.name}"

    def read_from(offset: int):
        pinned = client.bucket(bucket).blob(blob.name, generation=blob.generation)
        reader = call("storage.objects.get", resource, pinned.open, "rb", chunk_size=8 << 20, retry=retry(ctx))
        try:
            if offset:
                reader.seek(offset)
            while True:
                block = call("storage.objects.get", resource, reader.read, 8 << 20)
                if not block:
                    return
                yield block
        finally:
            reader.close()

    return ctx.cache.fetch(item, read_from, group)


def _collect_files(ctx: PullContext, collected: Collected) -> None:
    bucket = ctx.settings["bucket"]
    prefix = ctx.settings.get("prefix", "")
    client = storage_client(ctx)
    listing = list_objects(ctx, client, bucket, prefix)
    folders: dict[str, list[str]] = {}
    for name in sorted(listing):
        if name.lower().endswith(_DATA_SUFFIXES):
            folders.setdefault(str(PurePosixPath(name).parent), []).append(name)
    if not folders:
        ctx.report.notes.append(f"no billing export files under gs://{bucket}/{prefix}")
    for folder, names in sorted(folders.items()):
        if all(ctx.cache.is_current(remote(bucket, listing[n])) for n in names):
            ctx.report.up_to_date.append(f"gs://{bucket}/{folder}/")
            continue
        collected.billing.extend(fetch(ctx, client, bucket, listing[n], "billing") for n in names)


def _collect_inventory(ctx: PullContext, uri: str, collected: Collected) -> None:
    bucket, _, prefix = uri[5:].partition("/")
    client = storage_client(ctx)
    listing = list_objects(ctx, client, bucket, prefix)
    latest: dict[str, tuple[str, list[str]]] = {}
    for name in sorted(listing):
        match = _INVENTORY_SHARD.match(PurePosixPath(name).name)
        if not match:
            continue
        config = f"{PurePosixPath(name).parent}/{match.group('config')}"
        snapshot, shards = latest.get(config, ("", []))
        if match.group("snapshot") > snapshot:
            latest[config] = (match.group("snapshot"), [name])
        elif match.group("snapshot") == snapshot:
            shards.append(name)
    if not latest:
        ctx.report.notes.append(f"no inventory report under {uri}")
    for config, (_snapshot, names) in sorted(latest.items()):
        if all(ctx.cache.is_current(remote(bucket, listing[n])) for n in names):
            ctx.report.up_to_date.append(f"gs://{bucket}/{config}")
            continue
        collected.inventory.extend(fetch(ctx, client, bucket, listing[n], "inventory") for n in names)


# -- Cloud Billing: accounts and projects ------------------------------------------------------------

def _accounts(ctx: PullContext) -> None:
    from google.cloud import billing_v1

    creds, _project = credentials(ctx)
    client = billing_v1.CloudBillingClient(credentials=creds, transport="rest",
                                           client_options=options(ctx.settings.get("api_endpoint")))
    name = f"billingAccounts/{ctx.settings['billing_account']}"
    account = call("billing.accounts.get", name, client.get_billing_account, name=name, retry=retry(ctx))
    state = "open" if account.open_ else "closed"
    ctx.report.accounts.append(f"billing account {ctx.settings['billing_account']} ({account.display_name}, {state})")
    projects = call("billing.resourceAssociations.list", name,
                    lambda: list(client.list_project_billing_info(name=name, retry=retry(ctx))))
    for info in projects:
        enabled = "billing enabled" if info.billing_enabled else "billing disabled"
        ctx.report.accounts.append(f"project {info.project_id} ({enabled})")


# -- the provider interface ---------------------------------------------------------------------

def collect(ctx: PullContext) -> Collected:
    """Accounts, then new billing months or files, inventory reports and catalogue prices."""
    collected = Collected()
    settings = ctx.settings
    if settings.get("billing_account"):
        _accounts(ctx)
    if settings.get("bigquery_table"):
        from .gcp_bigquery import collect_months

        collect_months(ctx, collected)
    if settings.get("bucket"):
        _collect_files(ctx, collected)
    for uri in settings.get("inventory", []):
        _collect_inventory(ctx, uri, collected)
    if settings.get("catalog"):
        from .gcp_catalog import collect_prices

        collect_prices(ctx, collected)
    return collected


def after_load(ctx: PullContext, collected: Collected) -> None:
    """Write the catalogue prices fetched during collect."""
    if "catalog_skus" in collected.extra:
        from .gcp_catalog import store_prices

        store_prices(ctx, collected)
