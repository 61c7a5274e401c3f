"""Tables and views of the rules room, created with ``CREATE ... IF NOT EXISTS``.

`ensure_rules_schema` is called by the store when it opens (and by the runner and the file
importers, so they also work on a store opened by an older build).

Tables
  ``runs``              one row per audit run: window, config hash, counts, status
  ``rule_results``      one row per (run, rule): ok / skipped / disabled / error, with the reason
  ``findings``          one row per (run, finding fingerprint), with the fixed finding columns
  ``resource_metrics``  utilisation samples imported from files (long format)
  ``storage_objects``   object listings from storage inventories (size, content hash, class)
  ``instance_catalogue``/``instance_prices``  instance specs and list prices (shipped as data)
  ``storage_prices``    object storage list prices per GiB-month by class (shipped as data)

Views (public names, documented in the README)
  ``latest_findings``   the findings of the most recent complete run
  ``findings_changes``  what changed between the last two complete runs, per fingerprint
"""

from __future__ import annotations

import duckdb

from costaudit.connectors.sql import quote_ident

MONEY = "DECIMAL(38,12)"

_TABLES = [
    """
    CREATE TABLE IF NOT EXISTS runs (
      run_id VARCHAR PRIMARY KEY,
      started_at TIMESTAMPTZ NOT NULL,
      finished_at TIMESTAMPTZ,
      status VARCHAR NOT NULL,               -- 'complete' or 'failed'
      since TIMESTAMPTZ,                     -- first billing month audited (inclusive)
      until TIMESTAMPTZ,                     -- month after the last one audited (exclusive)
      periods JSON,                          -- billing periods with data in the window
      cost_basis VARCHAR NOT NULL,
      config_digest VARCHAR NOT NULL,
      config_file VARCHAR,
      billing_rows BIGINT,
      rules_run INTEGER, rules_skipped INTEGER, rules_failed INTEGER,
      findings_open INTEGER, findings_suppressed INTEGER, findings_not_assessed INTEGER
    )""",
    """
    CREATE TABLE IF NOT EXISTS rule_results (
      run_id VARCHAR NOT NULL,
      rule_id VARCHAR NOT NULL,
      status VARCHAR NOT NULL,               -- 'ok', 'skipped', 'disabled', 'error'
      reason VARCHAR,
      findings INTEGER NOT NULL,
      parameters JSON,
      origin VARCHAR,
      PRIMARY KEY (run_id, rule_id)
    )""",
    f"""
    CREATE TABLE IF NOT EXISTS findings (
      run_id VARCHAR NOT NULL,
      fingerprint VARCHAR NOT NULL,
      rule_id VARCHAR NOT NULL,
      family VARCHAR NOT NULL,
      severity VARCHAR NOT NULL,
      title VARCHAR NOT NULL,
      status VARCHAR NOT NULL,               -- 'open', 'suppressed', 'not_assessed'
      provider VARCHAR NOT NULL,
      billing_account_id VARCHAR,
      sub_account_id VARCHAR,
      region VARCHAR,
      resource_id VARCHAR NOT NULL,
      billing_period TIMESTAMPTZ,
      summary VARCHAR NOT NULL,
      evidence JSON NOT NULL,
      monthly_cost_in_scope {MONEY},
      estimated_monthly_saving {MONEY},
      currency VARCHAR,
      estimate_method VARCHAR NOT NULL,
      cost_basis VARCHAR NOT NULL,
      suppression_reason VARCHAR,
      suppression_expires DATE,
      suppression_note VARCHAR
      -- one row per (run_id, fingerprint): the runner refuses a rule's duplicate fingerprints and a
      -- fingerprint names its rule. No PRIMARY KEY: its index cost 3-4 s of storing 945k findings
      -- (50M line items) and grows with every run kept; stores made before drop it (`drop_primary_key`).
    )""",
    """
    CREATE TABLE IF NOT EXISTS resource_metrics (
      resource_id VARCHAR NOT NULL,
      metric VARCHAR NOT NULL,               -- cpu_utilization, memory_utilization, gpu_utilization,
                                             -- gpu_memory_utilization (percent), network_in_bytes, network_out_bytes
      sampled_at TIMESTAMPTZ NOT NULL,
      value DOUBLE NOT NULL,
      source_file VARCHAR,
      imported_at TIMESTAMPTZ
      -- one row per (resource_id, metric, sampled_at): `import_metrics` replaces the samples it
      -- imports again. No PRIMARY KEY: its index made 7.6M samples take 60 s to import, 50 of them
      -- building the index (bench/README.md, "Fifth round"); stores made before drop it on import
      -- (`drop_primary_key`).
    )""",
    """
    CREATE TABLE IF NOT EXISTS storage_objects (
      provider VARCHAR NOT NULL,             -- FOCUS ProviderName: AWS, Google Cloud, Microsoft
      storage_account VARCHAR,               -- Azure storage account (NULL for S3 and GCS)
      bucket VARCHAR NOT NULL,               -- S3/GCS bucket, Azure container
      location VARCHAR NOT NULL,             -- s3://b, gs://b, https://acct.blob.core.windows.net/c
      object_key VARCHAR NOT NULL,
      version_id VARCHAR,
      is_latest BOOLEAN,
      size_bytes BIGINT NOT NULL,
      last_modified TIMESTAMPTZ,
      storage_class VARCHAR,
      region VARCHAR,
      billing_account_id VARCHAR,
      content_hash VARCHAR,                  -- lower-case hex
      hash_kind VARCHAR,                     -- md5, multipart-etag, crc32c, opaque-etag
      crc32c VARCHAR,
      inventory_format VARCHAR NOT NULL,
      inventory_time TIMESTAMPTZ,
      source_file VARCHAR,
      imported_at TIMESTAMPTZ
    )""",
    """
    CREATE TABLE IF NOT EXISTS instance_catalogue (
      provider_key VARCHAR NOT NULL,         -- aws, gcp, azure
      instance_type VARCHAR NOT NULL,        -- as the provider spells it
      type_key VARCHAR NOT NULL,             -- lower case, Azure without Standard_, spaces as _
      family VARCHAR NOT NULL,
      vcpu DECIMAL(10,2) NOT NULL,
      memory_gib DECIMAL(12,2) NOT NULL,
      accelerator_model VARCHAR,
      accelerator_count DECIMAL(10,4) NOT NULL,
      accelerator_memory_gib DECIMAL(10,2),
      source VARCHAR NOT NULL,
      PRIMARY KEY (provider_key, type_key)
    )""",
    """
    CREATE TABLE IF NOT EXISTS instance_prices (
      provider_key VARCHAR NOT NULL,
      type_key VARCHAR NOT NULL,
      region VARCHAR NOT NULL,
      hourly_price DECIMAL(18,6) NOT NULL,
      currency VARCHAR NOT NULL,
      price_note VARCHAR NOT NULL,           -- e.g. 'list price, us-east-1, Linux on-demand, as of 2024-06'
      source VARCHAR NOT NULL,
      PRIMARY KEY (provider_key, type_key, region)
    )""",
    """
    CREATE TABLE IF NOT EXISTS storage_prices (
      provider_key VARCHAR NOT NULL,
      storage_class VARCHAR NOT NULL,        -- as inventories spell it (STANDARD, STANDARD_IA, NEARLINE ...)
      region VARCHAR NOT NULL,
      price_per_gib_month DECIMAL(18,6) NOT NULL,
      currency VARCHAR NOT NULL,
      price_note VARCHAR NOT NULL,
      source VARCHAR NOT NULL,
      PRIMARY KEY (provider_key, storage_class, region)
    )""",
]

