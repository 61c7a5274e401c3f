"""Names shared by the analysis modules: the charge key, and the analysis tables' columns.

A charge key is the set of line-item columns the taxonomy reads. Billing data has many rows but
few distinct keys (a large month: tens of millions of rows, a few thousand keys), so analysis
classifies keys and joins the result back to the rows in views.
"""

from __future__ import annotations

from costaudit.schema import CHARGE_KEY_COLUMNS

# Every column a rule can read, plus what region and volume resolution need: the store's charge
# key (costaudit.schema.CHARGE_KEY_COLUMNS), whose hash it keeps on every row as x_ChargeKey.
KEY_COLUMNS: tuple[str, ...] = CHARGE_KEY_COLUMNS

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
