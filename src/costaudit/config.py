"""costaudit.toml: one file for a scheduled job. Each room reads its own section.

```toml
[store]
path = "costaudit.duckdb"          # the DuckDB store (relative to this file)
memory_limit = "2GB"

[[sources]]                        # what `costaudit run` loads or pulls; see the README per provider
name = "aws-prod"
provider = "aws"                   # local | aws | gcp | azure
# provider-specific keys, e.g. path = "exports/" for local, bucket/prefix for aws

[analysis]                         # costaudit.analysis.config
[rules]                            # costaudit.rules.config, with [[suppress]]

[reports]                          # what `costaudit run` writes after each run
formats = ["html", "json"]         # any of html, xlsx, csv, json, md (default: none)
out = "reports/"                   # folder, relative to this file (default: reports/)

[run]                              # `costaudit run` (its options override these)
fail_on = "high"                   # exit 3 when an open finding is at or above: low | medium | high | none
wait = 300                         # seconds to wait for another run holding the store's lock
```

`[[sources]]` keys per provider: ``local``: ``path`` (a file, folder or glob, or a list of them,
relative to this file), ``export`` (name in the load ledger, default: the format family),
``currency`` (for FOCUS files without BillingCurrency). Cloud providers: see the README.

Credentials never go here: every cloud SDK uses its own default credential chain. Keys that
look like secrets are refused, so a pasted key cannot end up in a config under version control.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costaudit.errors import UsageError

DEFAULT_CONFIG = Path("costaudit.toml")
TOP_LEVEL = {"store", "sources", "analysis", "rules", "suppress", "reports", "run"}
PROVIDERS = {"local", "aws", "gcp", "azure"}
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|credential|private_key|access_key|account_key|sas)", re.I)


@dataclass(frozen=True)
class SourceConfig:
    """One `[[sources]]` entry: a name, a provider and that provider's own settings."""

    name: str
    provider: str
    settings: dict[str, Any] = field(default_factory=dict)
    position: int = 0


@dataclass(frozen=True)
class ProjectConfig:
    path: Path | None
    document: dict[str, Any]
    sources: tuple[SourceConfig, ...] = ()

    @property
    def base(self) -> Path:
        """Folder that relative paths in the file are resolved against."""
        return self.path.parent if self.path else Path.cwd()

    def section(self, name: str) -> dict[str, Any]:
        value = self.document.get(name, {})
        if not isinstance(value, dict):
            raise UsageError(f"{self.path}: {name} must be a table")
        return value

    def store_path(self) -> Path | None:
        value = self.section("store").get("path")
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise UsageError(f"{self.path}: store.path must be a non-empty string")
        return (self.base / value).resolve()


REPORT_FORMATS = ("html", "xlsx", "csv", "json", "md")
FAIL_ON = ("low", "medium", "high", "none")  # rule severities (costaudit.rules.contract) and "never fail"
_RUN_KEYS = {"fail_on", "wait"}
_REPORT_KEYS = {"formats", "out"}
_STORE_KEYS = {"path", "memory_limit"}


@dataclass(frozen=True)
class RunSettings:
    """`[run]`: defaults of `costaudit run` options."""

    fail_on: str = "high"
    wait: float = 300.0


@dataclass(frozen=True)
class ReportSettings:
    """`[reports]`: what `costaudit run` writes, and where (an absolute folder)."""

    formats: tuple[str, ...] = ()
    out: Path = Path("reports")


