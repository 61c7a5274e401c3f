"""Import storage inventories, in each provider's own format, into ``storage_objects``.

Accepted (give files or folders; kinds are told apart by content, never by name):

* **S3 Inventory**, CSV or Parquet, through its ``manifest.json``: the manifest names the data
  files (found beside it by their key's trailing path), their MD5 (checked) and, for CSV, the
  column order (``fileSchema``; S3 Inventory CSV has no header, and its keys are URL-encoded).
  S3 Inventory Parquet files may also be given without the manifest (they carry column names).
* **Google Cloud Storage inventory reports**, CSV with a header (or Parquet): ``bucket``,
  ``name``, ``size``, ``md5Hash``/``crc32c`` (base64), ``storageClass``, ``location`` ...
* **Azure blob inventory**, CSV or Parquet: ``Name`` (container/blob path), ``Content-Length``,
  ``Content-MD5`` (base64), ``AccessTier`` ... The storage account comes from the run's
  ``<rule>-manifest.json`` (its ``endpoint``) or from ``--account``.

Content hashes are stored as lower-case hex with their kind, because only hashes of one kind
compare: ``md5`` (an S3 ETag of a single-part, non-KMS upload, a GCS md5Hash, an Azure
Content-MD5), ``multipart-etag`` (an S3 ETag ending in ``-<parts>``: an MD5 of part MD5s, equal
for equal content only when the part size was equal too), ``opaque-etag`` (an S3 ETag of an
SSE-KMS/SSE-C object: not a digest of the content) and ``crc32c`` (GCS; 32 bits, weak).

An inventory is a full listing of a bucket (container) at one time: importing it replaces the
objects stored earlier for the same bucket, in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from costaudit.errors import InputError

from .base import FILE_COLUMN, Cols
from .files import SourceFile, describe, expand_paths, sniff
from .sql import install_macros, quote_ident, quote_literal

# storage_objects columns and types (see costaudit.rules.schema).
COLUMN_TYPES = {
    "provider": "VARCHAR", "storage_account": "VARCHAR", "bucket": "VARCHAR", "location": "VARCHAR",
    "object_key": "VARCHAR", "version_id": "VARCHAR", "is_latest": "BOOLEAN", "size_bytes": "BIGINT",
    "last_modified": "TIMESTAMPTZ", "storage_class": "VARCHAR", "region": "VARCHAR", "billing_account_id": "VARCHAR",
    "content_hash": "VARCHAR", "hash_kind": "VARCHAR", "crc32c": "VARCHAR", "inventory_format": "VARCHAR",
    "inventory_time": "TIMESTAMPTZ", "source_file": "VARCHAR", "imported_at": "TIMESTAMPTZ",
}
COLUMNS = tuple(COLUMN_TYPES)


@dataclass
class InventoryImport:
    """What an import stored, per location: objects and bytes."""

    files: list[str]
    locations: dict[str, tuple[int, int]] = field(default_factory=dict)  # location -> (objects, bytes)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Part:
    sql: str
    label: str


def _files_sql(files: list[SourceFile], *, header: bool = True, names: list[str] | None = None) -> str:
    paths = "[" + ", ".join(quote_literal(str(f.path)) for f in files) + "]"
    file_col = quote_literal(FILE_COLUMN)
    if files[0].kind == "parquet":
        return f"read_parquet({paths}, union_by_name = true, filename = {file_col})"
    options = f"header = {'true' if header else 'false'}, all_varchar = true, filename = {file_col}, "
    options += f"compression = {quote_literal(files[0].compression)}, nullstr = [''], sample_size = -1"
    if names:
        options += ", delim = ',', quote = '\"', names = [" + ", ".join(quote_literal(n) for n in names) + "]"
    return f"read_csv({paths}, {options})"


def _b64_hex(expr: str) -> str:
    return f"nullif(lower(hex(try(from_base64({expr})))), '')"


def _bool(expr: str) -> str:
    return f"TRY_CAST({expr} AS BOOLEAN)"


def _common(values: dict[str, str]) -> str:
    return ",\n  ".join(f"CAST({values.get(c, 'NULL')} AS {t}) AS {quote_ident(c)}" for c, t in COLUMN_TYPES.items())


def _s3_sql(cols: Cols, relation: str, fmt: str, meta: dict[str, str], url_encoded: bool) -> str:
    key = cols.str("Key", "key")
    etag = f"lower(trim(both '\"' FROM {cols.str('ETag', 'e_tag')}))"
    encryption = f"upper(coalesce({cols.str('EncryptionStatus', 'encryption_status')}, 'NOT-SSE'))"
    kind = (
        f"CASE WHEN {etag} IS NULL THEN NULL "
        f"WHEN regexp_full_match({etag}, '[0-9a-f]{{32}}-[0-9]+') THEN 'multipart-etag' "
        f"WHEN regexp_full_match({etag}, '[0-9a-f]{{32}}') AND {encryption} IN ('NOT-SSE', 'SSE-S3') THEN 'md5' "
        "ELSE 'opaque-etag' END"
    )
    bucket = cols.str("Bucket", "bucket")
    values = {
        "provider": "'AWS'",
        "bucket": bucket,
        "location": f"'s3://' || {bucket}",
        "object_key": f"url_decode({key})" if url_encoded else key,
        "version_id": cols.str("VersionId", "version_id"),
        "is_latest": f"coalesce({_bool(cols.str('IsLatest', 'is_latest'))}, true)",
        "size_bytes": f"TRY_CAST({cols.str('Size', 'size')} AS BIGINT)",
        "last_modified": cols.ts("LastModifiedDate", "last_modified_date"),
        "storage_class": cols.str("StorageClass", "storage_class"),
        "content_hash": etag,
        "hash_kind": kind,
        "inventory_format": quote_literal(fmt),
        "source_file": quote_ident(FILE_COLUMN),
    }
    values.update(meta)
    deleted = _bool(cols.str("IsDeleteMarker", "is_delete_marker"))
    return f"SELECT {_common(values)} FROM {relation} WHERE coalesce({deleted}, false) = false"


def _gcs_sql(cols: Cols, relation: str, fmt: str, meta: dict[str, str]) -> str:
    md5 = _b64_hex(cols.str("md5Hash"))
    crc = _b64_hex(cols.str("crc32c"))
    bucket = cols.str("bucket")
    values = {
        "provider": "'Google Cloud'",
        "bucket": bucket,
        "location": f"'gs://' || {bucket}",
        "object_key": cols.str("name"),
        "version_id": cols.str("generation"),
        "is_latest": f"({cols.str('timeDeleted')} IS NULL)",
        "size_bytes": f"TRY_CAST({cols.str('size')} AS BIGINT)",
        "last_modified": cols.ts("updated", "timeCreated"),
        "storage_class": cols.str("storageClass"),
        "region": f"lower({cols.str('location')})",
        "content_hash": f"coalesce({md5}, {crc})",
        "hash_kind": f"CASE WHEN {md5} IS NOT NULL THEN 'md5' WHEN {crc} IS NOT NULL THEN 'crc32c' END",
        "crc32c": crc,
        "inventory_format": quote_literal(fmt),
        "source_file": quote_ident(FILE_COLUMN),
    }
    values.update(meta)
    return f"SELECT {_common(values)} FROM {relation}"


def _azure_sql(cols: Cols, relation: str, fmt: str, meta: dict[str, str], account: str) -> str:
    name = cols.str("Name")
    container = cols.str("Container", "ContainerName", "Container Name")
    # The blob inventory's Name is "<container>/<blob path>" unless a container column is present.
    container_expr = f"coalesce({container}, split_part({name}, '/', 1))"
    blob = f"CASE WHEN {container} IS NOT NULL THEN {name} ELSE substr({name}, strpos({name}, '/') + 1) END"
    md5 = _b64_hex(cols.str("Content-MD5"))
    current = _bool(cols.str("IsCurrentVersion"))
    snapshot = cols.str("Snapshot")
    account_sql = quote_literal(account)
    values = {
        "provider": "'Microsoft'",
        "storage_account": account_sql,
        "bucket": container_expr,
        "location": f"'https://' || {account_sql} || '.blob.core.windows.net/' || {container_expr}",
        "object_key": blob,
        "version_id": cols.str("VersionId"),
        "is_latest": f"({snapshot} IS NULL AND coalesce({current}, true))",
        "size_bytes": f"TRY_CAST({cols.str('Content-Length')} AS BIGINT)",
        "last_modified": cols.ts("Last-Modified", "Creation-Time"),
        "storage_class": cols.str("AccessTier"),
        "content_hash": md5,
        "hash_kind": f"CASE WHEN {md5} IS NOT NULL THEN 'md5' END",
        "inventory_format": quote_literal(fmt),
        "source_file": quote_ident(FILE_COLUMN),
    }
    values.update(meta)
    deleted = _bool(cols.str("Deleted"))
    return f"SELECT {_common(values)} FROM {relation} WHERE coalesce({deleted}, false) = false"


def _meta(region: str | None, billing_account: str | None, inventory_time: datetime | None) -> dict[str, str]:
    now = datetime.now(UTC).isoformat()
    meta = {
        "region": f"lower({quote_literal(region)})" if region else None,
        "billing_account_id": quote_literal(billing_account) if billing_account else None,
        "inventory_time": f"CAST({quote_literal(inventory_time.isoformat())} AS TIMESTAMPTZ)" if inventory_time else None,
        "imported_at": f"CAST({quote_literal(now)} AS TIMESTAMPTZ)",
    }
    return {k: v for k, v in meta.items() if v is not None}


def _resolve(manifest: Path, key: str) -> Path:
    """A data file a manifest names by its bucket key: found beside the manifest or above it,
    matched on the key's trailing path (the local copy keeps only part of the key)."""
    parts = [p for p in key.split("/") if p]
    for ancestor in [manifest.parent, *manifest.parents[:4]]:
        for start in range(len(parts)):
            candidate = ancestor.joinpath(*parts[start:])
            if candidate.is_file():
                return candidate.resolve()
    raise InputError(str(manifest), f"data file {key!r} named by the manifest was not found near it")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _s3_manifest(con, path: Path, doc: dict, opts: dict) -> tuple[_Part, set[Path]]:
    data: list[SourceFile] = []
    for entry in doc.get("files") or []:
        local = _resolve(path, str(entry.get("key", "")))
        expected = str(entry.get("MD5checksum", "")).lower()
        if expected and _md5(local) != expected:
            raise InputError(str(local), "does not match the MD5 checksum in its manifest (incomplete download?)")
        data.append(sniff(local, expected="a storage inventory"))
    if not data:
        raise InputError(str(path), "the manifest lists no data files")
    file_format = str(doc.get("fileFormat", "")).upper()
    created = doc.get("creationTimestamp")
    when = datetime.fromtimestamp(int(created) / 1000, UTC) if str(created or "").isdigit() else None
    meta = _meta(opts.get("region"), opts.get("billing_account"), when)
    if file_format == "CSV":
        names = [n.strip() for n in str(doc.get("fileSchema", "")).split(",") if n.strip()]
        if not {"Bucket", "Key"} <= set(names):
            raise InputError(str(path), f"fileSchema {doc.get('fileSchema')!r} lacks Bucket and Key")
        relation = _files_sql(data, header=False, names=names)
        cols = Cols(types=dict.fromkeys(names, "VARCHAR"), source=str(path))
        sql = _s3_sql(cols, relation, "s3-inventory-csv", meta, url_encoded=True)
    elif file_format == "PARQUET":
        cols = describe(con, data)
        sql = _s3_sql(cols, _files_sql(data), "s3-inventory-parquet", meta, url_encoded=False)
    else:
        raise InputError(str(path), f"S3 Inventory fileFormat {file_format or '(none)'} is not supported; use CSV or Parquet")
    return _Part(sql, str(path)), {f.path for f in data}


