"""The `[analysis]` part of costaudit.toml: what marks a resource as AI, and extra rules.

```toml
[analysis]
ai_tag_keys = ["workload", "team"]        # storage/network sharing one of these tags with an AI resource is ai_data
ai_accounts = ["123456789012", "ml-prod"]  # accounts, projects or subscriptions (id or name) whose storage/network is ai_data
link_file = "ai_resources.csv"             # resource_id[,reason]: storage/network resources that serve AI
rules_files = ["my_rules.toml"]            # more [[rule]] tables, same shape as the shipped taxonomy

[analysis.ai_tag_values]                   # tags that mark a storage/network resource as AI by themselves
workload = ["training", "inference"]

[[analysis.rules]]                         # rules evaluated before the shipped taxonomy
id = "acme-gpu-pool"
kind = "ai"
match = { usage = 'GpuPool' }
class = "accelerated_compute"
```

The lead will fold this into a project-wide config module; keep `load_analysis_config(path)`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costaudit.config import read_document
from costaudit.errors import UsageError

DEFAULT_CONFIG = Path("costaudit.toml")

_KNOWN_KEYS = {"ai_tag_keys", "ai_tag_values", "ai_accounts", "link_file", "rules", "rules_files"}


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings for `run_analysis`; the defaults classify with the shipped taxonomy only."""

    ai_tag_keys: tuple[str, ...] = ()
    ai_tag_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ai_accounts: tuple[str, ...] = ()
    link_file: Path | None = None
    rules: tuple[dict[str, Any], ...] = ()
    rules_files: tuple[Path, ...] = ()
    source: Path | None = None

    @property
    def tag_keys(self) -> tuple[str, ...]:
        """Every tag key analysis reads: shared-tag keys first, then keys with configured values."""
        keys = list(self.ai_tag_keys)
        keys += [key for key in self.ai_tag_values if key not in keys]
        return tuple(keys)

    def digest(self) -> str:
        """A hash of everything that changes the result, including the link and rules files' bytes."""
        payload = {
            "ai_tag_keys": list(self.ai_tag_keys),
            "ai_tag_values": {k: list(v) for k, v in sorted(self.ai_tag_values.items())},
            "ai_accounts": list(self.ai_accounts),
            "rules": list(self.rules),
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
        for path in ([self.link_file] if self.link_file else []) + list(self.rules_files):
            digest.update(path.name.encode())
            digest.update(path.read_bytes() if path.exists() else b"<missing>")
        return digest.hexdigest()


def load_analysis_config(path: str | Path | None = None) -> AnalysisConfig:
    """Read `[analysis]` from a costaudit.toml. Without a path, ./costaudit.toml is used when it
    exists, else the defaults. A bad file is a `UsageError` naming the file and the key."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return AnalysisConfig()
        path = DEFAULT_CONFIG
    config_path = Path(path)
    document = read_document(config_path)
    section = document.get("analysis", {})
    if not isinstance(section, dict):
        raise UsageError(f"{config_path}: [analysis] must be a table")
    unknown = sorted(set(section) - _KNOWN_KEYS)
    if unknown:
        raise UsageError(
            f"{config_path}: unknown key(s) in [analysis]: {', '.join(unknown)} "
            f"(expected {', '.join(sorted(_KNOWN_KEYS))})"
        )
    base = config_path.parent

    def strings(key: str) -> tuple[str, ...]:
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise UsageError(f"{config_path}: [analysis] {key} must be a list of non-empty strings")
        return tuple(value)

    tag_values = section.get("ai_tag_values", {})
    if not isinstance(tag_values, dict):
        raise UsageError(f"{config_path}: [analysis.ai_tag_values] must be a table of key = [values]")
    parsed_values: dict[str, tuple[str, ...]] = {}
    for key, values in tag_values.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"{config_path}: [analysis.ai_tag_values] {key} must be a list of strings")
        parsed_values[key] = tuple(values)
    for key in (*strings("ai_tag_keys"), *parsed_values):
        if '"' in key:
            raise UsageError(f"{config_path}: tag key {key!r} may not contain a double quote")

    link_file = section.get("link_file")
    if link_file is not None and not isinstance(link_file, str):
        raise UsageError(f"{config_path}: [analysis] link_file must be a file path")
    rules = section.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise UsageError(f"{config_path}: [[analysis.rules]] must be tables")
    return AnalysisConfig(
        ai_tag_keys=strings("ai_tag_keys"),
        ai_tag_values=parsed_values,
        ai_accounts=strings("ai_accounts"),
        link_file=(base / link_file) if link_file else None,
        rules=tuple(rules),
        rules_files=tuple(base / p for p in strings("rules_files")),
        source=config_path,
    )
