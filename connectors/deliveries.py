"""Group input files into deliveries: one export run or assembly, read together.

Manifests decide first: a provider's delivery module claims its manifests and the files they
govern (for example every assembly of a CUR billing period, of which only the latest is
loaded). The remaining data files are grouped by detected format and file kind. Files found by
walking a folder that are not billing data (a README, a licence) are skipped and reported;
a file named explicitly must be billing data.
"""

from __future__ import annotations

import importlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from costaudit.errors import InputError

from .base import Cols, Format
from .files import SourceFile, describe, expand_paths, header_of, sniff
from .formats import by_id, detect

# Modules that understand provider manifests. Each has
#   claim(docs: dict[Path, dict], files: list[Path]) -> tuple[list[ManifestDelivery], set[Path]]
_MANIFEST_MODULES = ["aws_delivery", "azure_delivery"]


@dataclass
class ManifestDelivery:
    """What a manifest says: the data files of one delivery, and how to name it in the ledger."""

    files: list[Path]
    source_export: str | None = None
    delivery_id: str | None = None
    manifest: Path | None = None
    # The format the manifest says the files are (e.g. Azure ActualCost vs AmortizedCost, which
    # share their columns). Used when that format accepts the columns; content detection otherwise.
    format_hint: str | None = None


@dataclass
class Delivery:
    files: list[SourceFile]
    fmt: Format
    cols: Cols
    source_export: str | None = None
    delivery_id: str | None = None
    manifest: Path | None = None

    @property
    def label(self) -> str:
        if self.manifest is not None:
            return str(self.manifest)
        if len(self.files) == 1:
            return str(self.files[0].path)
        return f"{self.files[0].path} (and {len(self.files) - 1} more)"


@dataclass
class Plan:
    deliveries: list[Delivery] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def plan(con: duckdb.DuckDBPyConnection, paths: list[str]) -> Plan:
    """Turn command-line paths into deliveries. Raises InputError for unreadable input."""
    explicit = set()
    for raw in paths:
        candidate = Path(raw)
        if candidate.is_file():
            explicit.add(candidate.resolve())
    all_paths = expand_paths(paths)
    result = Plan()
    sniffed: dict[Path, SourceFile] = {}
    docs: dict[Path, dict] = {}
    known = _known_checksums(con)
    # Sniffing hashes every new file (sha256: about 0.4 s a GB); hashlib releases the GIL, so the
    # files are hashed on every core. map() keeps the paths' order and raises the first error in it.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sniffed_files = list(pool.map(lambda path: sniff(path, known), all_paths))
    for path, file in zip(all_paths, sniffed_files, strict=True):
        if file.kind == "json":
            docs[path] = _read_json(path, file)
        else:
            sniffed[path] = file

    claimed: set[Path] = set()
    for module_name in _MANIFEST_MODULES:
        module = importlib.import_module(f"{__package__}.{module_name}")
        manifest_deliveries, module_claimed = module.claim(docs, all_paths)
        claimed |= module_claimed
        for md in manifest_deliveries:
            files = [sniffed.get(p) or sniff(p, known) for p in md.files]
            if not files:
                raise InputError(str(md.manifest), "the manifest lists no data files")
            fmt, cols = _detect_group(con, files, md.manifest, md.format_hint)
            result.deliveries.append(Delivery(files, fmt, cols, md.source_export, md.delivery_id, md.manifest))

    for path in docs:
        if path in claimed:
            continue
        if path in explicit:
            raise InputError(str(path), "a JSON document that is neither newline-delimited billing rows nor a known manifest")
        result.skipped.append((str(path), "JSON document that is not a known manifest"))

    groups: dict[tuple[str, str, str], list[SourceFile]] = {}
    formats: dict[str, Format] = {}
    for path, file in sniffed.items():
        if path in claimed:
            continue
        cols = header_of(con, file)
        fmt = detect(cols)
        if fmt is None:
            if path in explicit:
                raise InputError(str(path), _unknown_format_message(cols))
            result.skipped.append((str(path), "not a recognised billing export"))
            continue
        formats[fmt.id] = fmt
        # Files of one format version, kind and compression are read together (the parts of
        # one export); a FOCUS 1.0 file and a 1.2 file are separate deliveries.
        groups.setdefault((fmt.id, fmt.version(cols), file.kind, file.compression), []).append(file)
    for (format_id, _version, _kind, _compression), files in groups.items():
        fmt = formats[format_id]
        cols = describe(con, files)
        result.deliveries.append(Delivery(files, fmt, cols))
    return result


def _known_checksums(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int, int], str]:
    """Checksums of files the ledger holds, keyed by path, size and modification time."""
    try:
        rows = con.execute(
            """SELECT f.path, f.bytes, f.mtime_ns, f.sha256 FROM (
                 SELECT unnest(from_json(files, '[{"path": "VARCHAR", "bytes": "BIGINT", "mtime_ns": "BIGINT",
                                                  "sha256": "VARCHAR"}]')) AS f
                 FROM loads WHERE status = 'active')
               WHERE f.mtime_ns IS NOT NULL"""
        ).fetchall()
    except duckdb.Error:
        return {}
    return {(path, size, mtime): checksum for path, size, mtime, checksum in rows}


def _detect_group(
    con: duckdb.DuckDBPyConnection, files: list[SourceFile], manifest: Path | None, format_hint: str | None = None
) -> tuple[Format, Cols]:
    kinds = {f.group_key for f in files}
    if len(kinds) > 1:
        raise InputError(str(manifest), f"the manifest mixes file kinds {sorted(kinds)}; expected one kind per delivery")
    cols = describe(con, files)
    fmt = detect(cols)
    if format_hint is not None:
        try:
            hinted = by_id(format_hint)
        except KeyError:
            hinted = None
        if hinted is not None and hinted.score(cols) > 0:
            fmt = hinted
    if fmt is None:
        raise InputError(str(manifest or files[0].path), _unknown_format_message(cols))
    return fmt, cols


# A file that has the columns of a family but not those its reader needs: (family, the prefix its
# columns share, the columns the reader cannot do without).
_NEAR_MISSES = (
    ("an AWS CUR", "lineitem/", ("lineItem/UnblendedCost", "lineItem/LineItemType")),
    ("an AWS CUR (Athena) or CUR 2.0 export", "line_item_", ("line_item_unblended_cost", "line_item_line_item_type")),
)


def _unknown_format_message(cols: Cols) -> str:
    for family, prefix, needed in _NEAR_MISSES:
        if any(name.lower().startswith(prefix) for name in cols.types):
            missing = [name for name in needed if cols.name(name) is None]
            if missing:
                return f"looks like {family}, but has no column {', '.join(missing)} (expected in every such export)"
    sample = ", ".join(list(cols.types)[:6])
    return (
        "unknown format: expected an AWS CUR / CUR 2.0 / FOCUS export, a Google Cloud billing export, "
        f"an Azure cost export or a FOCUS file (columns start: {sample})"
    )


def _read_json(path: Path, file: SourceFile) -> dict:
    try:
        if file.compression == "gzip":
            import gzip

            with gzip.open(path, "rt", encoding="utf-8-sig") as handle:
                value = json.load(handle)
        else:
            with path.open(encoding="utf-8-sig") as handle:
                value = json.load(handle)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(str(path), f"invalid JSON ({exc}); expected a manifest or newline-delimited rows") from None
    if not isinstance(value, dict):
        return {}
    return value