def _azure_manifest(path: Path, doc: dict) -> tuple[str, list[Path], datetime | None]:
    endpoint = str(doc.get("endpoint", ""))
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    account = host.split(".", 1)[0]
    if not account:
        raise InputError(str(path), "the blob inventory manifest has no endpoint naming the storage account")
    files = [_resolve(path, str(entry.get("blob", ""))) for entry in doc.get("files") or []]
    finished = doc.get("inventoryCompletionTime")
    when = datetime.fromisoformat(str(finished).replace("Z", "+00:00")) if finished else None
    return account, files, when


def _detect(cols: Cols, kind: str) -> str:
    """Which inventory a data file is, from its own columns."""
    if cols.has("Content-Length") and cols.has("Name"):
        return "azure"
    if cols.has_all("bucket", "name", "size"):
        return "gcs"
    if kind == "parquet" and cols.has_all("bucket", "key", "size"):
        return "s3"
    raise InputError(
        cols.source,
        "not a storage inventory: expected S3 Inventory (give its manifest.json), a GCS inventory report "
        "(bucket, name, size ...) or an Azure blob inventory (Name, Content-Length ...); "
        f"found columns {', '.join(list(cols.types)[:8])}",
    )


def _loose_part(con, group: list[SourceFile], fmt: str, opts: dict, account: str | None, when: datetime | None) -> _Part:
    cols = describe(con, group)
    kind = group[0].kind
    relation = _files_sql(group)
    meta = _meta(opts.get("region"), opts.get("billing_account"), when)
    if fmt == "azure":
        account = account or opts.get("account")
        if not account:
            raise InputError(cols.source, "Azure blob inventory: the storage account is unknown; pass --account NAME "
                             "or include the inventory run's manifest.json")
        return _Part(_azure_sql(cols, relation, f"azure-blob-inventory-{kind}", meta, account), cols.source)
    if fmt == "gcs":
        return _Part(_gcs_sql(cols, relation, f"gcs-inventory-{kind}", meta), cols.source)
    return _Part(_s3_sql(cols, relation, "s3-inventory-parquet", meta, url_encoded=False), cols.source)


