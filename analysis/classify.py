"""Apply the taxonomy to distinct charge keys with polars.

Each rule is one vectorised filter over the keys that no earlier rule of the same kind took
(first match wins); there is no per-row Python. The result says, for every key, which rule
matched, why (the column values and the patterns they matched), and what the match tells.
"""

from __future__ import annotations

import re

import polars as pl

from .enrich import enrich
from .schema import KEY_COLUMNS
from .taxonomy import KINDS, MATCH_FIELDS, Rule, Taxonomy

ROW = "__key_row"
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")

# Instance types inside usage types: BoxUsage:p4d.24xlarge, USE1-Train:ml.g5.2xlarge,
# USE1-Studio:JupyterLab-ml.r6i.4xlarge, SpotUsage:g5.xlarge.
_USAGE_INSTANCE = r"(?i)(?:^|[:\-])(?:ml\.)?([a-z]+[0-9][a-z0-9-]*\.(?:[0-9]*x?large|metal[a-z0-9-]*|medium|small|micro|nano))(?:$|[-:])"
# ... and in rate descriptions of FOCUS files that keep no usage type:
# "$1.624 per On Demand Linux g5.4xlarge Instance Hour".
_DESCRIPTION_INSTANCE = r"(?i)\b(?:ml\.)?([a-z]+[0-9][a-z0-9-]*\.(?:[0-9]*x?large|metal[a-z0-9-]*|medium|small|micro|nano))\b"

# Per kind: the output columns and the rule outputs that feed them.
_OUTPUTS: dict[str, dict[str, str]] = {
    "ai": {
        "ai_workload": "workload", "accelerator_model": "accelerator", "accelerator_count": "accelerator_count",
        "token_direction": "token_direction", "ai_model": "model",
    },
    "network": {"source_region": "source_region", "destination_region": "destination_region"},
    "storage": {},
}


def _flagged(pattern: str) -> str:
    return f"(?i){pattern}"


