"""What every cloud connector shares: the download cache, pull state, windows and errors.

The cache mirrors remote objects under ``<workdir>/<source>/...`` (one folder per configured
source), so the existing delivery code can read a downloaded export exactly as if the user had
copied the bucket: manifests are matched to data files by their trailing key components.

Only what is new is downloaded: the ``pull_state`` table records, per source and remote object,
the ETag (or generation) and size that the cache holds and that was loaded. It is written only
after the data it describes has been loaded, so a failed pull leaves it, like the rest of the
store, as it was; the next pull finds the verified files in the cache (checked by size and MD5
where the provider gives one) and does not download them again.

Downloads resume: bytes go to a hidden ``.<name>.<etag-hash>.part`` file beside the target,
which a later attempt continues with a ranged read from its size; the file is renamed into place
only when it is complete and verified. The hash in the name ties the partial bytes to one
version of the object, so a changed object is never stitched onto an older one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from costaudit.errors import CostauditError, InputError, UsageError

PULL_STATE_DDL = """
CREATE TABLE IF NOT EXISTS pull_state (
  source VARCHAR NOT NULL,          -- the [[sources]] name
  remote_key VARCHAR NOT NULL,      -- s3://bucket/key, gs://bucket/name, https://account/container/blob, ...
  etag VARCHAR,                     -- ETag, generation or a content signature; compared on the next pull
  size BIGINT,
  local_path VARCHAR,               -- the copy in the download cache, if a file
  downloaded_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (source, remote_key)
)"""

CHUNK = 1 << 20


class PermissionDenied(CostauditError):
    """The cloud refused an operation: names the permission and the resource."""

    def __init__(self, provider: str, permission: str, resource: str, detail: str = ""):
        self.permission = permission
        self.resource = resource
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{provider}: permission denied: the credentials in use need {permission} on {resource}{extra}"
        )


def ensure_pull_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``pull_state`` table if missing (idempotent)."""
    con.execute(PULL_STATE_DDL)