def _plan(con, paths: list[str], opts: dict) -> tuple[list[_Part], list[SourceFile], list[tuple[str, str]]]:
    files = [sniff(p, expected="a storage inventory") for p in expand_paths(paths)]
    parts: list[_Part] = []
    claimed: set[Path] = set()
    skipped: list[tuple[str, str]] = []
    azure_accounts: dict[Path, tuple[str, datetime | None]] = {}
    for file in files:
        if file.kind != "json":
            continue
        try:
            doc = json.loads(file.path.read_text(encoding="utf-8-sig"))
        except (ValueError, UnicodeDecodeError):
            raise InputError(str(file.path), "not valid JSON; expected an inventory manifest") from None
        if isinstance(doc, dict) and {"sourceBucket", "fileFormat", "files"} <= set(doc):
            part, data = _s3_manifest(con, file.path, doc, opts)
            parts.append(part)
            claimed |= data
        elif isinstance(doc, dict) and "endpoint" in doc and "files" in doc:
            account, data_paths, when = _azure_manifest(file.path, doc)
            for data_path in data_paths:
                azure_accounts[data_path] = (account, when)
        else:
            skipped.append((str(file.path), "a JSON file that is not an S3 or Azure inventory manifest"))
        claimed.add(file.path)
    loose: dict[tuple, list[SourceFile]] = {}
    for file in files:
        if file.path in claimed:
            continue
        if file.kind not in ("csv", "parquet"):
            raise InputError(str(file.path), f"{file.kind} is not an inventory file; expected CSV or Parquet")
        account, when = azure_accounts.get(file.path, (None, None))
        fmt = _detect(describe(con, [file]), file.kind)
        loose.setdefault((fmt, file.kind, file.compression, account, when), []).append(file)
    for (fmt, _, _, account, when), group in loose.items():
        parts.append(_loose_part(con, group, fmt, opts, account, when))
    return parts, files, skipped


