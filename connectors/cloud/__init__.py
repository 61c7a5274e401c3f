"""Cloud connectors: pull billing exports, inventories and metrics with the providers' SDKs.

`pull_source` pulls one ``[[sources]]`` entry of costaudit.toml, `pull_all` every cloud source.
A pull runs in steps, each of which changes the store all or nothing:

1. **collect**: list what the provider holds, download what is new into the cache folder
   (``<store>.d/downloads/<source>/...``, mirroring the remote keys) and verify it. Nothing in
   the store changes here; `pull_all` collects every source before loading any.
2. **load**: hand the downloaded deliveries (manifests with their files) to the same loader as
   `costaudit load`, in one transaction per source; import inventories through the inventory
   importer; write the pull state of what was loaded.
3. **after load**: what needs the loaded bills (CloudWatch metrics of the instances billed) or
   only refreshes reference data (Cloud Catalog prices).

Credentials come only from each SDK's default chain; nothing here reads, stores or prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from costaudit.errors import UsageError

from .common import Cache, Window, ensure_pull_schema

if TYPE_CHECKING:
    from costaudit.config import ProjectConfig, SourceConfig
    from costaudit.connectors.imports_inventory import InventoryImport
    from costaudit.connectors.imports_metrics import MetricsImport
    from costaudit.loader import LoadReport

CLOUD_PROVIDERS = ("aws", "gcp", "azure")


@dataclass
class PullReport:
    """What one source's pull did."""

    source: str
    provider: str
    downloaded: list[str] = field(default_factory=list)  # remote objects downloaded by this pull
    bytes_downloaded: int = 0
    reused: list[str] = field(default_factory=list)  # found verified in the cache, not downloaded
    up_to_date: list[str] = field(default_factory=list)  # deliveries already loaded
    load: LoadReport | None = None
    inventory: InventoryImport | None = None
    metrics: MetricsImport | None = None
    prices: int = 0  # instance prices refreshed from a price API
    accounts: list[str] = field(default_factory=list)  # billing accounts / projects seen
    notes: list[str] = field(default_factory=list)


@dataclass
class Collected:
    """Local files a source's collect step produced, for the load step."""

    billing: list[Path] = field(default_factory=list)
    inventory: list[Path] = field(default_factory=list)
    inventory_options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PullContext:
    """Everything a provider module needs for one source."""

    con: duckdb.DuckDBPyConnection
    source: SourceConfig
    window: Window
    cache: Cache
    report: PullReport
    state: dict[str, Any] = field(default_factory=dict)  # per-source SDK objects (credentials, clients)

    @property
    def settings(self) -> dict[str, Any]:
        return self.source.settings


def _provider_module(provider: str):
    if provider == "aws":
        from . import aws

        return aws
    if provider == "gcp":
        from . import gcp

        return gcp
    if provider == "azure":
        from . import azure

        return azure
    raise UsageError(f"provider {provider!r} cannot be pulled (expected one of {', '.join(CLOUD_PROVIDERS)}); "
                     "local sources are loaded with `costaudit load`")


def _context(con, source: SourceConfig, window: Window, workdir: Path) -> PullContext:
    module = _provider_module(source.provider)
    module.check(source)
    cache = Cache.open(con, workdir, source.name)
    cache.transient = module.TRANSIENT
    cache.max_attempts = int(source.settings.get("max_attempts", 5))
    return PullContext(con, source, window, cache, PullReport(source.name, source.provider))


def _finish(ctx: PullContext) -> PullReport:
    ctx.report.downloaded = list(ctx.cache.downloaded)
    ctx.report.bytes_downloaded = ctx.cache.bytes_downloaded
    ctx.report.reused = list(ctx.cache.reused)
    return ctx.report


def _load(ctx: PullContext, collected: Collected) -> None:
    from costaudit.loader import load_paths

    if collected.billing:
        ctx.report.load = load_paths(ctx.con, [str(p) for p in collected.billing])
    ctx.cache.commit("billing")
    if collected.inventory:
        from costaudit.connectors.imports_inventory import import_inventory

        ctx.report.inventory = import_inventory(ctx.con, [str(p) for p in collected.inventory], **collected.inventory_options)
    ctx.cache.commit("inventory")


def pull_source(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    *,
    since: Any = None,
    until: Any = None,
    workdir: Path,
) -> PullReport:
    """Pull one cloud source: download what is new into `workdir/<source>/` and load it.

    `since` (inclusive) and `until` (exclusive) are billing months (YYYY-MM or dates).
    Raises PermissionDenied naming the permission and resource the credentials lack.
    """
    ensure_pull_schema(con)
    ctx = _context(con, source, Window.of(since, until), workdir)
    module = _provider_module(source.provider)
    collected = module.collect(ctx)
    _load(ctx, collected)
    module.after_load(ctx, collected)
    return _finish(ctx)


def default_workdir(con: duckdb.DuckDBPyConnection) -> Path:
    """``<store file>.d/downloads``: the cache folder beside the store."""
    rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    path = rows[0][0] if rows else None
    if not path:
        raise UsageError("an in-memory store has no download folder; give a store file (--db)")
    return Path(path).resolve().with_name(Path(path).name + ".d") / "downloads"


def pull_all(
    con: duckdb.DuckDBPyConnection,
    config: ProjectConfig,
    provider: str | None = None,
    since: Any = None,
    until: Any = None,
    *,
    workdir: Path | None = None,
    names: tuple[str, ...] = (),
) -> list[PullReport]:
    """Pull every cloud source of `config` (or those of one provider, or the named ones).

    Every source is collected (listed, downloaded, verified) before any is loaded, so a
    download or permission failure leaves the store as it was.
    """
    if provider is not None and provider not in CLOUD_PROVIDERS:
        raise UsageError(f"--provider must be one of {', '.join(CLOUD_PROVIDERS)}, not {provider!r}")
    sources = [s for s in config.sources if s.provider in CLOUD_PROVIDERS]
    if provider:
        sources = [s for s in sources if s.provider == provider]
    if names:
        unknown = sorted(set(names) - {s.name for s in config.sources})
        if unknown:
            raise UsageError(f"no source named {', '.join(unknown)} in {config.path}")
        sources = [s for s in sources if s.name in names]
    if not sources:
        where = f" for provider {provider}" if provider else ""
        raise UsageError(f"{config.path or 'costaudit.toml'}: no cloud [[sources]]{where} to pull")
    ensure_pull_schema(con)
    window = Window.of(since, until)
    root = workdir or default_workdir(con)
    contexts = [_context(con, s, window, root) for s in sources]
    collected = [_provider_module(c.source.provider).collect(c) for c in contexts]
    for ctx, found in zip(contexts, collected, strict=True):
        _load(ctx, found)
    for ctx, found in zip(contexts, collected, strict=True):
        _provider_module(ctx.source.provider).after_load(ctx, found)
    return [_finish(c) for c in contexts]


__all__ = ["PullReport", "pull_source", "pull_all", "default_workdir", "CLOUD_PROVIDERS"]
