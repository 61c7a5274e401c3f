"""AWS: legacy CUR and Data Exports (CUR 2.0, FOCUS) from S3, S3 Inventory, CloudWatch metrics.

```toml
[[sources]]
name = "aws-payer"
provider = "aws"
bucket = "acme-billing"            # where the exports are delivered
prefix = "cur"                     # the exports' S3 path prefix ("" for the bucket root)
region = "us-east-1"               # optional: the bucket's region
profile = "billing-read"           # optional: a named profile of the default chain (no keys here)
inventory = ["s3://acme-inventory/inventory/"]   # optional: S3 Inventory destinations
metrics = true                     # optional: CloudWatch metrics of the instances billed
metrics_regions = ["us-east-1"]    # optional: regions to ask (default: the regions in the bills)
```

Discovery lists the prefix once. A legacy CUR report is found by its period manifest
``<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json`` (per-assembly copies inside an assembly
folder are ignored: the period manifest names the latest assembly); a Data Export by
``<export>/metadata/BILLING_PERIOD=YYYY-MM/<name>Manifest.json``. A manifest whose ETag was
loaded before is not downloaded again; a new one is downloaded, and when its ``assemblyId`` or
``executionId`` is already in the load ledger its data is not.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from costaudit.connectors.aws_delivery import is_cur_manifest
from costaudit.errors import CostauditError, InputError, UsageError

from . import Collected, PullContext
from .common import (
    PermissionDenied,
    Remote,
    attempts,
    check_settings,
    chunks_of,
    key_parts,
    ledger_has,
    plain_md5,
    read_manifest,
)

SETTINGS: dict[str, type | tuple] = {
    "bucket": str, "prefix": str, "region": str, "profile": str, "endpoint_url": str,
    "inventory": list, "metrics": bool, "metrics_regions": list, "max_attempts": int,
}

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_CUR_PERIOD = re.compile(r"^(\d{6})\d{2}-\d{8}$")
_EXPORT_PERIOD = re.compile(r"^BILLING_PERIOD=(\d{4}-\d{2})$")
_INVENTORY_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z$")
_DENIED = {"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "Forbidden", "403", "UnauthorizedOperation"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidClientTokenId",
                    "UnrecognizedClientException", "InvalidToken"}


def _transient() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import (
        ConnectionClosedError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    return (OSError, ConnectionClosedError, IncompleteReadError, ReadTimeoutError, ResponseStreamingError)


TRANSIENT = _transient()


def check(source) -> None:
    """Validate an aws source's settings."""
    check_settings(source.name, "aws", source.settings, SETTINGS)
    settings = source.settings
    if not settings.get("bucket") and not settings.get("inventory") and not settings.get("metrics"):
        raise UsageError(f"source {source.name!r} (aws): set bucket (billing exports), inventory or metrics")
    for uri in settings.get("inventory", []):
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise UsageError(f"source {source.name!r} (aws): inventory entries are s3://bucket/prefix URIs, not {uri!r}")
    attempts(settings)


# -- SDK clients and errors -----------------------------------------------------------------------

def client(settings: dict[str, Any], service: str, region: str | None = None):
    """A boto3 client from the default credential chain, with standard-mode retries."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": attempts(settings)},
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    if settings.get("endpoint_url"):
        options["s3"] = {"addressing_style": "path"}
    session = boto3.Session(profile_name=settings.get("profile"))
    return session.client(
        service,
        region_name=region or settings.get("region") or session.region_name or "us-east-1",
        endpoint_url=settings.get("endpoint_url"),
        config=Config(**options),
    )


def call(permission: str, resource: str, fn, **kwargs):
    """Run one SDK call; turn refusals into PermissionDenied and missing credentials into one line."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ProfileNotFound

    try:
        return fn(**kwargs)
    except ClientError as exc:
        raise aws_error(exc, permission, resource) from None
    except NoCredentialsError:
        raise UsageError(
            "aws: no credentials found in the default chain (AWS_PROFILE or a profile in ~/.aws, "
            "environment variables, SSO, or an instance/container role)"
        ) from None
    except ProfileNotFound as exc:
        raise UsageError(f"aws: {exc}") from None
    except EndpointConnectionError as exc:
        raise CostauditError(f"aws: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')} for {resource}") from None


def aws_error(exc, permission: str, resource: str) -> CostauditError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _DENIED or status == 403 and code not in _BAD_CREDENTIALS:
        return PermissionDenied("aws", permission, resource, code)
    if code in _BAD_CREDENTIALS:
        return UsageError(f"aws: the credentials of the default chain were refused ({code}) while reading {resource}")
    if code in ("NoSuchBucket", "NoSuchKey", "404"):
        return UsageError(f"aws: {resource} does not exist ({code})")
    if code == "PreconditionFailed":
        return InputError(resource, "changed while it was being downloaded; run the pull again")
    return CostauditError(f"aws: {resource}: {code or status}: {error.get('Message', '')}".rstrip(": "))


