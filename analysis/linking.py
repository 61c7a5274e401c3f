"""Linking AI data: storage and network charges of resources that serve AI workloads.

A storage or network charge (one that no rule made AI spend itself) becomes `ai_data` when

- its resource is named in the link file (`resource_id[,reason]` CSV), or
- it sits in an account, project or subscription that costaudit.toml lists in `ai_accounts`
  (matched on SubAccountId or SubAccountName), or
- its resource carries a tag from `ai_tag_values`, or shares a tag (key in `ai_tag_keys`, same
  value) with a resource whose charges are AI spend.

This module turns each source into a small table of distinct ids or tag values with the reason;
the `analysis_line_items` view joins them to the rows.
"""

from __future__ import annotations

import polars as pl

from costaudit.errors import UsageError

from .config import AnalysisConfig


def link_file_resources(config: AnalysisConfig) -> pl.DataFrame:
    """ResourceId -> reason from the link file (first mention of a resource wins)."""
    schema = {"ResourceId": pl.String, "reason": pl.String}
    path = config.link_file
    if path is None:
        return pl.DataFrame(schema=schema)
    if not path.is_file():
        raise UsageError(f"{path}: link file not found (set by [analysis] link_file in {config.source})")
    try:
        links = pl.read_csv(path, infer_schema=False, comment_prefix="#")
    except pl.exceptions.PolarsError as exc:
        raise UsageError(f"{path}: cannot read the link file as CSV ({str(exc).splitlines()[0]})") from None
    if "resource_id" not in links.columns:
        raise UsageError(f"{path}: the link file needs a 'resource_id' column (found {', '.join(links.columns)})")
    note = pl.col("reason") if "reason" in links.columns else pl.lit(None, dtype=pl.String)
    return (
        links.select(pl.col("resource_id").str.strip_chars().alias("ResourceId"), note.alias("note"))
        .filter(pl.col("ResourceId").is_not_null() & (pl.col("ResourceId") != ""))
        .unique("ResourceId", keep="first", maintain_order=True)
        .select(
            "ResourceId",
            pl.concat_str(
                [pl.lit(f"link file {path.name} names this resource"),
                 pl.when(pl.col("note").is_not_null()).then(pl.lit(": ") + pl.col("note")).otherwise(pl.lit(""))]
            ).alias("reason"),
        )
    )


def ai_accounts(accounts: pl.DataFrame, config: AnalysisConfig) -> pl.DataFrame:
    """The (ProviderName, SubAccountId) pairs of the store that `ai_accounts` names, by id or name."""
    wanted = list(config.ai_accounts)
    by_id = pl.col("SubAccountId").is_in(wanted)
    by_name = pl.col("SubAccountName").is_in(wanted)
    where = f"costaudit.toml [analysis] ai_accounts ({config.source})" if config.source else "[analysis] ai_accounts"
    return (
        accounts.filter(by_id.fill_null(False) | by_name.fill_null(False))
        .with_columns(
            reason=pl.concat_str(
                [pl.lit("account "), pl.col("SubAccountId"),
                 pl.when(pl.col("SubAccountName").is_not_null())
                 .then(pl.lit(" (") + pl.col("SubAccountName") + pl.lit(")")).otherwise(pl.lit("")),
                 pl.lit(f" is marked AI in {where}")]
            )
        )
        .unique(["ProviderName", "SubAccountId"], keep="first", maintain_order=True)
        .select("ProviderName", "SubAccountId", "reason")
    )


def ai_tags(shared: pl.DataFrame, config: AnalysisConfig) -> pl.DataFrame:
    """Tag key/value pairs that make storage and network charges ai_data, with the reason.

    `shared` holds the tag values seen on AI spend: tag_key, tag_value, example_resource,
    example_category (one row per key and value). Configured values come first."""
    rows: list[dict[str, str]] = []
    for key, values in config.ai_tag_values.items():
        for value in values:
            rows.append({
                "tag_key": key, "tag_value": value, "source": "config",
                "reason": f"tag {key}={value} is an AI tag in [analysis] ai_tag_values",
            })
    configured = pl.DataFrame(rows, schema={"tag_key": pl.String, "tag_value": pl.String,
                                            "source": pl.String, "reason": pl.String})
    from_spend = shared.filter(pl.col("tag_key").is_in(list(config.ai_tag_keys))).select(
        "tag_key",
        "tag_value",
        pl.lit("shared").alias("source"),
        pl.concat_str(
            [pl.lit("tag "), pl.col("tag_key"), pl.lit("="), pl.col("tag_value"),
             pl.lit(" is shared with AI resource "), pl.coalesce(pl.col("example_resource"), pl.lit("(no resource id)")),
             pl.lit(" ("), pl.col("example_category"), pl.lit(")")]
        ).alias("reason"),
    )
    return pl.concat([configured, from_spend]).unique(["tag_key", "tag_value"], keep="first", maintain_order=True)
