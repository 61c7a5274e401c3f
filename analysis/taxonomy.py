"""The charge taxonomy: ordered rules and lookup tables shipped as data in `taxonomy/`.

A rule says: for charges of this provider whose fields match these regexes, the AI category (or
network class, or storage class) is X, and here is what else the match tells (workload,
accelerator, token direction, model, source and destination region). Rules are TOML tables; a
user's rules (from costaudit.toml) have the same shape and are evaluated first. Within each kind
the first matching rule wins. See `taxonomy/README.md` for the fields.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from costaudit.errors import UsageError

TAXONOMY_DIR = Path(__file__).parent / "taxonomy"

KINDS = ("ai", "network", "storage")

# Rule field -> the key columns it is tested against (a match in any of them counts).
MATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "service": ("x_ServiceCode", "ServiceName"),
    "service_category": ("ServiceCategory",),
    "service_subcategory": ("ServiceSubcategory",),
    "family": ("x_ProductFamily", "x_SkuMeterCategory"),
    "subfamily": ("x_SkuMeterSubcategory",),
    "usage": ("x_UsageType", "SkuMeter"),
    "operation": ("x_Operation",),
    "instance": ("instance_type",),
    "description": ("x_SkuDescription", "ChargeDescription"),
    "charge_category": ("ChargeCategory",),
    "unit": ("PricingUnit", "ConsumedUnit"),
    "region": ("RegionId",),
}

OUTPUT_FIELDS = (
    "workload", "accelerator", "accelerator_count", "token_direction", "model", "source_region", "destination_region",
)
_RULE_KEYS = {"id", "kind", "provider", "match", "class", "note", *OUTPUT_FIELDS}
_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Rule:
    """One taxonomy row. `match` maps a field of MATCH_FIELDS to a case-insensitive regex."""

    id: str
    kind: str
    provider: str
    match: tuple[tuple[str, str], ...]
    cls: str
    outputs: tuple[tuple[str, str], ...]
    origin: str
    note: str = ""

    def output(self, name: str) -> str | None:
        return dict(self.outputs).get(name)


@dataclass
class Taxonomy:
    """The rules in evaluation order plus the lookup tables, with a version and content digest."""

    version: str
    digest: str
    rules: list[Rule]
    classes: dict[str, tuple[str, ...]]
    network_defaults: dict[str, dict[str, str]]
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def rules_of(self, kind: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.kind == kind]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read rules ({exc})") from None


def read_table(path: Path) -> pl.DataFrame:
    """A lookup CSV: one header line, `#` comment lines, every column text."""
    return pl.read_csv(path, comment_prefix="#", infer_schema=False)


def _check_regex(pattern: str, where: str) -> None:
    try:
        pl.Series("probe", [""], dtype=pl.String).str.contains(f"(?i){pattern}")
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"{where}: invalid regex {pattern!r} ({first})") from None


def parse_rules(
    items: Iterable[Mapping[str, Any]],
    origin: str,
    classes: Mapping[str, tuple[str, ...]],
    default_provider: str = "any",
) -> list[Rule]:
    """Validate rule tables and turn them into `Rule`s. Every mistake names the rule and file."""
    rules: list[Rule] = []
    for position, item in enumerate(items, start=1):
        rule_id = item.get("id")
        where = f"{origin}: rule {rule_id!r}" if rule_id else f"{origin}: rule #{position}"
        if not isinstance(rule_id, str) or not rule_id:
            raise UsageError(f"{where}: every rule needs an id")
        unknown = sorted(set(item) - _RULE_KEYS)
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)} (expected {', '.join(sorted(_RULE_KEYS))})")
        kind = item.get("kind")
        if kind not in KINDS:
            raise UsageError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        cls = item.get("class")
        if cls not in classes[kind]:
            raise UsageError(f"{where}: class {cls!r} is not a {kind} class ({', '.join(classes[kind])})")
        match = item.get("match")
        if not isinstance(match, Mapping) or not match:
            raise UsageError(f"{where}: match must be a table of field = 'regex' with at least one field")
        groups: set[str] = set()
        for field_name, pattern in match.items():
            if field_name not in MATCH_FIELDS:
                raise UsageError(f"{where}: cannot match on {field_name!r} (fields: {', '.join(MATCH_FIELDS)})")
            if not isinstance(pattern, str) or not pattern:
                raise UsageError(f"{where}: the pattern for {field_name} must be a non-empty string")
            _check_regex(pattern, f"{where}, field {field_name}")
            groups.update(_GROUP.findall(pattern))
        outputs: list[tuple[str, str]] = []
        for name in OUTPUT_FIELDS:
            value = item.get(name)
            if value is None:
                continue
            value = str(value)
            missing = [g for g in _TEMPLATE.findall(value) if g not in groups]
            if missing:
                raise UsageError(f"{where}: {name} uses {{{missing[0]}}} but no pattern has a group (?P<{missing[0]}>...)")
            if name == "accelerator_count" and not _TEMPLATE.search(value) and not value.isdigit():
                raise UsageError(f"{where}: accelerator_count must be a whole number or a {{group}}")
            outputs.append((name, value))
        provider = str(item.get("provider", default_provider)).lower()
        rules.append(
            Rule(
                id=rule_id, kind=kind, provider=provider, match=tuple((k, str(v)) for k, v in match.items()),
                cls=cls, outputs=tuple(outputs), origin=origin, note=str(item.get("note", "")),
            )
        )
    return rules


def load_taxonomy(extra_rules: Iterable[Mapping[str, Any]] = (), extra_files: Iterable[Path] = ()) -> Taxonomy:
    """The shipped taxonomy, with a user's rules (inline tables, then files) evaluated first.

    A user rule with the id of a shipped rule replaces it: that is how a pattern is overridden.
    """
    manifest_path = TAXONOMY_DIR / "taxonomy.toml"
    manifest = _read_toml(manifest_path)
    classes = {kind: tuple(manifest["classes"][kind]) for kind in KINDS}
    digest = hashlib.sha256()
    shipped: list[Rule] = []
    for name in manifest["rule_files"]:
        path = TAXONOMY_DIR / name
        digest.update(path.read_bytes())
        document = _read_toml(path)
        shipped += parse_rules(document.get("rule", []), name, classes, document.get("provider", "any"))
    user: list[Rule] = parse_rules(extra_rules, "costaudit.toml [[analysis.rules]]", classes)
    for path in extra_files:
        document = _read_toml(path)
        user += parse_rules(document.get("rule", []), str(path), classes, document.get("provider", "any"))
    _check_unique(shipped, "the shipped taxonomy")
    _check_unique(user, "your rules")
    overridden = {rule.id for rule in user}
    rules = user + [rule for rule in shipped if rule.id not in overridden]
    tables: dict[str, pl.DataFrame] = {}
    for table_name, file_name in manifest["tables"].items():
        path = TAXONOMY_DIR / file_name
        digest.update(path.read_bytes())
        tables[table_name] = read_table(path)
    return Taxonomy(
        version=str(manifest["version"]),
        digest=digest.hexdigest(),
        rules=rules,
        classes=classes,
        network_defaults={k: dict(v) for k, v in manifest.get("network_defaults", {}).items()},
        tables=tables,
    )


def _check_unique(rules: list[Rule], label: str) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise UsageError(f"{rule.origin}: rule id {rule.id!r} is used twice in {label}")
        seen.add(rule.id)