def import_inventory(
    con: duckdb.DuckDBPyConnection,
    paths: list[str],
    *,
    account: str | None = None,
    region: str | None = None,
    billing_account: str | None = None,
) -> InventoryImport:
    """Validate and store inventory listings; each bucket's earlier listing is replaced."""
    from costaudit.rules.schema import ensure_rules_schema

    install_macros(con)
    ensure_rules_schema(con)
    opts = {"account": account, "region": region, "billing_account": billing_account}
    parts, files, skipped = _plan(con, paths, opts)
    if not parts:
        raise InputError(", ".join(paths), "no storage inventory found")
    staged = " UNION ALL BY NAME ".join(f"({p.sql})" for p in parts)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE inventory_staged AS {staged}")
    except duckdb.Error as exc:
        raise InputError(parts[0].label, f"cannot be read: {str(exc).strip().splitlines()[0]}") from None
    try:
        bad = con.execute(
            """SELECT source_file, count(*) FROM inventory_staged
               WHERE size_bytes IS NULL OR size_bytes < 0 OR object_key IS NULL OR bucket IS NULL
               GROUP BY 1 ORDER BY 1 LIMIT 1"""
        ).fetchall()
        if bad:
            raise InputError(bad[0][0], f"{bad[0][1]} row(s) without a bucket, an object name or a whole-number size")
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                """DELETE FROM storage_objects WHERE (provider, coalesce(storage_account, ''), bucket) IN
                   (SELECT DISTINCT provider, coalesce(storage_account, ''), bucket FROM inventory_staged)"""
            )
            con.execute(f"INSERT INTO storage_objects SELECT {', '.join(COLUMNS)} FROM inventory_staged")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        report = InventoryImport(files=[str(f.path) for f in files], skipped=skipped)
        for location, objects, size in con.execute(
            "SELECT location, count(*), sum(size_bytes) FROM inventory_staged GROUP BY 1 ORDER BY 1"
        ).fetchall():
            report.locations[location] = (int(objects), int(size or 0))
        return report
    finally:
        con.execute("DROP TABLE IF EXISTS inventory_staged")
