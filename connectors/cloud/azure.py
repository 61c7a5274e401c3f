"""Azure: Cost Management exports (found through their runs) and blob inventory reports.

```toml
[[sources]]
name = "azure-ea"
provider = "azure"
scope = "/providers/Microsoft.Billing/billingAccounts/86310003"   # where the exports are defined
exports = ["northwind-mtd"]        # optional: only these exports (default: every cost export)
blob_endpoint = "https://stexports.blob.core.windows.net"          # optional: else from the export
inventory = ["inventory"]          # optional: container[/prefix] holding blob inventory runs
```

The Cost Management API lists the exports at the scope (azure-mgmt-costmanagement) and each
export's run history; the latest completed run per month names its ``manifest.json``. A run
whose id is in the load ledger is not downloaded again; otherwise the manifest and the blobs it
lists are downloaded (azure-storage-blob), checked against the manifest's ``byteCount`` and the
blob's Content-MD5, and loaded through the Azure delivery code, which picks the run it describes.

Credentials: ``AZURE_STORAGE_CONNECTION_STRING`` from the environment for blob storage when set,
otherwise ``DefaultAzureCredential`` (environment, workload identity, managed identity, Azure
CLI ...) for both APIs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from costaudit.connectors.formats.azure import DATASET_FORMATS
from costaudit.errors import CostauditError, InputError, UsageError

from . import Collected, PullContext
from .common import PermissionDenied, Remote, attempts, check_settings, key_parts, ledger_has, read_manifest

SETTINGS: dict[str, type | tuple] = {
    "scope": str, "exports": list, "blob_endpoint": str, "account_url": str, "management_endpoint": str,
    "inventory": list, "max_attempts": int,
}
EXPORTS_READ = "Microsoft.CostManagement/exports/read"
BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read (role Storage Blob Data Reader)"


def _transient() -> tuple[type[BaseException], ...]:
    from azure.core.exceptions import IncompleteReadError, ServiceResponseError

    return (OSError, IncompleteReadError, ServiceResponseError)


TRANSIENT = _transient()


def check(source) -> None:
    """Validate an azure source's settings."""
    check_settings(source.name, "azure", source.settings, SETTINGS)
    if not source.settings.get("scope") and not source.settings.get("inventory"):
        raise UsageError(f"source {source.name!r} (azure): set scope (Cost Management exports) or inventory")
    if source.settings.get("inventory") and not _endpoint_setting(source.settings) and not _connection_string():
        raise UsageError(f"source {source.name!r} (azure): inventory needs blob_endpoint (the storage account's URL)")
    attempts(source.settings)


def _endpoint_setting(settings: dict[str, Any]) -> str | None:
    return settings.get("blob_endpoint") or settings.get("account_url")


def _connection_string() -> str | None:
    return os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or None


def _http_options(url: str) -> dict[str, Any]:
    # Bearer tokens are refused over plain HTTP unless asked; only a local test endpoint is http.
    return {"enforce_https": False} if url.lower().startswith("http://") else {}


# -- errors ------------------------------------------------------------------------------------

def _call(permission: str, resource: str, fn, *args, **kwargs):
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        return fn(*args, **kwargs)
    except ClientAuthenticationError as exc:
        raise UsageError(
            f"azure: no usable credentials for {resource}: the default chain (environment, workload or managed "
            f"identity, Azure CLI) gave none or was refused ({_first_line(exc)})"
        ) from None
    except ResourceNotFoundError as exc:
        raise UsageError(f"azure: {resource} was not found ({_first_line(exc)})") from None
    except HttpResponseError as exc:
        if exc.status_code == 403:
            code = getattr(exc, "error_code", None) or (getattr(exc, "error", None) and exc.error.code)
            raise PermissionDenied("azure", permission, resource, str(code or exc.reason or "403")) from None
        if exc.status_code == 412:
            raise InputError(resource, "changed while it was being downloaded; run the pull again") from None
        raise CostauditError(f"azure: {resource}: HTTP {exc.status_code}: {_first_line(exc)}") from None
    except ServiceRequestError as exc:
        raise CostauditError(f"azure: cannot reach the service for {resource} ({_first_line(exc)})") from None


def _text(value: Any) -> str:
    """An SDK enum or string as its plain value."""
    return str(getattr(value, "value", value) or "")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _credential():
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


# -- blob storage ------------------------------------------------------------------------------

def _parse_connection_string(text: str) -> dict[str, str]:
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    return {k.strip(): v.strip() for k, v in parts.items()}