def run_settings(config: ProjectConfig) -> RunSettings:
    """The `[run]` section, checked: unknown keys and bad values are UsageErrors naming the key."""
    section = config.section("run")
    _known(config, "run", section, _RUN_KEYS)
    fail_on = section.get("fail_on", RunSettings.fail_on)
    if fail_on not in FAIL_ON:
        raise UsageError(f"{config.path}: run.fail_on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    wait = section.get("wait", RunSettings.wait)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        raise UsageError(f"{config.path}: run.wait must be a number of seconds (0 or more), not {wait!r}")
    return RunSettings(fail_on=fail_on, wait=float(wait))


def report_settings(config: ProjectConfig) -> ReportSettings:
    """The `[reports]` section, checked; `out` resolved against the config file's folder."""
    section = config.section("reports")
    _known(config, "reports", section, _REPORT_KEYS)
    formats = section.get("formats", [])
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise UsageError(f"{config.path}: reports.formats must be a list such as [\"html\", \"json\"]")
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown:
        raise UsageError(
            f"{config.path}: reports.formats: unknown format(s) {', '.join(unknown)} (expected {', '.join(REPORT_FORMATS)})"
        )
    out = section.get("out", "reports")
    if not isinstance(out, str) or not out:
        raise UsageError(f"{config.path}: reports.out must be a folder name")
    return ReportSettings(formats=tuple(dict.fromkeys(formats)), out=(config.base / out).resolve())


def _known(config: ProjectConfig, name: str, section: dict[str, Any], keys: set[str]) -> None:
    unknown = sorted(set(section) - keys)
    if unknown:
        raise UsageError(f"{config.path}: unknown key(s) in {name}: {', '.join(unknown)} (expected {', '.join(sorted(keys))})")


def _read_project(config_path: Path) -> ProjectConfig:
    """Parse a TOML file and check the sections every command shares: a missing or malformed
    file, an unknown section (``[[supress]]``), a bad key or value in ``[store]``, ``[run]`` or
    ``[reports]``, a malformed ``[[sources]]`` entry or a credential is a UsageError naming it,
    whichever command reads the file (``[analysis]`` and ``[rules]`` are checked by their rooms)."""
    if not config_path.is_file():
        raise UsageError(f"{config_path}: config file not found")
    try:
        document = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{config_path}: not valid TOML ({exc})") from None
    unknown = sorted(set(document) - TOP_LEVEL)
    if unknown:
        raise UsageError(f"{config_path}: unknown section(s) {', '.join(unknown)} (expected {', '.join(sorted(TOP_LEVEL))})")
    _refuse_secrets(config_path, document)
    project = ProjectConfig(path=config_path, document=document, sources=_sources(config_path, document))
    store_settings(project)
    run_settings(project)
    report_settings(project)
    return project


def read_document(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file and check the sections every command shares (see `_read_project`)."""
    return _read_project(Path(path)).document


def check_memory_limit(value: str, where: str) -> str:
    """`value` if DuckDB accepts it as a memory limit (e.g. "2GB", "512MB"), else a UsageError
    naming `where` (the config key or the environment variable)."""
    import duckdb

    try:
        duckdb.connect(":memory:", config={"memory_limit": value}).close()
    except duckdb.Error:
        raise UsageError(f"{where} = {value!r}: expected an amount of memory such as \"2GB\" or \"512MB\"") from None
    return value


@dataclass(frozen=True)
class StoreSettings:
    """`[store]`: where the store is (absolute, or None for the default) and DuckDB's memory limit."""

    path: Path | None = None
    memory_limit: str | None = None


def store_settings(config: ProjectConfig) -> StoreSettings:
    """The `[store]` section, checked: unknown keys and bad values are UsageErrors naming the key."""
    section = config.section("store")
    _known(config, "store", section, _STORE_KEYS)
    memory = section.get("memory_limit")
    if memory is not None:
        if not isinstance(memory, str):
            raise UsageError(f"{config.path}: store.memory_limit must be a string such as \"2GB\", not {memory!r}")
        check_memory_limit(memory, f"{config.path}: store.memory_limit")
    return StoreSettings(path=config.store_path(), memory_limit=memory)


def load_config(path: str | Path | None = None) -> ProjectConfig:
    """Read costaudit.toml (./costaudit.toml when no path is given and it exists)."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return ProjectConfig(path=None, document={})
        path = DEFAULT_CONFIG
    return _read_project(Path(path).resolve())


def _sources(path: Path, document: dict[str, Any]) -> tuple[SourceConfig, ...]:
    entries = document.get("sources", [])
    if not isinstance(entries, list):
        raise UsageError(f"{path}: sources must be an array of tables ([[sources]])")
    sources = []
    names: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise UsageError(f"{path}: sources entry #{position} must be a table")
        name = entry.get("name")
        provider = entry.get("provider")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{path}: sources entry #{position} needs a name")
        if name in names:
            raise UsageError(f"{path}: two sources are named {name!r}")
        names.add(name)
        if provider not in PROVIDERS:
            raise UsageError(
                f"{path}: source {name!r}: provider must be one of {', '.join(sorted(PROVIDERS))}, not {provider!r}"
            )
        settings = {k: v for k, v in entry.items() if k not in {"name", "provider"}}
        sources.append(SourceConfig(name=name, provider=provider, settings=settings, position=position))
    return tuple(sources)


def _refuse_secrets(path: Path, value: Any, where: str = "") -> None:
    """Credentials belong to the SDKs' credential chains, never to this file."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if _SECRET_KEY.search(str(key)):
                raise UsageError(
                    f"{path}: key {here!r} looks like a credential; costaudit never reads credentials from its "
                    "config: use the cloud SDK's own credential chain (environment, profile, managed identity)"
                )
            _refuse_secrets(path, item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value, start=1):
            _refuse_secrets(path, item, f"{where}[{index}]")
