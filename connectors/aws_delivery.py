"""AWS deliveries: legacy CUR report folders and Data Exports (CUR 2.0 / FOCUS) folders.

Legacy CUR in S3 (``access-cur-s3``): every refresh is a full restatement of the month, written
to a new assembly folder ``<report>/<yyyymmdd-yyyymmdd>/<assemblyId>/`` with a manifest copy,
while ``<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json`` is overwritten to point to the
latest assembly. Only that assembly may be loaded; older ones are claimed (so they are not read
as loose files) and ignored. The overwrite and Athena modes have a single manifest and work the
same way.

Data Exports: ``<export>/data/BILLING_PERIOD=YYYY-MM/...`` with
``<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json``. The manifest's key names
are not verified against a real AWS file, so we accept ``dataFiles`` (s3:// URIs) and fall back
to the files of the matching data folder.

Manifest keys are never opened as paths: they are matched, by trailing path components, only
against the files the user gave us, so a key with ``..`` or an absolute path cannot reach
outside the given folders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from costaudit.errors import InputError

from .deliveries import ManifestDelivery

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_PERIOD_FOLDER = re.compile(r"^BILLING_PERIOD=(\d{4}-\d{2})$")
_EXPORT_KEYS = ("dataFiles", "exportArn", "exportName", "executionId")


def claim(docs: dict[Path, dict], files: list[Path]) -> tuple[list[ManifestDelivery], set[Path]]:
    """Deliveries named by AWS manifests among `docs`, and every file those manifests govern."""
    data_files = [f for f in files if f not in docs]
    cur, cur_claimed = _claim_cur(docs, data_files)
    exports, export_claimed = _claim_data_exports(docs, data_files)
    return cur + exports, cur_claimed | export_claimed


# -- matching manifest keys to local files -----------------------------------------------------

def key_parts(key: str) -> tuple[str, ...]:
    """Path components of a manifest key or s3:// URI, without scheme and bucket."""
    text = key.strip()
    if text.lower().startswith("s3://"):
        text = text[5:].split("/", 1)[1] if "/" in text[5:] else ""
    return tuple(p for p in PurePosixPath(text.replace("\\", "/")).parts if p not in ("/", "", "."))


def match_key(key: str, files: Iterable[Path], near: Path) -> Path | None:
    """The given file a manifest key names, matched by trailing components (at least the file
    name and its folder, so two assemblies' ``report-1.csv.gz`` are never confused). Among
    several, the one sharing most trailing components wins, then one under `near`."""
    parts = key_parts(key)
    if not parts or ".." in parts:
        return None
    needed = min(len(parts), 2)
    best: tuple[int, int, str] | None = None
    found: Path | None = None
    for file in files:
        if file.name != parts[-1]:
            continue
        matched = 0
        for mine, theirs in zip(reversed(file.parts), reversed(parts), strict=False):
            if mine != theirs:
                break
            matched += 1
        if matched < needed:
            continue
        rank = (matched, int(near in file.parents), str(file))
        if best is None or rank[:2] > best[:2] or (rank[:2] == best[:2] and rank[2] < best[2]):
            best, found = rank, file
    return found


def _resolve(manifest: Path, keys: list, files: list[Path], near: Path, what: str) -> list[Path]:
    resolved = []
    for key in keys:
        if not isinstance(key, str):
            raise InputError(str(manifest), f"{what} entry {key!r} is not a file key; expected a string")
        found = match_key(key, files, near)
        if found is None:
            reason = " (keys may not contain '..')" if ".." in key_parts(key) else ""
            raise InputError(
                str(manifest),
                f"{what} lists {key!r}, which is not among the files given{reason}; load the whole report "
                f"folder ({near}) or download the missing file",
            )
        resolved.append(found)
    return resolved


def _newest(paths: Iterable[Path]) -> Path:
    return max(paths, key=lambda p: (p.stat().st_mtime_ns, str(p)))


# -- legacy CUR ------------------------------------------------------------------------------

def is_cur_manifest(doc: dict) -> bool:
    return isinstance(doc, dict) and "assemblyId" in doc and isinstance(doc.get("reportKeys"), list) and "billingPeriod" in doc


def _period_text(value: object) -> str:
    if isinstance(value, dict):
        return f"{value.get('start', '')}-{value.get('end', '')}"
    return str(value)


