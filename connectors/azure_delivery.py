"""Azure Cost Management export deliveries: manifests, runs, and which dataset each file holds.

An export run writes its files and a ``manifest.json`` (``exportConfig``, ``deliveryConfig``,
``runInfo``, ``blobs[].blobName``) under ``<root>/<export>/<date-range>/<run time>/<run id>/``.
A month-to-date export re-exports the whole month on every run, so only the latest run per
(export, month) is loaded (by ``runInfo.submittedTime``); the files of older runs are claimed
too, so they are not loaded a second time as loose files.

Blob names are never opened: each is matched by path suffix against the files the user gave,
so a manifest cannot point outside them. The manifest's dataset type (ActualCost,
AmortizedCost, FocusCost) selects the format through the delivery's ``format_hint``.

Loose Azure actual/amortized files (no manifest) are claimed here as well, grouped by dataset and
column set, with the dataset read from their rows (see `formats.azure`): the loader would
otherwise put an actual and an amortized export of the same month in one delivery.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import re
import zlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from costaudit.errors import InputError

from .base import Cols, ReadOptions
from .deliveries import ManifestDelivery
from .files import SourceFile, describe, raw_relation_sql
from .formats import azure
from .formats.azure_source import Source, dialect, is_azure_cost_details
from .sql import install_macros

_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


@dataclasses.dataclass
class _Run:
    manifest: Path
    export: str  # exportConfig.resourceId, else exportName (lower-case: Azure ids are case-insensitive)
    export_name: str
    month: str
    submitted: datetime
    run_id: str
    dataset: str  # lower-cased exportConfig.type
    blobs: list[str]


def is_export_manifest(doc: dict) -> bool:
    """True for a Cost Management export manifest (judged by content, never by file name)."""
    return (
        isinstance(doc.get("exportConfig"), dict)
        and isinstance(doc.get("blobs"), list)
        and (isinstance(doc.get("runInfo"), dict) or isinstance(doc.get("deliveryConfig"), dict))
    )


def claim(docs: dict[Path, dict], files: list[Path]) -> tuple[list[ManifestDelivery], set[Path]]:
    """Claim Azure export manifests with the files of all their runs, and loose Azure cost files.

    Returns one delivery per latest run and per group of loose files, and every path claimed.
    """
    manifests = {path: doc for path, doc in docs.items() if is_export_manifest(doc)}
    data_files = [p for p in files if p not in docs and p not in manifests]
    runs = [_parse_run(path, doc) for path, doc in manifests.items()]
    claimed: set[Path] = {run.manifest for run in runs}
    deliveries: list[ManifestDelivery] = []
    index = _index_by_name(data_files)

    latest: dict[tuple[str, str], _Run] = {}
    for run in runs:
        key = (run.export, run.month)
        if key not in latest or (run.submitted, run.run_id) > (latest[key].submitted, latest[key].run_id):
            latest[key] = run
    for run in runs:
        format_id = azure.DATASET_FORMATS.get(run.dataset)
        if format_id is None:
            continue  # PriceSheet, reservation reports...: not cost rows; their files are left alone
        is_latest = latest[(run.export, run.month)] is run
        resolved = [_resolve(run, blob, index, required=is_latest) for blob in run.blobs]
        run_files = list(dict.fromkeys(p for p in resolved if p is not None))
        claimed.update(run_files)
        if not is_latest or not run_files:
            continue
        deliveries.append(
            _delivery(run_files, f"azure/{run.export_name}", run.run_id, run.manifest, format_id)
        )

    loose, loose_hints = _loose_groups([p for p in data_files if p not in claimed])
    for group in loose:
        claimed.update(group)
        deliveries.append(_delivery(group, None, None, None, loose_hints[group[0]]))
    return deliveries, claimed


def _delivery(files: list[Path], export: str | None, run_id: str | None, manifest: Path | None, format_id: str) -> ManifestDelivery:
    return ManifestDelivery(
        files=files, source_export=export, delivery_id=run_id, manifest=manifest, format_hint=format_id
    )


# -- manifests ---------------------------------------------------------------------------------
def _parse_run(path: Path, doc: dict) -> _Run:
    config = doc["exportConfig"]
    info = doc.get("runInfo") if isinstance(doc.get("runInfo"), dict) else {}
    name = str(config.get("exportName") or "").strip()
    resource = str(config.get("resourceId") or "").strip()
    if not name and resource:
        name = resource.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise InputError(str(path), "export manifest without exportConfig.exportName or exportConfig.resourceId")
    blobs = []
    for blob in doc["blobs"]:
        blob_name = blob.get("blobName") if isinstance(blob, dict) else None
        if not isinstance(blob_name, str) or not blob_name.strip():
            raise InputError(str(path), "export manifest blob without a blobName; expected blobs[].blobName paths")
        blobs.append(blob_name)
    start = str(info.get("startDate") or "")
    return _Run(
        manifest=path,
        export=(resource or name).lower(),
        export_name=name,
        month=start[:7] if re.match(r"^\d{4}-\d{2}", start) else "",
        submitted=_parse_time(info.get("submittedTime")),
        run_id=str(info.get("runId") or path.parent.name),
        dataset=str(config.get("type") or "").strip().lower(),
        blobs=blobs,
    )


def _parse_time(value: object) -> datetime:
    """runInfo.submittedTime (7 fractional digits, 'Z'); unreadable or absent sorts first."""
    match = _TIME.match(str(value or "").strip())
    if not match:
        return datetime.min.replace(tzinfo=UTC)
    y, mo, d, h, mi, s, frac, tz = match.groups()
    stamp = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int((frac or "0")[:6].ljust(6, "0")), tzinfo=UTC)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        stamp -= sign * (datetime(2000, 1, 1, int(digits[:2]), int(digits[2:])) - datetime(2000, 1, 1))
    return stamp


def _index_by_name(paths: list[Path]) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    for path in paths:
        index.setdefault(path.name, []).append(path)
    return index


def _resolve(run: _Run, blob: str, index: dict[str, list[Path]], *, required: bool) -> Path | None:
    """The given file whose path ends with the longest part of the blob name, or None."""
    parts = [p for p in blob.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(str(run.manifest), f"blob name {blob!r} contains '..'; expected a path inside the export container")
    candidates = index.get(parts[-1], []) if parts else []
    best: list[Path] = []
    best_len = 0
    for path in candidates:
        common = 0
        for mine, theirs in zip(reversed(path.parts), reversed(parts), strict=False):
            if mine != theirs:
                break
            common += 1
        if common > best_len:
            best, best_len = [path], common
        elif common == best_len:
            best.append(path)
    if len(best) > 1:
        near = [p for p in best if p.is_relative_to(run.manifest.parent)]
        best = near if near else best
    if len(best) > 1:
        raise InputError(
            str(run.manifest),
            f"blob {blob!r} matches several files ({', '.join(str(p) for p in best[:3])}); "
            "give one export run folder at a time or keep the run folders intact",
        )
    if not best:
        if required:
            raise InputError(
                str(run.manifest),
                f"the manifest lists {blob!r} but no such file was given; copy the whole run folder "
                "(manifest.json and its data files)",
            )
        return None
    return best[0]


# -- loose files -------------------------------------------------------------------------------
def _loose_groups(paths: list[Path]) -> tuple[list[list[Path]], dict[Path, str]]:
    """Group loose Azure cost files by (dataset, column set, file kind) and check that no two
    files of a group bill the same account and month (that would be two runs of one export, or
    actual and amortized views that their rows cannot tell apart)."""
    con = duckdb.connect()
    try:
        install_macros(con)
        groups: dict[tuple[str, str, str, str], list[Path]] = {}
        hints: dict[Path, str] = {}
        seen: dict[tuple[str, str, str], Path] = {}
        for path in paths:
            peeked = _peek(con, path)
            if peeked is None:
                continue
            file, cols = peeked
            src = Source(cols, ReadOptions())
            try:
                rows = con.execute(
                    f"""SELECT {src.account()}, strftime({src.period_start()}, '%Y-%m'),
                               bool_or({src.amortized_evidence()}), bool_or({src.actual_evidence()})
                        FROM {raw_relation_sql([file])} GROUP BY ALL ORDER BY 1, 2"""
                ).fetchall()
            except duckdb.Error as exc:
                raise InputError(str(path), f"cannot be read: {str(exc).strip().splitlines()[0]}") from None
            amortized = any(r[2] for r in rows)
            actual = any(r[3] for r in rows)
            if amortized and actual:
                raise InputError(
                    str(path),
                    "this Azure export holds both actual rows (reservation/savings-plan purchases with a cost) and "
                    "amortized rows (unused commitments, covered usage with a cost); export ActualCost and "
                    "AmortizedCost separately",
                )
            # No commitment rows: actual and amortized are the same rows; read them as the invoice.
            format_id = azure.AMORTIZED_ID if amortized else azure.ACTUAL_ID
            for account, month, _, _ in rows:
                other = seen.setdefault((format_id, str(account), str(month)), path)
                if other != path:
                    raise InputError(
                        str(path),
                        f"both this file and {other} hold Azure {format_id} rows for billing account {account}, "
                        f"month {month}; load one export run per month (or the export folder with its "
                        "manifest.json, which picks the latest run)",
                    )
            hints[path] = format_id
            groups.setdefault((format_id, dialect(cols), file.kind, file.compression), []).append(path)
        return list(groups.values()), hints
    finally:
        con.close()


def _peek(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[SourceFile, Cols] | None:
    """(file, columns) when the file is an Azure actual/amortized cost export, else None.

    Only the header is read here (a CSV's first line, a Parquet footer), so other providers'
    large files cost nothing; unreadable files are left for the planner to report."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
        if head.startswith(b"PAR1"):
            file = SourceFile(path=path, kind="parquet", compression="none", sha256="", size=0)
            cols = describe(con, [file])
        else:
            compression = "gzip" if head.startswith(b"\x1f\x8b") else "none"
            opener = gzip.open if compression == "gzip" else open
            with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as text:
                header = next(csv.reader([text.readline()]), [])
            if not header or header[0].lstrip().startswith(("{", "[")):
                return None
            file = SourceFile(path=path, kind="csv", compression=compression, sha256="", size=0)
            cols = Cols(types={name: "VARCHAR" for name in header}, source=str(path))
    except (OSError, EOFError, zlib.error, InputError, csv.Error):
        return None
    return (file, cols) if is_azure_cost_details(cols) else None