# -- S3 listing and downloads -------------------------------------------------------------------

def list_objects(s3, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object under the prefix."""
    listing: dict[str, tuple[int, str]] = {}
    paginator = s3.get_paginator("list_objects_v2")
    pages = call("s3:ListBucket", f"arn:aws:s3:::{bucket}", lambda **kw: list(paginator.paginate(**kw)),
                 Bucket=bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", []):
            listing[item["Key"]] = (int(item["Size"]), str(item.get("ETag", "")).strip('"'))
    return listing


def remote(bucket: str, key: str, size: int, etag: str, md5: str | None = None) -> Remote:
    return Remote(url=f"s3://{bucket}/{key}", local=(bucket, *key_parts(key)), size=size, etag=etag,
                  md5=md5 if md5 is not None else plain_md5(etag))


def fetch(ctx: PullContext, s3, bucket: str, key: str, size: int, etag: str, group: str,
          md5: str | None = None, if_match: bool = True) -> Path:
    """Download (or find in the cache) one object, resuming with ranged GETs."""
    item = remote(bucket, key, size, etag, md5)
    resource = f"arn:aws:s3:::{bucket}/{key}"

    def read_from(offset: int):
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if if_match and etag:
            kwargs["IfMatch"] = f'"{etag}"'  # the version listed, never a newer one half-way
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
        response = call("s3:GetObject", resource, s3.get_object, **kwargs)
        if md5 is None and (response.get("SSECustomerAlgorithm") or response.get("ServerSideEncryption") == "aws:kms"):
            ctx.cache.unverifiable.add(item.url)  # the ETag of an SSE-KMS/SSE-C object is not its MD5
        yield from chunks_of(response["Body"])

    return ctx.cache.fetch(item, read_from, group)


# -- billing deliveries -------------------------------------------------------------------------

def _discover(listing: dict[str, tuple[int, str]]) -> list[tuple[str, str, str | None]]:
    """(kind, manifest key, billing month) of every delivery manifest in the listing."""
    found = []
    for key in sorted(listing):
        if not key.endswith("Manifest.json"):
            continue
        parts = PurePosixPath(key).parts
        parent = parts[-2] if len(parts) > 1 else ""
        if _UUID.match(parent):
            continue  # a per-assembly copy: the period manifest names the latest assembly
        export = _EXPORT_PERIOD.match(parent)
        if export and len(parts) > 2 and parts[-3] == "metadata":
            found.append(("export", key, export.group(1)))
            continue
        period = _CUR_PERIOD.match(parent)
        month = f"{period.group(1)[:4]}-{period.group(1)[4:]}" if period else _athena_month(parts)
        found.append(("cur", key, month))
    return found


def _athena_month(parts: tuple[str, ...]) -> str | None:
    text = "/".join(parts)
    match = re.search(r"year=(\d{4})/month=(\d{1,2})/", text)
    return f"{match.group(1)}-{int(match.group(2)):02d}" if match else None


def _in_listing(listing: dict[str, Any], prefix: str, key: str) -> str | None:
    """The bucket key a manifest entry names: as given, under the prefix, or by unique suffix."""
    text = key.strip()
    if text.lower().startswith("s3://"):
        text = text[5:].split("/", 1)[1] if "/" in text[5:] else ""
    text = text.lstrip("/")
    candidates = [text, f"{prefix.strip('/')}/{text}" if prefix.strip("/") else text]
    for candidate in candidates:
        if candidate in listing:
            return candidate
    suffix = [k for k in listing if k.endswith("/" + text)]
    return suffix[0] if len(suffix) == 1 else None


def _collect_billing(ctx: PullContext, s3, collected: Collected) -> None:
    bucket = ctx.settings["bucket"]
    prefix = ctx.settings.get("prefix", "").strip("/")
    listing = list_objects(s3, bucket, f"{prefix}/" if prefix else "")
    deliveries = _discover(listing)
    if not deliveries:
        ctx.report.notes.append(f"no CUR or Data Exports manifest under s3://{bucket}/{prefix}")
    for kind, key, month in deliveries:
        if not ctx.window.contains(month):
            continue
        size, etag = listing[key]
        label = f"s3://{bucket}/{key}"
        if ctx.cache.is_current(remote(bucket, key, size, etag)):
            ctx.report.up_to_date.append(label)
            continue
        manifest = fetch(ctx, s3, bucket, key, size, etag, "billing")
        doc = read_manifest(manifest)
        if kind == "cur":
            if not is_cur_manifest(doc):
                ctx.report.notes.append(f"{label}: not a CUR manifest (no assemblyId/reportKeys); skipped")
                continue
            report_name = str(doc.get("reportName") or PurePosixPath(key).name.removesuffix("-Manifest.json"))
            export, delivery_id, entries = f"aws-cur/{report_name}", str(doc["assemblyId"]), doc["reportKeys"]
            if not entries:
                raise InputError(label, "the CUR manifest lists no report files (reportKeys is empty)")
        else:
            parts = PurePosixPath(key).parts
            name = str(doc.get("exportName") or (parts[-4] if len(parts) > 3 else parts[0]))
            export, delivery_id = f"aws-data-exports/{name}", str(doc.get("executionId") or "") or None
            entries = _export_entries(doc)
            if not entries:
                folder = "/".join(parts[:-3] + ("data", parts[-2])) + "/"
                entries = [k for k in listing if k.startswith(folder)]
        if ledger_has(ctx.con, export, delivery_id):
            ctx.report.up_to_date.append(label)
            continue
        data = []
        for entry in entries:
            data_key = _in_listing(listing, prefix, str(entry))
            if data_key is None:
                raise InputError(label, f"the manifest lists {entry!r}, which is not in s3://{bucket}/{prefix} "
                                        "(the delivery is incomplete, or in another bucket)")
            data.append(fetch(ctx, s3, bucket, data_key, *listing[data_key], "billing"))
        if not data:
            raise InputError(label, f"no data files for billing period {month} in s3://{bucket}/{prefix}")
        collected.billing.extend([manifest, *data])


def _export_entries(doc: dict) -> list:
    entries = doc.get("dataFiles") or []
    keys = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            entry = entry.get("key") or entry.get("uri") or entry.get("s3Uri") or entry.get("path") or ""
        keys.append(entry)
    return keys


# -- S3 Inventory -------------------------------------------------------------------------------

def _collect_inventory(ctx: PullContext, s3, uri: str, collected: Collected) -> None:
    bucket, _, prefix = uri[5:].partition("/")
    listing = list_objects(s3, bucket, prefix)
    latest: dict[str, str] = {}
    for key in listing:
        parts = PurePosixPath(key).parts
        if parts[-1] == "manifest.json" and len(parts) > 1 and _INVENTORY_TIME.match(parts[-2]):
            config_key = "/".join(parts[:-2])
            latest[config_key] = max(latest.get(config_key, ""), key)
    if not latest:
        ctx.report.notes.append(f"no S3 Inventory manifest under {uri}")
    for key in sorted(latest.values()):
        size, etag = listing[key]
        label = f"s3://{bucket}/{key}"
        if ctx.cache.is_current(remote(bucket, key, size, etag)):
            ctx.report.up_to_date.append(label)
            continue
        manifest = fetch(ctx, s3, bucket, key, size, etag, "inventory")
        doc = read_manifest(manifest)
        files = doc.get("files")
        if not isinstance(files, list) or not files:
            raise InputError(label, "the S3 Inventory manifest lists no files")
        destination = str(doc.get("destinationBucket") or bucket).rsplit(":", 1)[-1]
        data = []
        for entry in files:
            data_key = str(entry.get("key", "")) if isinstance(entry, dict) else ""
            md5 = str(entry.get("MD5checksum") or "").lower() or None
            if destination == bucket and data_key in listing:
                data.append(fetch(ctx, s3, bucket, data_key, *listing[data_key], "inventory", md5=md5))
            else:
                data.append(fetch(ctx, s3, destination, data_key, int(entry.get("size", 0)), md5 or "", "inventory",
                                  md5=md5, if_match=False))
        collected.inventory.extend([manifest, *data])


# -- the provider interface ---------------------------------------------------------------------

def collect(ctx: PullContext) -> Collected:
    """List and download what is new: billing deliveries and inventory reports."""
    collected = Collected()
    settings = ctx.settings
    s3 = client(settings, "s3")
    if settings.get("bucket"):
        _collect_billing(ctx, s3, collected)
    for uri in settings.get("inventory", []):
        _collect_inventory(ctx, s3, uri, collected)
    return collected


def after_load(ctx: PullContext, collected: Collected) -> None:
    """CloudWatch metrics of the instances in the loaded bills, when asked for."""
    if ctx.settings.get("metrics"):
        from .aws_metrics import pull_metrics

        pull_metrics(ctx)
