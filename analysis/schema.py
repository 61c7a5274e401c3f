"""Names shared by the analysis modules: the charge key, and the analysis tables' columns.

A charge key is the set of line-item columns the taxonomy reads. Billing data has many rows but
few distinct keys (a large month: tens of millions of rows, a few thousand keys), so analysis
classifies keys and joins the result back to the rows in views.
"""

from __future__ import annotations

from costaudit.connectors.sql import quote_ident

# Every column a rule can read, plus what region and volume resolution need. Changing this list
# changes which rows share a key; keep it in step with taxonomy.MATCH_FIELDS.
KEY_COLUMNS: tuple[str, ...] = (
    "ProviderName",
    "ServiceName",
    "ServiceCategory",
    "ServiceSubcategory",
    "x_ServiceCode",
    "x_UsageType",
    "x_Operation",
    "x_InstanceType",
    "x_ProductFamily",
    "x_SkuMeterCategory",
    "x_SkuMeterSubcategory",
    "x_SkuDescription",
    "ChargeDescription",
    "SkuMeter",
    "ChargeCategory",
    "ConsumedUnit",
    "PricingUnit",
    "RegionId",
    "x_FromRegionCode",
    "x_ToRegionCode",
)

# Columns analysis adds to each key (besides KEY_COLUMNS), with their DuckDB types.
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider_key", "VARCHAR"),
    ("instance_type", "VARCHAR"),
    ("ai_category", "VARCHAR"),
    ("ai_rule", "VARCHAR"),
    ("ai_reason", "VARCHAR"),
    ("ai_workload", "VARCHAR"),
    ("accelerator_model", "VARCHAR"),
    ("accelerator_count", "INTEGER"),
    ("token_direction", "VARCHAR"),
    ("ai_model", "VARCHAR"),
    ("network_class", "VARCHAR"),
    ("network_rule", "VARCHAR"),
    ("network_reason", "VARCHAR"),
    ("source_region", "VARCHAR"),
    ("destination_region", "VARCHAR"),
    ("storage_class", "VARCHAR"),
    ("storage_rule", "VARCHAR"),
    ("link_eligible", "BOOLEAN"),
    ("volume_basis", "VARCHAR"),
    ("volume_unit", "VARCHAR"),
    ("volume_factor", "DECIMAL(24,12)"),
)

# GB moved = quantity x factor; both exact decimals, so the product is exact at 24 places.
VOLUME_TYPE = "DECIMAL(38,24)"


def key_hash_sql(alias: str | None = None) -> str:
    """DuckDB's hash over the key columns, used to find distinct keys and to join rows to them.

    Both sides are hashed by the running DuckDB, so the view never depends on a stored hash."""
    prefix = f"{alias}." if alias else ""
    return "hash(" + ", ".join(prefix + quote_ident(c) for c in KEY_COLUMNS) + ")"