class Blobs:
    """Blob clients of one storage account, with retries set for the account's throttling."""

    def __init__(self, ctx: PullContext, account: str | None, endpoint: str | None):
        from azure.storage.blob import BlobServiceClient, ExponentialRetry

        # Backoff 1 s, then 1+3, 1+9 ... (the SDK's default starts at 15 s).
        retry = ExponentialRetry(initial_backoff=1, increment_base=3, random_jitter_range=1,
                                 retry_total=attempts(ctx.settings) - 1)
        options = {"retry_policy": retry, "connection_timeout": 20, "read_timeout": 120}
        connection = _connection_string()
        parsed = _parse_connection_string(connection) if connection else {}
        if parsed and (account is None or parsed.get("AccountName", "").lower() == account.lower()):
            credential: Any = (
                {"account_name": parsed["AccountName"], "account_key": parsed["AccountKey"]}
                if parsed.get("AccountKey") else parsed.get("SharedAccessSignature")
            )
            endpoint = endpoint or parsed.get("BlobEndpoint") or f"https://{parsed['AccountName']}.blob.core.windows.net"
        else:
            if not account and not endpoint:
                raise UsageError("azure: the storage account is unknown; set blob_endpoint")
            endpoint = endpoint or f"https://{account}.blob.core.windows.net"
            credential = _credential()
        self.endpoint = endpoint.rstrip("/")
        self.account = account or urlsplit(self.endpoint).hostname.split(".")[0]
        self.service = BlobServiceClient(account_url=self.endpoint, credential=credential, **options)
        self.ctx = ctx

    def url(self, container: str, name: str) -> str:
        return f"azure://{self.account}/{container}/{name}"

    def list(self, container: str, prefix: str) -> dict[str, tuple[int, str, str | None]]:
        """name -> (size, etag, Content-MD5 hex) of the blobs under prefix."""
        client = self.service.get_container_client(container)
        resource = f"{self.account}/{container}/{prefix}"
        found = {}
        for blob in _call(BLOB_READ, resource,
                          lambda: list(client.list_blobs(name_starts_with=prefix or None))):
            md5 = blob.content_settings.content_md5 if blob.content_settings else None
            found[blob.name] = (int(blob.size), str(blob.etag).strip('"'), bytes(md5).hex() if md5 else None)
        return found

    def fetch(self, container: str, name: str, info: tuple[int, str, str | None], group: str) -> Path:
        from azure.core import MatchConditions

        size, etag, md5 = info
        item = Remote(url=self.url(container, name), local=(self.account, container, *key_parts(name, "blob name")),
                      size=size, etag=etag, md5=md5)
        blob = self.service.get_blob_client(container, name)

        def read_from(offset: int):
            stream = _call(BLOB_READ, f"{self.account}/{container}/{name}", blob.download_blob, offset=offset,
                           etag=etag, match_condition=MatchConditions.IfNotModified, max_concurrency=1)
            yield from stream.chunks()

        return self.ctx.cache.fetch(item, read_from, group)


def _account_of(resource_id: str | None) -> str | None:
    parts = (resource_id or "").rstrip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "storageaccounts" in lowered:
        index = lowered.index("storageaccounts")
        return parts[index + 1] if index + 1 < len(parts) else None
    return None


# -- Cost Management exports ---------------------------------------------------------------------

def _cost_client(ctx: PullContext):
    from azure.mgmt.costmanagement import CostManagementClient

    endpoint = ctx.settings.get("management_endpoint")
    return CostManagementClient(_credential(), base_url=endpoint, retry_total=attempts(ctx.settings) - 1,
                                retry_backoff_factor=0.8)


def _latest_runs(runs: list) -> dict[str, Any]:
    """month -> the latest completed run of that month."""
    latest: dict[str, Any] = {}
    for run in runs:
        props = run.properties
        if props is None or _text(props.status).lower() != "completed":
            continue
        start = props.start_date
        month = f"{start:%Y-%m}" if isinstance(start, datetime) else ""
        stamp = props.submitted_time or datetime.min.replace(tzinfo=UTC)
        if month not in latest or stamp > (latest[month].properties.submitted_time or datetime.min.replace(tzinfo=UTC)):
            latest[month] = run
    return latest


def _manifest_name(run, container: str, listing: dict[str, Any]) -> str | None:
    """The manifest blob a run names (manifestFile: a URL or a container path), or finds by run id."""
    text = str(run.properties.manifest_file or "").strip()
    if text:
        if "://" in text:
            path = unquote(urlsplit(text).path).lstrip("/").split("/")
            # https://account.blob.core.windows.net/<container>/<name>, or <endpoint>/<account>/<container>/<name>
            if container in path:
                path = path[path.index(container) + 1:]
            text = "/".join(path)
        return text.lstrip("/")
    run_id = str(run.name or "").rsplit("/", 1)[-1]
    found = [name for name in listing if name.endswith("manifest.json") and f"/{run_id}/" in f"/{name}"]
    return found[0] if len(found) == 1 else None