_VIEWS = [
    """
    CREATE OR REPLACE VIEW latest_findings AS
    SELECT f.* FROM findings f
    WHERE f.run_id = (
      SELECT run_id FROM runs WHERE status = 'complete' ORDER BY finished_at DESC, run_id DESC LIMIT 1)
    """,
    """
    CREATE OR REPLACE VIEW findings_changes AS
    WITH ranked AS (
      SELECT run_id, row_number() OVER (ORDER BY finished_at DESC, run_id DESC) AS n
      FROM runs WHERE status = 'complete'),
    cur AS (SELECT * FROM findings WHERE run_id = (SELECT run_id FROM ranked WHERE n = 1)),
    prev AS (SELECT * FROM findings WHERE run_id = (SELECT run_id FROM ranked WHERE n = 2))
    SELECT
      coalesce(cur.fingerprint, prev.fingerprint) AS fingerprint,
      CASE
        WHEN prev.fingerprint IS NULL THEN 'new'
        WHEN cur.fingerprint IS NULL THEN 'gone'
        WHEN cur.status <> prev.status THEN 'status changed'
        WHEN cur.estimated_monthly_saving IS DISTINCT FROM prev.estimated_monthly_saving THEN 'saving changed'
        ELSE 'unchanged'
      END AS change,
      coalesce(cur.rule_id, prev.rule_id) AS rule_id,
      coalesce(cur.provider, prev.provider) AS provider,
      coalesce(cur.billing_account_id, prev.billing_account_id) AS billing_account_id,
      coalesce(cur.resource_id, prev.resource_id) AS resource_id,
      prev.status AS previous_status,
      cur.status AS current_status,
      prev.estimated_monthly_saving AS previous_saving,
      cur.estimated_monthly_saving AS current_saving,
      coalesce(cur.currency, prev.currency) AS currency,
      prev.run_id AS previous_run_id,
      cur.run_id AS current_run_id
    FROM cur FULL OUTER JOIN prev ON cur.fingerprint = prev.fingerprint
    """,
]


def drop_primary_key(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Rebuild `table` (``findings`` or ``resource_metrics``) without the PRIMARY KEY a store made
    by an earlier costaudit still has, keeping its rows: inside the caller's transaction, before it
    writes to the table. A no-op once done."""
    keyed = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = ? AND constraint_type = 'PRIMARY KEY' "
        "AND schema_name = current_schema() AND database_name = current_database()",
        [table],
    ).fetchall()[0][0]
    if not keyed:
        return
    name, keyed_name = quote_ident(table), quote_ident(f"{table}_keyed")
    con.execute(f"ALTER TABLE {name} RENAME TO {keyed_name}")
    ensure_rules_schema(con)  # creates the table as it is now
    con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM {keyed_name}")
    con.execute(f"DROP TABLE {keyed_name}")


def ensure_rules_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the rules room's tables and views if missing (idempotent)."""
    for statement in _TABLES:
        con.execute(statement)
    for statement in _VIEWS:
        con.execute(statement)
