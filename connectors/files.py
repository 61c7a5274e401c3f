"""Local files: expand paths, recognise file kinds by their bytes, and open them in DuckDB.

File names are never trusted: gzip, Parquet and newline-delimited JSON are told apart by
their first bytes, so `report.csv` holding Parquet still loads, and a corrupt gzip is named.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from costaudit.errors import InputError

from .base import FILE_COLUMN, Cols
from .sql import quote_ident, quote_literal

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class SourceFile:
    """One input file: where it is, what it holds, and its checksum for the ledger."""

    path: Path
    kind: str  # 'csv', 'ndjson', 'parquet', 'json' (a single JSON document, e.g. a manifest)
    compression: str  # 'none' or 'gzip'
    sha256: str
    size: int
    # CSV whose data rows all have fewer fields than the header (seen in real CUR extracts, where
    # a trailing empty column was dropped): read with the missing trailing fields as NULL.
    ragged: bool = False

    @property
    def group_key(self) -> tuple[str, str]:
        return (self.kind, self.compression)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files named by paths, folders (recursively) and glob patterns, sorted, without repeats."""
    found: dict[Path, None] = {}
    for raw in paths:
        # A path that exists is taken literally, even if it has glob characters ([x], *).
        literal = Path(raw).exists() or not glob.has_magic(raw)
        matches = [Path(raw)] if literal else [Path(p) for p in sorted(glob.glob(raw, recursive=True))]
        if not matches:
            raise InputError(raw, "no file matches this pattern")
        for match in matches:
            if match.is_dir():
                for child in sorted(match.rglob("*")):
                    if child.is_file() and not child.name.startswith("."):
                        found[child.resolve()] = None
            elif match.is_file():
                found[match.resolve()] = None
            else:
                raise InputError(str(match), "no such file or folder")
    return list(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_text(data: bytes) -> str:
    return data.lstrip(b"\xef\xbb\xbf").lstrip().decode("utf-8", errors="replace")[:1]


# (resolved path, size, mtime in ns) -> sha256 of files the ledger already holds
KnownChecksums = dict[tuple[str, int, int], str]


def sniff(path: Path, known: KnownChecksums | None = None, *, expected: str = "a billing export") -> SourceFile:
    """Identify a file's kind from its content. Raises InputError for empty or corrupt files,
    saying what was `expected` there.

    `known` lets a rerun skip hashing a file the ledger has already seen with the same size and
    modification time (a file rewritten in place gets a new mtime, so it is hashed again)."""
    stat = path.stat()
    size = stat.st_size
    if size == 0:
        raise InputError(str(path), f"the file is empty; expected {expected} (CSV, CSV.gz, Parquet or JSON)")
    with path.open("rb") as handle:
        head = handle.read(65536)
    compression = "none"
    if head.startswith(GZIP_MAGIC):
        compression = "gzip"
        head = _gunzip_head(path)
        if not head.strip():
            raise InputError(str(path), f"the gzip file holds no data; expected {expected}")
    elif head.startswith(ZIP_MAGIC):
        raise InputError(str(path), "ZIP archives are not read directly; unzip the export first")
    if head.startswith(PARQUET_MAGIC):
        if compression == "gzip":
            raise InputError(str(path), "gzip-compressed Parquet is not a delivery format; expected plain Parquet")
        with path.open("rb") as handle:
            handle.seek(max(0, size - 4))
            if handle.read(4) != PARQUET_MAGIC:
                raise InputError(str(path), "corrupt Parquet file: the footer is missing (truncated download?)")
        kind = "parquet"
    else:
        first = _first_text(head)
        if first == "{":
            kind = _json_kind(head)
        elif first == "[":
            kind = "json"
        else:
            if b"\x00" in head:
                raise InputError(str(path), f"binary content that is neither gzip nor Parquet; expected {expected}")
            kind = "csv"
    ragged = kind == "csv" and _rows_shorter_than_header(head)
    checksum = (known or {}).get((str(path), size, stat.st_mtime_ns)) or _sha256(path)
    return SourceFile(path=path, kind=kind, compression=compression, sha256=checksum, size=size, ragged=ragged)


def _rows_shorter_than_header(head: bytes) -> bool:
    """True when every complete sampled data row has fewer fields than the header.

    Only a consistent shortfall counts: one short row (a truncated file) must stay an error.
    """
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(lines) < 3:
        return False
    sample = lines[: len(lines) - 1]  # the last line of the head may be cut mid-row
    try:
        rows = list(csv.reader(io.StringIO("\n".join(sample))))
    except csv.Error:
        return False
    header, data = rows[0], [r for r in rows[1:] if r]
    return bool(data) and all(len(r) < len(header) for r in data)


def _gunzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(65536)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(str(path), f"corrupt gzip data ({exc}); expected a gzip-compressed export") from None


# Top-level keys of the delivery manifests we know (AWS CUR and Data Exports, Azure exports,
# S3 Inventory). A one-line JSON object with any of them is a manifest, not a one-row NDJSON file.
MANIFEST_KEYS = frozenset({
    "assemblyId", "reportKeys", "billingPeriod", "dataFiles", "exportArn", "exportName", "executionId",
    "exportConfig", "deliveryConfig", "runInfo", "blobs", "sourceBucket", "fileSchema", "fileFormat",
})


def _json_kind(head: bytes) -> str:
    """Newline-delimited JSON has a complete object on its first line; a manifest is one document
    (pretty-printed over many lines, or on one line with manifest keys)."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    first_line = text.split(b"\n", 1)[0].strip()
    try:
        first = json.loads(first_line)
    except ValueError:
        return "json"
    if isinstance(first, dict) and MANIFEST_KEYS & set(first):
        return "json"
    return "ndjson"


def check_gzip_whole(file: SourceFile) -> None:
    """Read a gzip file to its end so a truncated or corrupt stream is reported before loading."""
    if file.compression != "gzip":
        return
    try:
        with gzip.open(file.path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(str(file.path), f"corrupt gzip data ({exc}); expected a complete gzip stream") from None


def raw_relation_sql(files: list[SourceFile]) -> str:
    """The DuckDB table function reading these files raw (same kind and compression)."""
    kind, compression = files[0].group_key
    padding = ", null_padding = true" if any(f.ragged for f in files) else ""
    paths = "[" + ", ".join(quote_literal(str(f.path)) for f in files) + "]"
    file_col = quote_literal(FILE_COLUMN)
    if kind == "csv":
        return (
            f"read_csv({paths}, header = true, all_varchar = true, union_by_name = true, "
            f"nullstr = ['', 'NULL', 'null'], compression = {quote_literal(compression)}, "
            f"filename = {file_col}, sample_size = -1{padding})"
        )
    if kind == "parquet":
        return f"read_parquet({paths}, union_by_name = true, filename = {file_col})"
    if kind == "ndjson":
        return (
            f"read_json({paths}, format = 'newline_delimited', union_by_name = true, "
            f"compression = {quote_literal(compression)}, filename = {file_col}, sample_size = -1, "
            f"maximum_object_size = 67108864)"
        )
    raise InputError(str(files[0].path), f"{kind} files are not billing data")


def describe(con: duckdb.DuckDBPyConnection, files: list[SourceFile]) -> Cols:
    """Column names and types of the files read together, as a `Cols`."""
    sql = f"DESCRIBE SELECT * FROM {raw_relation_sql(files)}"
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise InputError(_files_label(files), f"cannot be read as {files[0].kind}: {_first_line(exc)}") from None
    types = {name: str(sql_type) for name, sql_type, *_ in rows if name != FILE_COLUMN}
    if not types:
        raise InputError(_files_label(files), "no columns found; expected a header row")
    return Cols(types=types, source=_files_label(files))


def header_of(con: duckdb.DuckDBPyConnection, file: SourceFile) -> Cols:
    """The columns of one file (used for format detection)."""
    return describe(con, [file])


def _files_label(files: list[SourceFile]) -> str:
    if len(files) == 1:
        return str(files[0].path)
    return f"{files[0].path} (and {len(files) - 1} more)"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def file_ident(name: str) -> str:
    return quote_ident(name)
