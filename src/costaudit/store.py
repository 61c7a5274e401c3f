"""The DuckDB store: schema, connections and the load ledger.

The store owns ``line_items`` and ``loads``; nobody else writes them. Each ledger entry covers
one (provider, billing account, billing period, source export); a newer delivery of the same
key replaces the older one inside one transaction.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from costaudit.connectors.sql import install_macros, quote_ident
from costaudit.errors import CostauditError
from costaudit.schema import CHARGE_KEY_COLUMNS, FOCUS_NAMES, LINE_ITEM_COLUMNS, MONEY, charge_key_sql

DEFAULT_DB = "costaudit.duckdb"
SCHEMA_VERSION = 1
DEFAULT_MEMORY_LIMIT = "2GB"


def default_db_path() -> Path:
    """The store used when none is named: $COSTAUDIT_DB, else ./costaudit.duckdb."""
    return Path(os.environ.get("COSTAUDIT_DB", DEFAULT_DB))


def connect(path: str | Path | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store, creating its schema when writable. A lock held by another writer is a
    clear error, not a traceback."""
    db_path = Path(path) if path is not None else default_db_path()
    if read_only and not db_path.exists():
        raise CostauditError(f"{db_path}: no store here yet; run `costaudit load` first")
    config = {"memory_limit": os.environ.get("COSTAUDIT_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT)}
    try:
        con = duckdb.connect(str(db_path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        message = str(exc).splitlines()[0]
        if "lock" in message.lower():
            raise CostauditError(f"{db_path}: the store is in use by another costaudit process ({message})") from None
        raise CostauditError(f"{db_path}: cannot open the store ({message})") from None
    install_macros(con)
    if not read_only:
        ensure_schema(con)
    return con


def _line_items_ddl() -> str:
    columns = ",\n  ".join(f"{quote_ident(name)} {sql_type}" for name, sql_type in LINE_ITEM_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS line_items (\n  {columns}\n)"


def _add_missing_columns(con: duckdb.DuckDBPyConnection) -> None:
    """A store made by an earlier costaudit lacks columns added since: add them (NULL for the
    rows already there; the charge key is computed for them, see `_refresh_charge_keys`) rather
    than refuse to load into it."""
    present = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'line_items'"
            " AND table_schema = current_schema()"
        ).fetchall()
    }
    for name, sql_type in LINE_ITEM_COLUMNS:
        if name not in present:
            con.execute(f"ALTER TABLE line_items ADD COLUMN {quote_ident(name)} {sql_type}")


# A fixed charge key whose hash tells whether this DuckDB hashes as the one that filled x_ChargeKey.
_CHARGE_KEY_PROBE = "SELECT CAST(" + charge_key_sql().replace('"', "") + " AS VARCHAR) FROM (SELECT " + ", ".join(
    f"'costaudit {name}' AS {name}" for name in CHARGE_KEY_COLUMNS
) + ")"


def _refresh_charge_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Every row's x_ChargeKey must come from the running DuckDB's hash(): compute it for rows
    that lack it (a store from before the column) and for all rows when DuckDB's hash changed."""
    [(probe,)] = con.execute(_CHARGE_KEY_PROBE).fetchall()
    stored = con.execute("SELECT value FROM meta WHERE key = 'charge_key_probe'").fetchone()
    if stored is not None and stored[0] == probe:
        missing = con.execute("SELECT 1 FROM line_items WHERE x_ChargeKey IS NULL LIMIT 1").fetchone()
        if missing is None:
            return
    con.execute("BEGIN TRANSACTION")
    try:
        where = "" if stored is None or stored[0] != probe else " WHERE x_ChargeKey IS NULL"
        con.execute(f"UPDATE line_items SET x_ChargeKey = {charge_key_sql()}{where}")
        con.execute(
            "INSERT INTO meta VALUES ('charge_key_probe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [probe],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables and views if missing (idempotent)."""
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(_line_items_ddl())
    _add_missing_columns(con)
    _refresh_charge_keys(con)
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS loads (
          load_id VARCHAR PRIMARY KEY,
          batch_id VARCHAR NOT NULL,
          provider VARCHAR NOT NULL,
          billing_account_id VARCHAR NOT NULL,
          billing_period_start TIMESTAMPTZ NOT NULL,
          source_export VARCHAR NOT NULL,
          source_format VARCHAR NOT NULL,
          format_version VARCHAR,
          delivery_id VARCHAR,
          fingerprint VARCHAR NOT NULL,
          files JSON NOT NULL,
          row_count BIGINT NOT NULL,
          basis VARCHAR NOT NULL,
          loaded_at TIMESTAMPTZ NOT NULL,
          status VARCHAR NOT NULL,
          replaced_by VARCHAR
        )"""
    )
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS load_totals (
          load_id VARCHAR NOT NULL,
          currency VARCHAR NOT NULL,
          basis VARCHAR NOT NULL,
          source_total {MONEY} NOT NULL,
          stored_total {MONEY} NOT NULL,
          PRIMARY KEY (load_id, currency)
        )"""
    )
    # One bill is read once: when several source exports cover the same (provider, billing
    # account, billing period) -- say a CUR and a FOCUS export of the same month -- analysis reads
    # the most recently loaded one. The others stay in the ledger and in line_items.
    con.execute(
        """
        CREATE OR REPLACE VIEW current_loads AS
        SELECT * FROM loads WHERE status = 'active'
        QUALIFY row_number() OVER (
          PARTITION BY provider, billing_account_id, billing_period_start
          ORDER BY loaded_at DESC, load_id) = 1
        """
    )
    con.execute(
        """
        CREATE OR REPLACE VIEW current_line_items AS
        SELECT * FROM line_items WHERE x_LoadId IN (SELECT load_id FROM current_loads)
        """
    )
    focus_list = ", ".join(quote_ident(n) for n in FOCUS_NAMES)
    con.execute(f"CREATE OR REPLACE VIEW focus_line_items AS SELECT {focus_list} FROM current_line_items")
    con.execute(
        "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
        [str(SCHEMA_VERSION)],
    )
    # Findings, runs and the inputs beyond billing (metrics, inventories, the catalogue) belong
    # to the rules room, which declares its own tables.
    from costaudit.rules.schema import ensure_rules_schema

    ensure_rules_schema(con)