def _claim_cur(docs: dict[Path, dict], files: list[Path]) -> tuple[list[ManifestDelivery], set[Path]]:
    groups: dict[tuple[str, str], list[Path]] = {}
    for path, doc in docs.items():
        if is_cur_manifest(doc):
            name = str(doc.get("reportName") or path.name.removesuffix("-Manifest.json"))
            groups.setdefault((name, _period_text(doc["billingPeriod"])), []).append(path)
    deliveries: list[ManifestDelivery] = []
    claimed: set[Path] = set()
    for (report, _period), manifests in sorted(groups.items()):
        # A manifest inside its own assembly folder is a per-assembly copy; the one above it is
        # the period manifest AWS rewrites to point at the latest assembly.
        at_assembly = {m for m in manifests if m.parent.name == str(docs[m]["assemblyId"])}
        period_level = [m for m in manifests if m not in at_assembly]
        chosen = _newest(period_level) if period_level else _newest(at_assembly)
        doc = docs[chosen]
        period_dirs = {m.parent.parent if m in at_assembly else m.parent for m in manifests}
        assemblies = {str(docs[m]["assemblyId"]) for m in manifests}
        claimed |= set(manifests) | _cur_files(files, period_dirs, assemblies, report)
        if not doc["reportKeys"]:
            raise InputError(str(chosen), "the CUR manifest lists no report files (reportKeys is empty)")
        data = _resolve(chosen, doc["reportKeys"], files, chosen.parent, "the CUR manifest")
        claimed |= set(data)
        deliveries.append(
            ManifestDelivery(files=data, source_export=f"aws-cur/{report}", delivery_id=str(doc["assemblyId"]), manifest=chosen)
        )
    return deliveries, claimed


def _cur_files(files: list[Path], period_dirs: set[Path], assemblies: set[str], report: str) -> set[Path]:
    """Files that belong to a CUR billing period: everything in its assembly folders (named by a
    manifest or shaped like an assembly id) and the report's own files in the period folder."""
    owned = set()
    for file in files:
        for period_dir in period_dirs:
            if file.parent == period_dir and file.name.startswith(report):
                owned.add(file)
            elif period_dir in file.parents:
                assembly = file.relative_to(period_dir).parts[0]
                if assembly in assemblies or _UUID.match(assembly):
                    owned.add(file)
    return owned


# -- Data Exports (CUR 2.0, FOCUS) ------------------------------------------------------------

def _period_of(manifest: Path) -> str | None:
    match = _PERIOD_FOLDER.match(manifest.parent.name)
    return match.group(1) if match else None


def is_export_manifest(path: Path, doc: dict) -> bool:
    if not isinstance(doc, dict) or "assemblyId" in doc:
        return False
    in_layout = _period_of(path) is not None and path.parent.parent.name == "metadata"
    return any(k in doc for k in _EXPORT_KEYS) or (in_layout and path.name.endswith("Manifest.json"))


def _export_name(path: Path, doc: dict) -> str:
    if doc.get("exportName"):
        return str(doc["exportName"])
    if _period_of(path) and path.parent.parent.name == "metadata":
        return path.parent.parent.parent.name
    arn = str(doc.get("exportArn") or "")
    return arn.rsplit("/", 1)[-1] or path.name.removesuffix("-Manifest.json")


def _billing_period(path: Path, doc: dict) -> str:
    folder = _period_of(path)
    if folder:
        return folder
    value = doc.get("billingPeriod")
    if isinstance(value, dict):
        value = value.get("start")
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}" if re.match(r"^\d{6}", text) else text[:7]


def _data_entries(doc: dict) -> list:
    entries = doc.get("dataFiles") or []
    keys = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            entry = entry.get("key") or entry.get("uri") or entry.get("s3Uri") or entry.get("path") or entry
        keys.append(entry)
    return keys


def _claim_data_exports(docs: dict[Path, dict], files: list[Path]) -> tuple[list[ManifestDelivery], set[Path]]:
    groups: dict[tuple[str, str], list[Path]] = {}
    for path, doc in docs.items():
        if is_export_manifest(path, doc):
            groups.setdefault((_export_name(path, doc), _billing_period(path, doc)), []).append(path)
    deliveries: list[ManifestDelivery] = []
    claimed: set[Path] = set()
    for (export, period), manifests in sorted(groups.items()):
        chosen = _newest(manifests)
        doc = docs[chosen]
        data_dir = chosen.parent.parent.parent / "data" / f"BILLING_PERIOD={period}"
        in_folder = [f for f in files if data_dir in f.parents]
        claimed |= set(manifests) | set(in_folder)
        entries = _data_entries(doc)
        if entries:
            data = _resolve(chosen, entries, files, data_dir, "the Data Exports manifest")
        else:
            data = _latest_version(in_folder, data_dir)
        if not data:
            raise InputError(
                str(chosen),
                f"no data files for billing period {period}: the manifest has no dataFiles and {data_dir} "
                "holds no files among those given",
            )
        claimed |= set(data)
        deliveries.append(
            ManifestDelivery(
                files=sorted(data), source_export=f"aws-data-exports/{export}",
                delivery_id=str(doc.get("executionId") or "") or None, manifest=chosen,
            )
        )
    return deliveries, claimed


def _latest_version(files: list[Path], data_dir: Path) -> list[Path]:
    """Without a file list: the files of the data folder, or, when AWS kept several refreshes in
    sub-folders (create-new-report mode), those of the most recently written one."""
    versions: dict[str, list[Path]] = {}
    for file in files:
        relative = file.relative_to(data_dir).parts
        versions.setdefault(relative[0] if len(relative) > 1 else "", []).append(file)
    if len(versions) <= 1:
        return sorted(files)
    newest = max(versions, key=lambda v: (max(f.stat().st_mtime_ns for f in versions[v]), v))
    return sorted(versions[newest])