def _collect_exports(ctx: PullContext, collected: Collected) -> None:
    scope = ctx.settings["scope"].strip("/")
    client = _cost_client(ctx)
    options = _http_options(ctx.settings.get("management_endpoint") or "https://")
    result = _call(EXPORTS_READ, f"/{scope}", client.exports.list, scope, **options)
    wanted = set(ctx.settings.get("exports") or [])
    exports = [e for e in (result.value or []) if not wanted or e.name in wanted]
    missing = wanted - {e.name for e in exports}
    if missing:
        raise UsageError(f"azure: no export named {', '.join(sorted(missing))} at /{scope}")
    blob_sets: dict[tuple[str, str], Blobs] = {}
    for export in exports:
        props = export.properties
        dataset = _text(getattr(props.definition, "type", None)).lower() if props else ""
        if dataset and dataset not in DATASET_FORMATS:
            ctx.report.notes.append(f"export {export.name}: dataset {dataset} is not cost data; skipped")
            continue
        destination = props.delivery_info.destination
        account = _account_of(destination.resource_id) or destination.storage_account
        container = destination.container
        root = (destination.root_folder_path or "").strip("/")
        key = (str(account), container)
        if key not in blob_sets:
            blob_sets[key] = Blobs(ctx, account, _endpoint_setting(ctx.settings))
        blobs = blob_sets[key]
        history = _call(EXPORTS_READ, f"/{scope}/providers/Microsoft.CostManagement/exports/{export.name}",
                        client.exports.get_execution_history, scope, export.name, **options)
        listing: dict[str, Any] | None = None
        for month, run in sorted(_latest_runs(history.value or []).items()):
            if not ctx.window.contains(month):
                continue
            run_id = str(run.name or "").rsplit("/", 1)[-1]
            label = f"export {export.name} run {run_id} ({month})"
            if ledger_has(ctx.con, f"azure/{export.name}", run_id):
                ctx.report.up_to_date.append(label)
                continue
            if listing is None:
                listing = blobs.list(container, f"{root}/" if root else "")
            manifest_name = _manifest_name(run, container, listing)
            if manifest_name is None or manifest_name not in listing:
                raise InputError(label, f"its manifest ({manifest_name or 'manifest.json'}) is not in "
                                        f"{blobs.account}/{container}; was the run's folder deleted?")
            manifest = blobs.fetch(container, manifest_name, listing[manifest_name], "billing")
            doc = read_manifest(manifest)
            delivered = str((doc.get("runInfo") or {}).get("runId") or run_id)
            if ledger_has(ctx.con, f"azure/{export.name}", delivered):
                ctx.report.up_to_date.append(label)
                continue
            data = []
            for entry in doc.get("blobs") or []:
                name = str(entry.get("blobName") or "") if isinstance(entry, dict) else ""
                name = name.split(f"{container}/", 1)[1] if name.startswith(f"{container}/") and name not in listing else name
                if name not in listing:
                    raise InputError(str(manifest), f"lists blob {name!r}, which is not in {blobs.account}/{container}")
                expected = entry.get("byteCount")
                if isinstance(expected, int) and expected and expected != listing[name][0]:
                    raise InputError(str(manifest), f"says {name} has {expected} bytes but the blob has {listing[name][0]}")
                data.append(blobs.fetch(container, name, listing[name], "billing"))
            collected.billing.extend([manifest, *data])


# -- blob inventory ------------------------------------------------------------------------------

def _collect_inventory(ctx: PullContext, target: str, collected: Collected) -> None:
    container, _, prefix = target.strip("/").partition("/")
    blobs = Blobs(ctx, None, _endpoint_setting(ctx.settings))
    listing = blobs.list(container, f"{prefix}/" if prefix else "")
    latest: dict[str, str] = {}
    for name in listing:
        if name.endswith("-manifest.json"):
            rule = PurePosixPath(name).name.removesuffix("-manifest.json")
            latest[rule] = max(latest.get(rule, ""), name)  # run folders are YYYY/MM/DD/HH-MM-SS
    if not latest:
        ctx.report.notes.append(f"no blob inventory manifest in {blobs.account}/{container}/{prefix}")
    for name in sorted(latest.values()):
        size, etag, _md5 = listing[name]
        item = Remote(blobs.url(container, name), (blobs.account, container, *key_parts(name)), size, etag)
        if ctx.cache.is_current(item):
            ctx.report.up_to_date.append(item.url)
            continue
        manifest = blobs.fetch(container, name, listing[name], "inventory")
        doc = read_manifest(manifest)
        data = []
        for entry in doc.get("files") or []:
            blob = str(entry.get("blob") or "") if isinstance(entry, dict) else ""
            if blob not in listing:
                raise InputError(str(manifest), f"lists {blob!r}, which is not in {blobs.account}/{container}")
            data.append(blobs.fetch(container, blob, listing[blob], "inventory"))
        collected.inventory.extend([manifest, *data])


# -- the provider interface ---------------------------------------------------------------------

def collect(ctx: PullContext) -> Collected:
    """List exports and runs, download the latest new run per month, and new inventory runs."""
    collected = Collected()
    if ctx.settings.get("scope"):
        _collect_exports(ctx, collected)
    for target in ctx.settings.get("inventory", []):
        _collect_inventory(ctx, str(target), collected)
    return collected


def after_load(ctx: PullContext, collected: Collected) -> None:
    """Nothing to do after loading for Azure."""
