"""What a classified key still needs from the lookup tables: accelerator model and count, region
ids for the transfer's source and destination, and the factor that turns its quantity into GB."""

from __future__ import annotations

import re
from decimal import Decimal

import polars as pl

from .taxonomy import Taxonomy

# "10 GB", "1 GB", "GB", "gibibyte", "Bytes": an optional multiplier and a unit name.
_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*([A-Za-z]+)\s*$")


def _accelerator_key() -> pl.Expr:
    """Lookup key for accelerators.csv: the instance type, or an Azure meter name such as
    'NC24ads A100 v4 Spot' read as 'nc24ads_a100_v4'."""
    is_azure = pl.col("provider_key") == "azure"
    azure_meter = pl.when(is_azure).then(pl.coalesce("x_UsageType", "ChargeDescription"))
    azure_meter = azure_meter.str.to_lowercase().str.replace(r"\s+(spot|low priority)$", "")
    raw = pl.coalesce(pl.col("instance_type"), azure_meter)
    return raw.str.to_lowercase().str.replace(r"^standard_", "").str.replace_all(r"\s+", "_")


def _with_accelerators(frame: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    lookup = table.select(
        pl.col("provider").alias("provider_key"),
        pl.col("instance_type").str.to_lowercase().alias("__accel_key"),
        pl.col("accelerator").alias("__accel_model"),
        pl.col("accelerator_count").alias("__accel_count"),
    ).unique(["provider_key", "__accel_key"], keep="first")
    is_ai = pl.col("ai_category").is_not_null()
    return (
        frame.with_columns(__accel_key=_accelerator_key())
        .join(lookup, on=["provider_key", "__accel_key"], how="left")
        .with_columns(
            # The table is per size, so it is more precise than a family-level rule output.
            accelerator_model=pl.when(is_ai).then(pl.coalesce("__accel_model", "accelerator_model")),
            accelerator_count=pl.when(is_ai)
            .then(pl.coalesce("__accel_count", "accelerator_count"))
            .cast(pl.Int32, strict=False),
        )
        .drop("__accel_key", "__accel_model", "__accel_count")
    )


def _resolve(column: str, taxonomy: Taxonomy) -> pl.Expr:
    """Region codes (USE1) and location names (US East (N. Virginia)) to region ids; other text as is."""
    codes = dict(taxonomy.tables["aws_region_codes"].select("code", "region_id").iter_rows())
    names = {k.lower(): v for k, v in taxonomy.tables["location_names"].select("name", "region_id").iter_rows()}
    raw = pl.col(column).str.strip_chars()
    by_code = pl.when(pl.col("provider_key") == "aws").then(raw.str.to_uppercase().replace_strict(codes, default=None))
    by_name = raw.str.to_lowercase().replace_strict(names, default=None)
    return pl.coalesce(by_code, by_name, raw)


def _with_regions(frame: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """source_region / destination_region: what the rule read, else the export's own from/to
    region columns, else the class default from taxonomy.toml ('@region' = the row's RegionId)."""
    def default(end: str) -> pl.Expr:
        expr = pl.lit(None, dtype=pl.String)
        for cls, ends in taxonomy.network_defaults.items():
            value = ends.get(end)
            if value is None:
                continue
            filled = pl.col("RegionId") if value == "@region" else pl.lit(value)
            expr = pl.when(pl.col("network_class") == cls).then(filled).otherwise(expr)
        return expr

    is_network = pl.col("network_class").is_not_null()
    return frame.with_columns(
        source_region=pl.when(is_network).then(
            pl.coalesce(_resolve("source_region", taxonomy), pl.col("x_FromRegionCode"), default("source"))
        ),
        destination_region=pl.when(is_network).then(
            pl.coalesce(_resolve("destination_region", taxonomy), pl.col("x_ToRegionCode"), default("destination"))
        ),
    )


def unit_factors(units: list[str], table: pl.DataFrame) -> dict[str, str]:
    """GB per unit for each distinct unit text that is a data volume, as exact decimal strings."""
    per_unit = {row[0].lower(): Decimal(row[1]) for row in table.select("unit", "gb_per_unit").iter_rows()}
    factors: dict[str, str] = {}
    for unit in units:
        found = _UNIT.match(unit or "")
        if not found or found.group(2).lower() not in per_unit:
            continue
        multiplier = Decimal(found.group(1)) if found.group(1) else Decimal(1)
        factors[unit] = format(multiplier * per_unit[found.group(2).lower()], "f")
    return factors


def _with_volume(frame: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """Which quantity measures the data moved (pricing quantity first) and its GB factor."""
    units = frame.select(pl.concat_list("PricingUnit", "ConsumedUnit").explode().drop_nulls().unique())
    factors = unit_factors(units.to_series().to_list(), taxonomy.tables["data_units"])
    is_network = pl.col("network_class").is_not_null()
    pricing = pl.col("PricingUnit").replace_strict(factors, default=None)
    consumed = pl.col("ConsumedUnit").replace_strict(factors, default=None)
    return frame.with_columns(
        volume_basis=pl.when(is_network & pricing.is_not_null()).then(pl.lit("PricingQuantity"))
        .when(is_network & consumed.is_not_null()).then(pl.lit("ConsumedQuantity")),
        volume_unit=pl.when(is_network & pricing.is_not_null()).then(pl.col("PricingUnit"))
        .when(is_network & consumed.is_not_null()).then(pl.col("ConsumedUnit")),
        volume_factor=pl.when(is_network).then(pl.coalesce(pricing, consumed)),
    )


def enrich(frame: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """Accelerators, regions, volume factor and whether linking may make the key ai_data."""
    frame = _with_accelerators(frame, taxonomy.tables["accelerators"])
    frame = _with_regions(frame, taxonomy)
    frame = _with_volume(frame, taxonomy)
    return frame.with_columns(
        link_eligible=pl.col("ai_category").is_null()
        & (pl.col("network_class").is_not_null() | pl.col("storage_class").is_not_null())
    )