# -- billing-month windows ----------------------------------------------------------------------

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(value: str | date | None, option: str) -> date | None:
    """A billing month given as YYYY-MM (or a date) -> its first day; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return date(value.year, value.month, 1)
    if isinstance(value, date):
        return value.replace(day=1)
    match = _MONTH.match(str(value).strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UsageError(f"{option} {value!r} is not a billing month; expected YYYY-MM, e.g. 2024-03")
    return date(int(match.group(1)), int(match.group(2)), 1)


@dataclass(frozen=True)
class Window:
    """Billing months to pull: `since` inclusive, `until` exclusive (either may be open)."""

    since: date | None = None
    until: date | None = None

    @classmethod
    def of(cls, since: str | date | None, until: str | date | None) -> Window:
        window = cls(parse_month(since, "--since"), parse_month(until, "--until"))
        if window.since and window.until and window.since >= window.until:
            raise UsageError(f"--since {window.since:%Y-%m} must be before --until {window.until:%Y-%m} (until is exclusive)")
        return window

    def contains(self, month: str | None) -> bool:
        """True when `month` (YYYY-MM or YYYYMM) is inside the window; unknown months are kept."""
        if not month:
            return True
        digits = month.replace("-", "")
        if not re.match(r"^\d{6}$", digits):
            return True
        first = date(int(digits[:4]), int(digits[4:6]), 1)
        return (self.since is None or first >= self.since) and (self.until is None or first < self.until)

    def start(self) -> datetime | None:
        return datetime(self.since.year, self.since.month, 1, tzinfo=UTC) if self.since else None

    def end(self) -> datetime | None:
        return datetime(self.until.year, self.until.month, 1, tzinfo=UTC) if self.until else None


# -- settings ----------------------------------------------------------------------------------

def check_settings(source: str, provider: str, settings: dict[str, Any], allowed: dict[str, type | tuple]) -> None:
    """Refuse unknown or mistyped keys of a [[sources]] entry, naming the source."""
    for key, value in settings.items():
        if key not in allowed:
            raise UsageError(
                f"source {source!r} ({provider}): unknown key {key!r}; expected one of {', '.join(sorted(allowed))}"
            )
        expected = allowed[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in _as_tuple(expected)):
            names = " or ".join(t.__name__ for t in _as_tuple(expected))
            raise UsageError(f"source {source!r} ({provider}): {key} must be a {names}, not {value!r}")


def _as_tuple(value: type | tuple) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def attempts(settings: dict[str, Any]) -> int:
    """How many times a throttled or failed request is tried (the SDKs' retry settings)."""
    value = int(settings.get("max_attempts", 5))
    if not 1 <= value <= 20:
        raise UsageError(f"max_attempts must be between 1 and 20, not {value}")
    return value


def safe_name(name: str) -> str:
    """A source name as a single safe folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".")
    return cleaned or "source"


def key_parts(key: str, what: str = "remote key") -> tuple[str, ...]:
    """Components of a remote key for the local mirror; refuses '..' and control characters.

    Empty components (a leading '/', '//') are dropped: they cannot name a folder locally.
    """
    parts = tuple(p for p in key.replace("\\", "/").split("/") if p not in ("", "."))
    if not parts:
        raise InputError(key or "(empty)", f"{what} is empty; expected an object key")
    for part in parts:
        if part == ".." or any(ord(ch) < 32 for ch in part) or len(part) > 255:
            raise InputError(key, f"{what} has a '..' or control-character component; refusing to write it locally")
    return parts


# -- remote objects and the cache ----------------------------------------------------------------

@dataclass(frozen=True)
class Remote:
    """One remote object: its address, version tag, size and (when the provider gives one) MD5."""

    url: str
    local: tuple[str, ...]  # path components under the source's cache folder
    size: int
    etag: str
    md5: str | None = None  # lower-case hex


Reader = Callable[[int], Iterable[bytes]]


@dataclass
class Cache:
    """The download cache of one source, and the pull state that goes with it."""

    con: duckdb.DuckDBPyConnection
    root: Path
    source: str
    transient: tuple[type[BaseException], ...] = (OSError,)
    max_attempts: int = 5
    downloaded: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0
    reused: list[str] = field(default_factory=list)
    unverifiable: set[str] = field(default_factory=set)  # objects whose ETag turned out not to be an MD5
    _pending: dict[str, list[tuple]] = field(default_factory=dict)
    _state: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection, workdir: Path, source: str) -> Cache:
        ensure_pull_schema(con)
        root = (Path(workdir) / safe_name(source)).resolve()
        cache = cls(con=con, root=root, source=source)
        for url, etag, size in con.execute(
            "SELECT remote_key, etag, size FROM pull_state WHERE source = ?", [source]
        ).fetchall():
            cache._state[url] = (etag, size)
        return cache

    def path_for(self, parts: tuple[str, ...]) -> Path:
        """The local path for remote key components: always inside this source's folder."""
        target = self.root.joinpath(*parts)
        resolved = target.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise InputError("/".join(parts), "would be written outside the download folder; refusing")
        return target

    def state_etag(self, url: str) -> str | None:
        return self._state.get(url, (None, None))[0]

    def is_current(self, remote: Remote) -> bool:
        """True when the last successful pull recorded this very version and the copy is here."""
        etag, size = self._state.get(remote.url, (None, None))
        if etag != remote.etag or size != remote.size:
            return False
        path = self.path_for(remote.local)
        return path.is_file() and path.stat().st_size == remote.size

    def fetch(self, remote: Remote, read_from: Reader, group: str) -> Path:
        """The verified local copy of `remote`, downloading (or resuming) only when needed."""
        dest = self.path_for(remote.local)
        if self._cached(remote, dest):
            self.reused.append(remote.url)
            self.remember(remote, dest, group)
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(remote.etag.encode()).hexdigest()[:12]
        part = dest.with_name(f".{dest.name}.{tag}.part")
        for stale in dest.parent.glob(f".{_glob_escape(dest.name)}.*.part"):
            if stale != part:
                stale.unlink()  # partial bytes of another version of the object
        if part.exists() and part.stat().st_size > remote.size:
            part.unlink()
        part.touch()
        for attempt in range(1, self.max_attempts + 1):
            offset = part.stat().st_size if part.exists() else 0
            if offset >= remote.size:
                break
            try:
                with part.open("ab") as handle:
                    for chunk in read_from(offset):
                        handle.write(chunk)
                        self.bytes_downloaded += len(chunk)
            except self.transient:
                # The SDK retried the request itself; this covers a stream cut mid-body. The next
                # attempt continues from what was written.
                if attempt == self.max_attempts:
                    raise
                continue
            break
        self._verify(remote, part)
        os.replace(part, dest)
        self.downloaded.append(remote.url)
        self.remember(remote, dest, group)
        return dest

    def _cached(self, remote: Remote, dest: Path) -> bool:
        if not dest.is_file() or dest.stat().st_size != remote.size:
            return False
        if self.state_etag(remote.url) == remote.etag:
            return True
        # Not recorded (say the load after the download failed): trust the copy only when its
        # content hash proves it is this version.
        return remote.md5 is not None and md5_of(dest) == remote.md5

    def _verify(self, remote: Remote, part: Path) -> None:
        size = part.stat().st_size if part.exists() else 0
        if size != remote.size:
            part.unlink(missing_ok=True)
            raise InputError(
                remote.url,
                f"downloaded {size} bytes but the object has {remote.size}; it may have changed during the "
                "download: run the pull again",
            )
        if remote.md5 is not None and remote.url not in self.unverifiable and md5_of(part) != remote.md5:
            part.unlink()
            raise InputError(
                remote.url,
                "the downloaded bytes do not match the MD5 the provider gives for this object; the copy was "
                "discarded: run the pull again",
            )

    def remember(self, remote: Remote, path: Path | None, group: str) -> None:
        """Record `remote` in the pull state once `group`'s data has been loaded."""
        self._pending.setdefault(group, []).append(
            (self.source, remote.url, remote.etag, remote.size, str(path) if path else None)
        )

    def commit(self, group: str) -> None:
        """Write the pull state of `group` (after its data was loaded)."""
        rows = self._pending.pop(group, [])
        if not rows:
            return
        now = datetime.now(UTC)
        self.con.executemany(
            "INSERT OR REPLACE INTO pull_state VALUES (?, ?, ?, ?, ?, ?)", [(*row, now) for row in rows]
        )
        for _, url, etag, size, _path in rows:
            self._state[url] = (etag, size)


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def read_manifest(path: Path) -> dict:
    """A downloaded manifest as a JSON object, or an InputError naming the file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"the manifest is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(str(path), "the manifest is not a JSON object")
    return doc


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def plain_md5(etag: str | None) -> str | None:
    """The MD5 an ETag is, when it is one (32 hex digits, not a multipart ETag)."""
    text = (etag or "").strip().strip('"').lower()
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None


def chunks_of(stream: Any, size: int = CHUNK) -> Iterator[bytes]:
    """Read a file-like body in blocks."""
    while True:
        block = stream.read(size)
        if not block:
            return
        yield block


def ledger_has(con: duckdb.DuckDBPyConnection, source_export: str, delivery_id: str | None) -> bool:
    """True when the load ledger already holds this delivery (by its assembly, execution or run id)."""
    if not delivery_id:
        return False
    [(count,)] = con.execute(
        "SELECT count(*) FROM loads WHERE status = 'active' AND source_export = ? AND delivery_id = ?",
        [source_export, delivery_id],
    ).fetchall()
    return count > 0
