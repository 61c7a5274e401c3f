"""The rules' part of costaudit.toml: thresholds, disabled rules, cost basis and suppressions.

```toml
[rules]
cost_basis = "EffectiveCost"          # or "BilledCost": the basis of every saving estimate
disabled = ["storage_dataset_multi_region"]

[rules.compute_rightsize]             # override any parameter of a rule by name
cpu_p95_threshold = 30.0
lookback_days = 30

[[suppress]]                          # by fingerprint (the first 12 characters are enough) ...
fingerprint = "3f2a9c0d51e7"
reason = "batch host, sized for the month-end peak"
expires = 2025-03-31                  # optional; an expired suppression no longer applies

[[suppress]]                          # ... or by rule and resource id
rule = "storage_aged_snapshots"
resource = "arn:aws:ec2:us-east-1:111122223333:snapshot/snap-0abc"
reason = "legal hold until the case closes"
```

Unknown rule ids, unknown parameters and values of the wrong type are errors naming the file
and the key, so a typo never silently leaves a default in force. (Messages spell tables without
brackets, e.g. ``rules.compute_rightsize``, because the CLI prints them through rich markup.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from costaudit.config import read_document
from costaudit.errors import UsageError

from .contract import COST_BASES, LoadedRule, ParamValue

DEFAULT_CONFIG = Path("costaudit.toml")
MIN_FINGERPRINT_PREFIX = 12
_RULES_KEYS = {"cost_basis", "disabled"}
_SUPPRESS_KEYS = {"fingerprint", "rule", "resource", "reason", "expires"}


@dataclass(frozen=True)
class Suppression:
    """A finding the team has decided to live with: matched by fingerprint prefix or rule + resource
    (case-insensitively), in SQL by `runner._apply_suppressions`."""

    reason: str
    fingerprint: str | None = None
    rule: str | None = None
    resource: str | None = None
    expires: date | None = None
    position: int = 0  # 1-based index among the suppress entries, for messages

    def expired(self, today: date) -> bool:
        return self.expires is not None and self.expires < today

    def describe(self) -> str:
        target = f"fingerprint {self.fingerprint}" if self.fingerprint else f"{self.rule} on {self.resource}"
        return f"suppress entry #{self.position} ({target})"


@dataclass(frozen=True)
class RulesConfig:
    """Settings for `run_audit`; the defaults run every rule with its own defaults."""

    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    disabled: tuple[str, ...] = ()
    cost_basis: str = "EffectiveCost"
    suppressions: tuple[Suppression, ...] = ()
    source: Path | None = None

    def resolve(self, rules: list[LoadedRule]) -> dict[str, dict[str, ParamValue]]:
        """Each rule's parameters: defaults overridden by the file. Errors name the key."""
        where = str(self.source or "configuration")
        known = {r.id: r for r in rules}
        unknown = sorted((set(self.overrides) | set(self.disabled)) - set(known))
        unknown += sorted({s.rule for s in self.suppressions if s.rule and s.rule not in known})
        if unknown:
            raise UsageError(
                f"{where}: unknown rule id(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        resolved: dict[str, dict[str, ParamValue]] = {}
        for rule_id, loaded in known.items():
            params = {name: p.default for name, p in loaded.rule.parameters.items()}
            for name, value in self.overrides.get(rule_id, {}).items():
                param = loaded.rule.parameters.get(name)
                if param is None:
                    raise UsageError(
                        f"{where}: table rules.{rule_id} has no parameter {name!r} "
                        f"(parameters: {', '.join(sorted(loaded.rule.parameters)) or 'none'})"
                    )
                try:
                    params[name] = param.coerce(value)
                except ValueError as exc:
                    raise UsageError(f"{where}: rules.{rule_id}.{name} = {value!r}: {exc}") from None
            resolved[rule_id] = params
        return resolved

    def digest(self) -> str:
        """A hash of every setting that changes findings (stored with each run)."""
        payload = {
            "overrides": self.overrides,
            "disabled": sorted(self.disabled),
            "cost_basis": self.cost_basis,
            "suppress": [
                [s.fingerprint, s.rule, s.resource, s.reason, s.expires.isoformat() if s.expires else None]
                for s in self.suppressions
            ],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_rules_config(path: str | Path | None = None) -> RulesConfig:
    """Read `[rules]` and `[[suppress]]` from a costaudit.toml. Without a path, ./costaudit.toml
    is used when it exists, else the defaults."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return RulesConfig()
        path = DEFAULT_CONFIG
    config_path = Path(path)
    return parse_rules_config(read_document(config_path), config_path)


def parse_rules_config(document: dict[str, Any], source: Path | None = None) -> RulesConfig:
    """The rules settings from an already parsed TOML document."""
    where = str(source or "configuration")
    section = document.get("rules", {})
    if not isinstance(section, dict):
        raise UsageError(f"{where}: rules must be a table")
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in section.items():
        if key in _RULES_KEYS:
            continue
        if not isinstance(value, dict):
            raise UsageError(
                f"{where}: rules.{key} is not a setting ({', '.join(sorted(_RULES_KEYS))}) "
                f"nor a table of parameters of rule {key}"
            )
        overrides[key] = dict(value)
    cost_basis = section.get("cost_basis", "EffectiveCost")
    if cost_basis not in COST_BASES:
        raise UsageError(f"{where}: rules.cost_basis must be one of {', '.join(COST_BASES)}, not {cost_basis!r}")
    disabled = section.get("disabled", [])
    if not isinstance(disabled, list) or not all(isinstance(d, str) for d in disabled):
        raise UsageError(f"{where}: rules.disabled must be a list of rule ids")
    suppress = document.get("suppress", [])
    if not isinstance(suppress, list) or not all(isinstance(s, dict) for s in suppress):
        raise UsageError(f"{where}: suppress must be an array of tables (one [[suppress]] per entry)")
    suppressions = tuple(_suppression(entry, i + 1, where) for i, entry in enumerate(suppress))
    return RulesConfig(overrides, tuple(disabled), cost_basis, suppressions, source)


def _suppression(entry: dict[str, Any], position: int, where: str) -> Suppression:
    label = f"{where}: suppress entry #{position}"
    unknown = sorted(set(entry) - _SUPPRESS_KEYS)
    if unknown:
        raise UsageError(f"{label}: unknown key(s) {', '.join(unknown)} (expected {', '.join(sorted(_SUPPRESS_KEYS))})")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(f"{label}: a reason is required (say why this finding is accepted)")
    fp, rule, resource = entry.get("fingerprint"), entry.get("rule"), entry.get("resource")
    if fp is not None:
        if rule is not None or resource is not None:
            raise UsageError(f"{label}: give either fingerprint or rule + resource, not both")
        if not isinstance(fp, str) or len(fp) < MIN_FINGERPRINT_PREFIX or not all(c in "0123456789abcdef" for c in fp.lower()):
            raise UsageError(f"{label}: fingerprint must be at least {MIN_FINGERPRINT_PREFIX} hex characters")
        fp = fp.lower()
    elif not (isinstance(rule, str) and isinstance(resource, str) and rule and resource):
        raise UsageError(f"{label}: give a fingerprint, or both rule and resource")
    return Suppression(reason.strip(), fp, rule, resource, _expiry(entry.get("expires"), label), position)


def _expiry(value: Any, label: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise UsageError(f"{label}: expires must be a date such as 2025-03-31, not {value!r}")