def _derived(keys: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """Add provider_key (which rules apply) and instance_type (read rules' `instance` against)."""
    provider = pl.col("ProviderName").str.to_lowercase()
    for row in reversed(list(taxonomy.tables["providers"].iter_rows(named=True))):
        provider = (
            pl.when(pl.col("ProviderName").str.contains(_flagged(row["pattern"])).fill_null(False))
            .then(pl.lit(row["provider"]))
            .otherwise(provider)
        )
    declared = pl.col("x_InstanceType").str.strip_chars().str.to_lowercase().str.replace(r"^ml\.", "")
    from_usage = pl.col("x_UsageType").str.extract(_USAGE_INSTANCE, 1).str.to_lowercase()
    from_description = pl.col("ChargeDescription").str.extract(_DESCRIPTION_INSTANCE, 1).str.to_lowercase()
    return keys.with_columns(
        provider_key=pl.coalesce(provider, pl.lit("unknown")),
        instance_type=pl.coalesce(pl.when(declared != "").then(declared), from_usage, from_description),
    )


def _field_mask(field: str, pattern: str) -> pl.Expr:
    return pl.any_horizontal(
        [pl.col(c).str.contains(_flagged(pattern)).fill_null(False) for c in MATCH_FIELDS[field]]
    )


def _group_exprs(rule: Rule) -> dict[str, pl.Expr]:
    """Named groups of the rule's patterns, taken from the first column of each field that matched."""
    groups: dict[str, list[pl.Expr]] = {}
    for field, pattern in rule.match:
        names = _GROUP.findall(pattern)
        if not names:
            continue
        for column in MATCH_FIELDS[field]:
            matched = pl.col(column).str.contains(_flagged(pattern)).fill_null(False)
            extracted = pl.col(column).str.extract_groups(_flagged(pattern))
            for name in names:
                value = extracted.struct.field(name).str.strip_chars()
                groups.setdefault(name, []).append(pl.when(matched & (value != "")).then(value))
    return {name: pl.coalesce(exprs) for name, exprs in groups.items()}


def _template(value: str, groups: dict[str, pl.Expr]) -> pl.Expr:
    """A literal, or a template such as "{model}" / "Nvidia {accelerator}" (null if a group is missing)."""
    parts: list[pl.Expr] = []
    position = 0
    for found in _TEMPLATE.finditer(value):
        if found.start() > position:
            parts.append(pl.lit(value[position:found.start()]))
        parts.append(groups[found.group(1)])
        position = found.end()
    if not parts:
        return pl.lit(value)
    if position < len(value):
        parts.append(pl.lit(value[position:]))
    return pl.concat_str(parts) if len(parts) > 1 else parts[0]


def _reason(rule: Rule) -> pl.Expr:
    """'<rule id> (<file>): <column> '<value>' ~ /<pattern>/; ...' for the columns that matched."""
    pieces: list[pl.Expr] = [pl.lit(f"{rule.id} ({rule.origin}): ")]
    for index, (field, pattern) in enumerate(rule.match):
        shown = [
            pl.when(pl.col(c).str.contains(_flagged(pattern)).fill_null(False)).then(
                pl.concat_str([pl.lit(f"{c} '"), pl.col(c), pl.lit(f"' ~ /{pattern}/")])
            )
            for c in MATCH_FIELDS[field]
        ]
        if index:
            pieces.append(pl.lit("; "))
        pieces.append(pl.coalesce(shown))
    return pl.concat_str(pieces)


def _apply_kind(frame: pl.DataFrame, rules: list[Rule], kind: str) -> pl.DataFrame:
    """First-match evaluation of one kind's rules; returns ROW, class, rule, reason and outputs."""
    outputs = _OUTPUTS[kind]
    columns = [f"{kind}_class", f"{kind}_rule", f"{kind}_reason", *outputs]
    remaining = frame
    found: list[pl.DataFrame] = []
    for rule in rules:
        if remaining.is_empty():
            break
        mask = pl.all_horizontal([_field_mask(field, pattern) for field, pattern in rule.match])
        remaining = remaining.with_columns(__hit=mask)
        hit = remaining.filter(pl.col("__hit"))
        remaining = remaining.filter(~pl.col("__hit")).drop("__hit")
        if hit.is_empty():
            continue
        groups = _group_exprs(rule)
        selected = [
            pl.col(ROW),
            pl.lit(None if rule.cls == "none" else rule.cls, dtype=pl.String).alias(f"{kind}_class"),
            pl.lit(rule.id).alias(f"{kind}_rule"),
            _reason(rule).alias(f"{kind}_reason"),
        ]
        for column, output in outputs.items():
            value = rule.output(output)
            expr = pl.lit(None, dtype=pl.String) if value is None or rule.cls == "none" else _template(value, groups)
            selected.append(expr.cast(pl.String).alias(column))
        found.append(hit.select(selected))
    if not found:
        return pl.DataFrame(schema={ROW: pl.UInt32, **{c: pl.String for c in columns}})
    return pl.concat(found)


def classify_keys(keys: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """Classify distinct charge keys: one output row per input row, in the same order.

    `keys` must have every column of KEY_COLUMNS (text); other columns are kept as they are.
    """
    frame = _derived(keys.with_row_index(ROW), taxonomy)
    results: dict[str, list[pl.DataFrame]] = {kind: [] for kind in KINDS}
    for provider_key in frame.get_column("provider_key").unique().sort().to_list():
        part = frame.filter(pl.col("provider_key") == provider_key)
        for kind in KINDS:
            applicable = [r for r in taxonomy.rules_of(kind) if r.provider in ("any", provider_key)]
            results[kind].append(_apply_kind(part, applicable, kind))
    classified = frame
    for kind in KINDS:
        classified = classified.join(pl.concat(results[kind]), on=ROW, how="left")
    classified = classified.rename(
        {"ai_class": "ai_category", "network_class": "network_class", "storage_class": "storage_class"}
    ).drop("storage_reason")
    return enrich(classified, taxonomy).sort(ROW).drop(ROW)


__all__ = ["KEY_COLUMNS", "classify_keys"]
